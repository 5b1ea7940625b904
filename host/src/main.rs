//! `wasi-infer`: the command-line front of the library.

mod check_cmd;
mod compile_cmd;
mod models_cmd;
mod progress;
mod units;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use wasi_infer::http::server::Frontend;
use wasi_infer::runtime::CompileCache;
use wasi_infer::{App, AppOptions, BackendKind, Limits, LoadObserver};

/// Serverless WebAssembly inference functions: serves a Spin application
/// (spin.toml) whose WebAssembly components run models through wasi-nn, on
/// ONNX Runtime, OpenVINO or tract.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  \
        wasi-infer serve                      serve ./spin.toml on 127.0.0.1:3000\n  \
        wasi-infer check                      load everything, report, and exit\n  \
        wasi-infer models list                the models in ./models\n  \
        wasi-infer models inspect efficientnet-lite0\n\n\
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

/// Where an application comes from: its manifest, models and backend choice.
#[derive(clap::Args)]
struct AppArgs {
    /// The application manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The model repository [default: models/ beside the manifest].
    #[arg(long)]
    models: Option<PathBuf>,
    /// Run every model on this backend, whatever its model.toml asks for.
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    #[command(flatten)]
    cache: CacheArgs,
}

impl AppArgs {
    fn options(self) -> AppOptions {
        AppOptions {
            models_dir: self.models,
            backend: self.backend,
            compile_cache: self.cache.cache(),
            ..AppOptions::new(self.manifest)
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application over HTTP, with /metrics and /health/{live,ready}.
    Serve {
        #[command(flatten)]
        app: AppArgs,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        #[command(flatten)]
        limits: Box<LimitArgs>,
    },
    /// Check an application without serving it: read the manifest, load the
    /// models and compile the components as `serve` would, and report.
    Check {
        #[command(flatten)]
        app: AppArgs,
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

/// What a request or a function may use. Sizes take K, M or G (binary);
/// durations take ms, s or m.
#[derive(clap::Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Instances that run at once; more requests wait their turn [default: 2 per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_running: Option<u32>,
    /// Requests that may wait for an instance; beyond it, 503 with Retry-After [default: 256].
    #[arg(long)]
    max_waiting: Option<usize>,
    /// How long a request may wait for an instance before a 503 [default: 10s].
    #[arg(long, value_parser = units::parse_duration)]
    max_wait: Option<Duration>,
    /// Time a function has to answer before it is stopped and the request
    /// answered 504 [default: 30s].
    #[arg(long, value_parser = units::parse_duration)]
    request_timeout: Option<Duration>,
    /// Time a client has to send a request's head, then its body (408) [default: 30s].
    #[arg(long, value_parser = units::parse_duration)]
    client_timeout: Option<Duration>,
    /// Largest request body; beyond it, 413 [default: 16M].
    #[arg(long, value_parser = units::parse_size)]
    max_body_size: Option<usize>,
    /// Request-body bytes buffered at once by all requests together; a body
    /// that finds no room within --max-wait gets 503 with Retry-After
    /// (at least --max-body-size) [default: 256M].
    #[arg(long, value_parser = units::parse_size)]
    max_buffered_bodies: Option<usize>,
    /// Time a write to a client may make no progress before its connection
    /// is closed (a client that never reads its answers) [default: 30s].
    #[arg(long, value_parser = units::parse_duration)]
    write_timeout: Option<Duration>,
    /// Time a connection with no request in flight may receive nothing before
    /// it is closed; the client timeout also runs while a connection is idle,
    /// and the shorter of the two closes it [default: 60s].
    #[arg(long, value_parser = units::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Largest request head (request line and headers); beyond it, 431 [default: 64K].
    #[arg(long, value_parser = units::parse_size)]
    max_header_size: Option<usize>,
    /// Connections served at once [default: 1024].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Linear memory of one instance [default: 512M].
    #[arg(long, value_parser = units::parse_size)]
    max_memory: Option<usize>,
    /// Instance slots of the pool, at least --max-running [default: 256, or
    /// --max-running when that is more].
    #[arg(long)]
    max_instances: Option<u32>,
    /// Largest tensor a function may pass to a model [default: 64M].
    #[arg(long, value_parser = units::parse_size)]
    max_tensor_size: Option<usize>,
    /// Host memory one instance's wasi-nn objects may hold at once: tensors
    /// with their dimensions, outputs, errors [default: 256M].
    #[arg(long, value_parser = units::parse_size)]
    max_tensor_bytes_per_instance: Option<usize>,
    /// wasi-nn execution contexts one instance may create [default: 64].
    #[arg(long)]
    max_execution_contexts: Option<usize>,
    /// On SIGTERM or Ctrl-C, how long in-flight requests have to finish [default: 10s].
    #[arg(long, value_parser = units::parse_duration)]
    shutdown_grace: Option<Duration>,
    /// The largest batch (first dimension) of a model input, for models whose
    /// model.toml sets no [limits] max_batch [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_batch: Option<u64>,
    /// Elements of one model input, for models whose model.toml bounds
    /// neither them nor every dimension [default: 16777216].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_input_elements: Option<u64>,
}

impl LimitArgs {
    fn apply(&self, limits: &mut Limits) {
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(
            &mut limits.max_running,
            self.max_running.map(|n| n as usize),
        );
        // More running instances than the default slots: the slots follow,
        // unless the operator set them too (then `Limits::check` holds them
        // to at least --max-running).
        if let (Some(running), None) = (self.max_running, self.max_instances) {
            limits.max_instances = limits.max_instances.max(running);
        }
        set(&mut limits.max_waiting, self.max_waiting);
        set(&mut limits.max_wait, self.max_wait);
        set(&mut limits.request_timeout, self.request_timeout);
        set(&mut limits.client_timeout, self.client_timeout);
        set(&mut limits.max_body_bytes, self.max_body_size);
        set(
            &mut limits.max_buffered_body_bytes,
            self.max_buffered_bodies,
        );
        set(&mut limits.write_timeout, self.write_timeout);
        set(&mut limits.idle_timeout, self.idle_timeout);
        set(&mut limits.max_header_bytes, self.max_header_size);
        set(&mut limits.max_connections, self.max_connections);
        set(&mut limits.max_memory_bytes, self.max_memory);
        set(&mut limits.max_instances, self.max_instances);
        set(&mut limits.max_tensor_bytes, self.max_tensor_size);
        set(
            &mut limits.max_tensor_bytes_per_instance,
            self.max_tensor_bytes_per_instance,
        );
        set(
            &mut limits.max_execution_contexts,
            self.max_execution_contexts,
        );
        set(&mut limits.shutdown_grace, self.shutdown_grace);
        set(&mut limits.max_batch, self.max_batch);
        set(&mut limits.max_input_elements, self.max_input_elements);
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
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let human = cli.log_format == LogFormat::Human;
    match cli.command {
        Command::Serve {
            app,
            listen,
            limits,
        } => {
            let mut options = app.options();
            limits.apply(&mut options.limits);
            serve(options, listen, progress::observer(human))
        }
        Command::Check { app } => check_cmd::check(&app.options(), &*progress::observer(human)),
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

/// Listens at once, loads the application while answering health checks
/// (live, not ready), then serves it. `listening on` is printed on stdout
/// when it is ready to serve.
fn serve(
    options: AppOptions,
    listen: SocketAddr,
    observer: Box<dyn LoadObserver + Send>,
) -> anyhow::Result<()> {
    // The server uses the limits before the application (which checks them
    // too) is loaded.
    if let Err(problem) = options.limits.check() {
        anyhow::bail!("invalid limits: {problem}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let grace = options.limits.shutdown_grace;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, "live; loading the application");
        let frontend = Arc::new(Frontend::loading(&options));
        let mut server = tokio::spawn(wasi_infer::http::server::run(
            frontend.clone(),
            listener,
            wasi_infer::http::server::shutdown_signal(),
        ));
        // Loading compiles components and models: blocking work, off the reactor.
        let mut loading =
            tokio::task::spawn_blocking(move || App::load_observed(&options, &*observer));
        tokio::select! {
            loaded = &mut loading => {
                let app = loaded.context("loading the application panicked")??;
                for model in app.models.iter() {
                    tracing::info!(model = %model.name, backend = %model.backend, "serving model");
                }
                frontend.set_app(Arc::new(app));
                println!("listening on http://{address}");
            }
            // Stopped while loading.
            served = &mut server => {
                return served.context("the server panicked")?.context("server failed");
            }
        }
        server
            .await
            .context("the server panicked")?
            .context("server failed")
    });
    // A function still stuck in a blocking call past the grace must not keep
    // the process from exiting.
    runtime.shutdown_timeout(grace);
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn limits(args: &[&str]) -> Limits {
        let flags =
            Flags::try_parse_from(std::iter::once("wasi-infer").chain(args.iter().copied()))
                .unwrap();
        let mut limits = Limits::for_cores(4);
        flags.limits.apply(&mut limits);
        limits
    }

    #[test]
    fn more_running_instances_than_slots_raise_the_slots_unless_both_are_set() {
        let raised = limits(&["--max-running", "1000"]);
        assert_eq!((raised.max_running, raised.max_instances), (1000, 1000));
        assert_eq!(raised.check(), Ok(()));
        let fewer = limits(&["--max-running", "4"]);
        assert_eq!(fewer.max_instances, 256, "never lowered");
        let both = limits(&["--max-running", "1000", "--max-instances", "500"]);
        assert!(both.check().unwrap_err().contains("--max-instances"));
    }

    #[test]
    fn the_new_limits_are_read() {
        let set = limits(&[
            "--max-buffered-bodies",
            "2M",
            "--max-body-size",
            "1M",
            "--write-timeout",
            "1s",
            "--idle-timeout",
            "500ms",
        ]);
        assert_eq!(set.max_buffered_body_bytes, 2 << 20);
        assert_eq!(set.write_timeout, Duration::from_secs(1));
        assert_eq!(set.idle_timeout, Duration::from_millis(500));
        assert_eq!(set.check(), Ok(()));
    }
}
