//! `wasi-infer serve`: listens at once, loads the application while
//! answering health checks, serves it until SIGTERM or Ctrl-C, then drains.
//! Every flag can also be set from the environment (`WASI_INFER_<FLAG>`), as
//! container platforms configure programs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use wasi_infer::http::repository::AdminToken;
use wasi_infer::http::server::Frontend;
use wasi_infer::nn::model_config::LoadPolicy;
use wasi_infer::{App, AppOptions, Limits, LoadObserver};

use super::units;

/// What a request or a function may use. Sizes take K, M or G (binary);
/// durations take ms, s or m.
#[derive(clap::Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Instances that run at once; more requests wait their turn [default: 2 per core].
    #[arg(long, env = "WASI_INFER_MAX_RUNNING", value_parser = clap::value_parser!(u32).range(1..))]
    max_running: Option<u32>,
    /// Requests that may wait for an instance; beyond it, 503 with Retry-After [default: 256].
    #[arg(long, env = "WASI_INFER_MAX_WAITING")]
    max_waiting: Option<usize>,
    /// How long a request may wait for an instance before a 503 [default: 10s].
    #[arg(long, env = "WASI_INFER_MAX_WAIT", value_parser = units::parse_duration)]
    max_wait: Option<Duration>,
    /// Time a function has to answer before it is stopped and the request
    /// answered 504 [default: 30s].
    #[arg(long, env = "WASI_INFER_REQUEST_TIMEOUT", value_parser = units::parse_duration)]
    request_timeout: Option<Duration>,
    /// Time a client has to send a request's head, then its body (408) [default: 30s].
    #[arg(long, env = "WASI_INFER_CLIENT_TIMEOUT", value_parser = units::parse_duration)]
    client_timeout: Option<Duration>,
    /// Largest request body; beyond it, 413 [default: 16M].
    #[arg(long, env = "WASI_INFER_MAX_BODY_SIZE", value_parser = units::parse_size)]
    max_body_size: Option<usize>,
    /// Request-body bytes buffered at once by all requests together; a body
    /// that finds no room within --max-wait gets 503 with Retry-After
    /// (at least --max-body-size) [default: 256M].
    #[arg(long, env = "WASI_INFER_MAX_BUFFERED_BODIES", value_parser = units::parse_size)]
    max_buffered_bodies: Option<usize>,
    /// Time a write to a client may make no progress before its connection
    /// is closed (a client that never reads its answers) [default: 30s].
    #[arg(long, env = "WASI_INFER_WRITE_TIMEOUT", value_parser = units::parse_duration)]
    write_timeout: Option<Duration>,
    /// Time a connection with no request in flight may receive nothing before
    /// it is closed; the client timeout also runs while a connection is idle,
    /// and the shorter of the two closes it [default: 60s].
    #[arg(long, env = "WASI_INFER_IDLE_TIMEOUT", value_parser = units::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Largest request head (request line and headers); beyond it, 431 [default: 64K].
    #[arg(long, env = "WASI_INFER_MAX_HEADER_SIZE", value_parser = units::parse_size)]
    max_header_size: Option<usize>,
    /// Connections served at once [default: 1024].
    #[arg(long, env = "WASI_INFER_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Linear memory of one instance [default: 512M].
    #[arg(long, env = "WASI_INFER_MAX_MEMORY", value_parser = units::parse_size)]
    max_memory: Option<usize>,
    /// Instance slots of the pool, at least --max-running [default: 256, or
    /// --max-running when that is more].
    #[arg(long, env = "WASI_INFER_MAX_INSTANCES")]
    max_instances: Option<u32>,
    /// Largest tensor a function may pass to a model [default: 64M].
    #[arg(long, env = "WASI_INFER_MAX_TENSOR_SIZE", value_parser = units::parse_size)]
    max_tensor_size: Option<usize>,
    /// Host memory one instance's wasi-nn objects may hold at once: tensors
    /// with their dimensions, outputs, errors [default: 256M].
    #[arg(long, env = "WASI_INFER_MAX_TENSOR_BYTES_PER_INSTANCE", value_parser = units::parse_size)]
    max_tensor_bytes_per_instance: Option<usize>,
    /// wasi-nn execution contexts one instance may create [default: 64].
    #[arg(long, env = "WASI_INFER_MAX_EXECUTION_CONTEXTS")]
    max_execution_contexts: Option<usize>,
    /// On SIGTERM or Ctrl-C, how long to keep serving while /health/ready
    /// answers 503, before the listener closes: time for a load balancer
    /// (Kubernetes' endpoints) to stop sending new requests [default: 0s].
    #[arg(long, env = "WASI_INFER_DRAIN_DELAY", value_parser = units::parse_duration)]
    drain_delay: Option<Duration>,
    /// Then, how long in-flight requests have to finish [default: 10s].
    #[arg(long, env = "WASI_INFER_SHUTDOWN_GRACE", value_parser = units::parse_duration)]
    shutdown_grace: Option<Duration>,
    /// The largest batch (first dimension) of a model input, for models whose
    /// model.toml sets no [limits] max_batch [default: 64].
    #[arg(long, env = "WASI_INFER_MAX_BATCH", value_parser = clap::value_parser!(u64).range(1..))]
    max_batch: Option<u64>,
    /// Elements of one model input, for models whose model.toml bounds
    /// neither them nor every dimension [default: 16777216].
    #[arg(long, env = "WASI_INFER_MAX_INPUT_ELEMENTS", value_parser = clap::value_parser!(u64).range(1..))]
    max_input_elements: Option<u64>,
}

impl LimitArgs {
    pub fn apply(&self, limits: &mut Limits) {
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
        set(&mut limits.drain_delay, self.drain_delay);
        set(&mut limits.shutdown_grace, self.shutdown_grace);
        set(&mut limits.max_batch, self.max_batch);
        set(&mut limits.max_input_elements, self.max_input_elements);
    }
}

/// When models load, how much memory they may hold, and who may change them.
#[derive(clap::Args)]
#[command(next_help_heading = "Models")]
pub struct ModelArgs {
    /// When models whose model.toml says no `load` are loaded: before the
    /// server is ready, or on their first request [default: startup].
    #[arg(long, env = "WASI_INFER_LOAD", value_enum)]
    load: Option<LoadArg>,
    /// Resident memory all loaded models may hold together. A load that
    /// would go past it first unloads the least recently used idle models;
    /// when every model is busy, the request gets 503. Models that do not fit
    /// at start-up load on demand [default: no bound].
    #[arg(long, env = "WASI_INFER_MODEL_MEMORY_BUDGET", value_parser = units::parse_size)]
    model_memory_budget: Option<usize>,
    /// Reload a model when its folder changes (a new or changed version, a
    /// new model folder), once it has stayed the same for --watch-debounce.
    #[arg(long, env = "WASI_INFER_WATCH")]
    watch: bool,
    /// How long a changed model folder must stay the same before it is
    /// reloaded (a copy in progress is not loaded half-written) [default: 2s].
    #[arg(long, env = "WASI_INFER_WATCH_DEBOUNCE", value_parser = units::parse_duration, requires = "watch")]
    watch_debounce: Option<Duration>,
    /// Turns on the model repository API (POST /v2/repository/index,
    /// /v2/repository/models/<name>/load and .../unload) for requests that
    /// carry the token in this file (Authorization: Bearer <token>).
    #[arg(long, env = "WASI_INFER_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LoadArg {
    Startup,
    OnDemand,
}

impl ModelArgs {
    pub fn apply(&self, options: &mut AppOptions) -> anyhow::Result<()> {
        if let Some(load) = self.load {
            options.default_load = match load {
                LoadArg::Startup => LoadPolicy::Startup,
                LoadArg::OnDemand => LoadPolicy::OnDemand,
            };
        }
        options.model_memory_budget = self.model_memory_budget.map(|b| b as u64);
        if self.watch {
            options.watch = Some(self.watch_debounce.unwrap_or(Duration::from_secs(2)));
        }
        if let Some(path) = &self.admin_token_file {
            options.admin_token = Some(AdminToken::from_file(path).map_err(anyhow::Error::msg)?);
        }
        Ok(())
    }
}

/// Listens at once, loads the application while answering health checks
/// (live, not ready), then serves it. `listening on` is printed on stdout
/// when it is ready to serve.
pub fn serve(
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
                for model in app.models.loaded() {
                    tracing::info!(model = %model.name, version = %model.version, backend = %model.backend, "serving model");
                }
                // The last line of the start-up log, written before the
                // announcement below (a reader of both knows it has them all).
                tracing::info!(routes = app.manifest.routes.len(), "application loaded");
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
    use clap::Parser;

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
