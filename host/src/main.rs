//! `wasi-infer`: the command-line front of the library.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use wasi_infer::BackendKind;

use cli::serve::{LimitArgs, ModelArgs};
use cli::{AppArgs, CacheArgs, progress};

/// Serverless WebAssembly inference functions: serves a Spin application
/// (spin.toml) whose WebAssembly components run models through wasi-nn, on
/// ONNX Runtime, OpenVINO or tract.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  \
        wasi-infer serve                      serve ./spin.toml on 127.0.0.1:3000\n  \
        wasi-infer serve --models DIR         serve a model folder, no manifest needed\n  \
        wasi-infer check                      load everything, report, and exit\n  \
        wasi-infer bundle -o app.tar          pack ./spin.toml and its files into one bundle\n  \
        wasi-infer serve --bundle app.tar     serve a bundle\n  \
        wasi-infer models list                the models in ./models\n  \
        wasi-infer models inspect efficientnet-lite0\n  \
        wasi-infer eval --url http://127.0.0.1:3000 --model fashion-mnist-cnn --dataset tests/data/fashion-mnist\n\n\
        Every serve flag can also be set as WASI_INFER_<FLAG> (e.g. WASI_INFER_LISTEN).\n\
        Logs go to stderr; RUST_LOG sets their level (e.g. RUST_LOG=debug)."
)]
struct Cli {
    /// How log lines are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "WASI_INFER_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One readable line per event (with a progress bar on a terminal).
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application over HTTP, with /metrics and /health/{live,ready}.
    Serve {
        #[command(flatten)]
        app: AppArgs,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, env = "WASI_INFER_LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        #[command(flatten)]
        models: ModelArgs,
        #[command(flatten)]
        limits: Box<LimitArgs>,
    },
    /// Check an application without serving it: read the manifest, load the
    /// models and compile the components as `serve` would, and report.
    Check {
        #[command(flatten)]
        app: AppArgs,
    },
    /// Compile the application's components, and the built-in application's
    /// functions, into the cache, so that serving starts without compiling
    /// (e.g. when building a container image).
    Compile {
        /// The application manifest [default: spin.toml, if there is one].
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Pack an application into one bundle (an OCI image layout) to ship.
    Bundle(cli::bundle::BundleArgs),
    /// Pre-initialise a function's component (Wizer): its instances start
    /// with its models' metadata (and, self-contained, the models) in memory.
    Preinit(cli::preinit::PreinitArgs),
    /// Evaluate a deployed image classifier over HTTP on a labelled dataset:
    /// accuracy, top-5, per-class precision/recall/F1, confusion matrix,
    /// latency and throughput.
    Eval(Box<cli::eval::EvalArgs>),
    /// Write a new function from a template into functions/<NAME>/, add it
    /// to the functions' workspace and route to it in the manifest.
    New(cli::new::NewArgs),
    /// Look into a model repository.
    Models {
        /// The model repository.
        #[arg(long, global = true, default_value = "models")]
        models: PathBuf,
        #[command(subcommand)]
        command: ModelsCommand,
    },
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
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let human = cli.log_format == LogFormat::Human;
    match cli.command {
        Command::Serve {
            app,
            listen,
            models,
            limits,
        } => {
            // A bundle's files last until the server stops.
            let (mut options, _bundle) = app.options()?;
            limits.apply(&mut options.limits);
            models.apply(&mut options)?;
            cli::serve::serve(options, listen, progress::observer(human))
        }
        Command::Check { app } => {
            let (mut options, _bundle) = app.options()?;
            // Every model, on-demand ones too: check is for finding problems.
            options.load_everything = true;
            cli::check::check(&options, &*progress::observer(human))
        }
        Command::Compile { manifest, cache } => {
            let default = PathBuf::from("spin.toml");
            let manifest = manifest.or_else(|| default.is_file().then_some(default));
            cli::compile::compile(manifest.as_deref(), cache.cache())
        }
        Command::Bundle(args) => cli::bundle::bundle(args),
        Command::Preinit(args) => cli::preinit::preinit(args),
        Command::Eval(args) => cli::eval::eval(*args, human),
        Command::New(args) => cli::new::new(args),
        Command::Models { models, command } => match command {
            ModelsCommand::List => cli::models::list(&models),
            ModelsCommand::Inspect {
                name,
                backend,
                json,
            } => cli::models::inspect(&models, &name, backend, json),
        },
    }
}

/// glibc gives threads arenas of their own, up to 8 per core, and a server
/// whose requests move between tokio's workers and blocking threads (every
/// inference leaves its worker) fragments them: in a 5-minute soak test at 64
/// connections the server's memory kept growing, 92 MiB at about 18 MiB a
/// minute; with two arenas it levelled off at 16 MiB above its warm state.
/// `MALLOC_ARENA_MAX` in the environment still decides, when set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called first thing
        // in main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Logs to stderr, readable or JSON; `RUST_LOG` filters them.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,wasmtime_wasi_nn=off,openvino_finder=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Human if progress::shows_bar(true) => {
            logs.with_writer(progress::LogWriter).with_ansi(true).init()
        }
        LogFormat::Human => logs.with_writer(std::io::stderr).with_ansi(false).init(),
        LogFormat::Json => logs
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Container platforms configure programs through the environment: each
    /// `serve` flag has its `WASI_INFER_<FLAG>`.
    #[test]
    fn every_serve_flag_can_be_set_from_the_environment() {
        let cli = super::Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve");
        let mut checked = 0;
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let want = format!("WASI_INFER_{}", long.to_uppercase().replace('-', "_"));
            let env = arg.get_env().and_then(|e| e.to_str());
            assert_eq!(env, Some(want.as_str()), "--{long}");
            checked += 1;
        }
        assert!(checked >= 25, "{checked} flags");
    }
}
