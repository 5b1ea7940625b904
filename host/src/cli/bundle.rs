//! `wasi-infer bundle`: packs an application into one OCI image layout, and
//! opens one for `serve --bundle` (see `wasi_infer::edge::bundle`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use wasi_infer::edge::bundle::{self, OpenedBundle, PackOptions};
use wasi_infer::limits::size_text;

/// Packs an application (manifest, components, mounted files, models) into
/// an OCI image layout, each part named by its SHA-256 digest.
#[derive(clap::Args)]
pub struct BundleArgs {
    /// The application manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Also add each component compiled for this host's engine and CPU, so
    /// that a node like this one starts without compiling.
    #[arg(long)]
    precompile: bool,
    /// Where to write the bundle: a tar when the name ends in .tar, else a folder.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn bundle(args: BundleArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let options = PackOptions {
        manifest: args.manifest,
        precompile: args.precompile,
    };
    let packed = bundle::pack(&options, &args.output)
        .with_context(|| format!("cannot bundle {}", options.manifest.display()))?;
    println!(
        "{}: {} files ({} components, {} precompiled), {} in {} ms\n  image manifest {}",
        args.output.display(),
        packed.files,
        packed.components,
        packed.precompiled,
        size_text(usize::try_from(packed.bytes).unwrap_or(usize::MAX)),
        started.elapsed().as_millis(),
        packed.digest,
    );
    Ok(())
}

/// Checks a bundle and lays it out for serving, saying so in the log.
pub fn open(path: &Path) -> anyhow::Result<OpenedBundle> {
    let started = Instant::now();
    let opened = bundle::open(path)?;
    tracing::info!(
        bundle = %path.display(),
        digest = %opened.digest,
        files = opened.files,
        precompiled = opened.precompiled.len(),
        dir = %opened.dir().display(),
        took_ms = started.elapsed().as_millis() as u64,
        "bundle checked and laid out"
    );
    Ok(opened)
}
