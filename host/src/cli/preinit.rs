//! `wasi-infer preinit`: pre-initialises a function's component (Wizer), so
//! that each request's fresh instance starts with what its initialiser
//! prepared (see `wasi_infer::edge::preinit`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use wasi_infer::edge::preinit::{PreinitOptions, default_output, preinitialize};

/// Runs the component's `wizer-initialize` with the model repository at
/// /models, and writes the snapshot as a new component.
#[derive(clap::Args)]
pub struct PreinitArgs {
    /// The component to pre-initialise.
    component: PathBuf,
    /// Where to write the pre-initialised component [default: beside it, as NAME.preinit.wasm].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The model repository, mounted read-only at /models while the
    /// initialiser runs.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// A model to prepare; repeat for several [default: every model in
    /// --models that the function serves].
    #[arg(long = "model")]
    model: Vec<String>,
}

pub fn preinit(args: PreinitArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let options = PreinitOptions {
        models_dir: args.models,
        models: args.model,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let snapshot = runtime
        .block_on(preinitialize(&bytes, &options))
        .with_context(|| format!("{}", args.component.display()))?;
    let output = args
        .output
        .unwrap_or_else(|| default_output(&args.component));
    std::fs::write(&output, &snapshot)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "{}: pre-initialised in {} ms, {} -> {} bytes",
        output.display(),
        started.elapsed().as_millis(),
        bytes.len(),
        snapshot.len()
    );
    Ok(())
}
