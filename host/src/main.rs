//! `wasi-infer`: the command-line front of the library.

mod compile_cmd;
mod models_cmd;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wasi_infer::runtime::CompileCache;
use wasi_infer::{App, AppOptions, BackendKind};

/// Serverless WebAssembly inference functions: serves a Spin application whose
/// components run models through wasi-nn.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application over HTTP.
    Serve {
        /// The application manifest.
        #[arg(long, default_value = "spin.toml")]
        manifest: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// The model repository [default: models/ beside the manifest].
        #[arg(long)]
        models: Option<PathBuf>,
        /// Run every model on this backend, whatever its model.toml asks for.
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// Instances that run at once; more requests wait their turn
        /// [default: 2 per core].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_running: Option<u32>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Compile the application's components into the cache, so that serving
    /// starts without compiling (e.g. when building a container image).
    Compile {
        /// The application manifest.
        #[arg(long, default_value = "spin.toml")]
        manifest: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Look into a model repository.
    Models {
        /// The model repository.
        #[arg(long, global = true, default_value = "models")]
        models: PathBuf,
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

/// Where compiled components are kept between runs.
#[derive(clap::Args)]
struct CacheArgs {
    /// Directory of compiled components [default: $XDG_CACHE_HOME/wasi-infer or
    /// ~/.cache/wasi-infer].
    #[arg(long, env = "WASI_INFER_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component at start-up, without reading or writing the cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn cache(self) -> Option<CompileCache> {
        if self.no_cache {
            return None;
        }
        let dir = self.cache_dir.or_else(CompileCache::default_dir);
        if dir.is_none() {
            tracing::warn!(
                "no cache directory (neither HOME nor XDG_CACHE_HOME is set): compiling every time"
            );
        }
        dir.map(CompileCache::new)
    }
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the models (read from their model.toml, not loaded).
    List,
    /// Load a model and print its inputs and outputs as the model states them.
    Inspect {
        /// The model's name (its directory in the repository).
        name: String,
        /// Load it on this backend instead of the one its model.toml asks for.
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime_wasi_nn=off,openvino_finder=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Serve {
            manifest,
            listen,
            models,
            backend,
            max_running,
            cache,
        } => {
            let mut options = AppOptions {
                models_dir: models,
                backend,
                compile_cache: cache.cache(),
                ..AppOptions::new(manifest)
            };
            if let Some(n) = max_running {
                options.limits.max_running = n as usize;
            }
            serve(options, listen)
        }
        Command::Compile { manifest, cache } => compile_cmd::compile(&manifest, cache.cache()),
        Command::Models { models, command } => match command {
            ModelsCommand::List => models_cmd::list(&models),
            ModelsCommand::Inspect {
                name,
                backend,
                json,
            } => models_cmd::inspect(&models, &name, backend, json),
        },
    }
}

fn serve(options: AppOptions, listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Loading compiles components and models: blocking work, off the reactor.
        let app = tokio::task::spawn_blocking(move || App::load(&options))
            .await
            .context("loading the application panicked")??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        for model in app.models.iter() {
            tracing::info!(model = %model.name, backend = %model.backend, "serving model");
        }
        println!("listening on http://{address}");
        wasi_infer::server::serve(
            Arc::new(app),
            listener,
            wasi_infer::server::shutdown_signal(),
        )
        .await
        .context("server failed")
    })
}
