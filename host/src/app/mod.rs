//! An application ready to serve: the manifest, its models, its compiled
//! components and its routes. [`App::handle`] serves one request in-process,
//! which is all an embedder needs; [`crate::http::server`] puts it behind a socket.
//! The application is a `spin.toml`, or, for a model folder served without
//! one, the [`builtin`] application.

pub mod builtin;
mod files;
mod routes;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};
use wasmtime::component::Component;
use wasmtime_wasi_http::WasiBody;

use crate::edge::bundle::{Precompiled, precompiled_component};
use crate::health::Health;
use crate::http::access_log::{Arrival, CLIENT_CLOSED_REQUEST, REQUEST_ID};
use crate::http::admission::Admission;
use crate::http::body;
use crate::http::body::BodyError;
use crate::http::body_budget::{BodyBudget, Reservation};
use crate::http::repository::{AdminToken, RepositoryApi};
use crate::json_error;
use crate::limits::Limits;
use crate::manifest::outbound::{AllowedHost, OutboundPolicy};
use crate::manifest::{ComponentSpec, Manifest, ManifestError};
use crate::metrics::Metrics;
use crate::nn::auto_choice::AutoChoices;
use crate::nn::model_config::LoadPolicy;
use crate::nn::store::{self, StartStep};
use crate::nn::threads::InferenceThreads;
use crate::nn::{
    AllowedModels, BackendKind, ComponentModels, ModelError, ModelRepository, ModelStore,
    ServedModel, StoreOptions,
};
use crate::runtime::component::FunctionError;
use crate::runtime::{
    AppLink, CacheError, CompileCache, Compiled, ComponentRuntime, Failure, HttpWorld, InProcess,
    InstanceConfig, OutboundConfig, PoolSizes, Runtime, UntrustedCache,
};
use crate::variables::{render_component_variables, resolve_application_variables};
use builtin::BuiltinApp;
use routes::{Answer, Routes};

/// How to load an application.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The `spin.toml` to serve; `None` serves the [`builtin`] application
    /// over `models_dir`.
    pub manifest: Option<PathBuf>,
    /// The model repository (or one model folder); `models/` beside the
    /// manifest when `None`.
    pub models_dir: Option<PathBuf>,
    /// The model's name when `models_dir` is a single model folder; its
    /// folder's name when `None`.
    pub model_name: Option<String>,
    /// Run every model on this backend instead of the one its `model.toml` asks for.
    pub backend: Option<BackendKind>,
    /// When models whose `model.toml` does not say are loaded (`--load`).
    pub default_load: LoadPolicy,
    /// Load every model the application may use before it is ready, even
    /// those that load on demand (`wasi-infer check`).
    pub load_everything: bool,
    /// Resident bytes the loaded models may hold together
    /// (`--model-memory-budget`).
    pub model_memory_budget: Option<u64>,
    /// Reload a model whose folder changes, once it has stayed the same for
    /// this long (`--watch`).
    pub watch: Option<Duration>,
    /// The bearer token of the repository API (`/v2/repository/...`), which
    /// is off without one.
    pub admin_token: Option<AdminToken>,
    pub limits: Limits,
    /// Keep compiled components here between runs; `None` compiles every time.
    pub compile_cache: Option<CompileCache>,
    /// Components compiled ahead (a bundle's), used when compiled for this
    /// engine and CPU.
    pub precompiled: Arc<Precompiled>,
    /// Where the application records its metrics (shared with the server,
    /// which serves them while the application loads).
    pub metrics: Arc<Metrics>,
    /// Set ready when the application is loaded.
    pub health: Arc<Health>,
}

impl AppOptions {
    /// Serves the manifest at `manifest`.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self::serving(Some(manifest.into()), None)
    }

    /// Serves the models in `dir` (a repository, or one model folder)
    /// through the [`builtin`] application.
    pub fn for_models(dir: impl Into<PathBuf>) -> Self {
        Self::serving(None, Some(dir.into()))
    }

    fn serving(manifest: Option<PathBuf>, models_dir: Option<PathBuf>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(metrics.ready_gauge()));
        Self {
            manifest,
            models_dir,
            model_name: None,
            backend: None,
            default_load: LoadPolicy::default(),
            load_everything: false,
            model_memory_budget: None,
            watch: None,
            admin_token: None,
            limits: Limits::default(),
            compile_cache: None,
            precompiled: Arc::default(),
            metrics,
            health,
        }
    }

    /// The manifest, its model repository, the bytes of the components
    /// that are not files (the built-in application's), and the component
    /// that may load any model, if any.
    fn application(
        &self,
    ) -> Result<(Manifest, ModelRepository, Embedded, Option<&'static str>), AppError> {
        match &self.manifest {
            Some(path) => {
                let manifest = Manifest::load(path)?;
                let dir = self
                    .models_dir
                    .clone()
                    .unwrap_or_else(|| manifest.base_dir.join("models"));
                let repository = ModelRepository::open(&dir, self.model_name.as_deref())?;
                Ok((manifest, repository, BTreeMap::new(), None))
            }
            None => {
                let dir = self.models_dir.as_deref().ok_or_else(|| {
                    AppError::Builtin("neither a manifest nor a model folder to serve".into())
                })?;
                let repository = ModelRepository::open(dir, self.model_name.as_deref())?;
                let builtin = BuiltinApp::new(&repository)?;
                Ok((
                    builtin.manifest,
                    repository,
                    builtin.components,
                    Some(builtin::ANY_MODEL),
                ))
            }
        }
    }

    /// How the model store loads models.
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            force: self.backend,
            default_load: self.default_load,
            budget: self.model_memory_budget,
            bounds: self.limits.input_bounds(),
            everything_at_start: self.load_everything,
            choices: self
                .compile_cache
                .as_ref()
                .map(|cache| AutoChoices::new(cache.dir().join("backend-choices"))),
        }
    }
}

/// Component bytes by component id, for components that are not files.
type Embedded = BTreeMap<String, &'static [u8]>;

/// A step of [`App::load_observed`], for a progress bar or a log.
pub enum LoadStep<'a> {
    /// What there is to do, once the manifest is read.
    Plan {
        models: usize,
        components: usize,
    },
    ModelLoading {
        name: &'a str,
    },
    ModelLoaded {
        model: &'a ServedModel,
    },
    ComponentCompiling {
        id: &'a str,
    },
    ComponentReady {
        id: &'a str,
        world: HttpWorld,
        compiled: Compiled,
        took: Duration,
    },
}

/// Told of each step of loading an application.
pub trait LoadObserver {
    fn step(&self, step: LoadStep<'_>);
}

/// Logs the steps that finish (what a server's log wants).
pub struct LogLoadSteps;

impl LoadObserver for LogLoadSteps {
    fn step(&self, step: LoadStep<'_>) {
        match step {
            // The model store logs every load, on demand ones too.
            LoadStep::ComponentReady {
                id,
                world,
                compiled,
                took,
            } => tracing::info!(
                component = %id,
                %world,
                compiled = compiled.as_str(),
                ms = took.as_millis() as u64,
                "component ready"
            ),
            LoadStep::Plan { .. }
            | LoadStep::ModelLoading { .. }
            | LoadStep::ModelLoaded { .. }
            | LoadStep::ComponentCompiling { .. } => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("component {id} ({path}): {message}")]
    Component {
        id: String,
        path: PathBuf,
        message: String,
    },
    #[error("cannot set up the WebAssembly runtime: {0}")]
    Runtime(String),
    #[error("invalid limits: {0}")]
    Limits(String),
    #[error(transparent)]
    Cache(#[from] UntrustedCache),
    #[error("cannot serve the model folder: {0}")]
    Builtin(String),
}

pub struct App {
    pub manifest: Manifest,
    /// The models served, loaded or not.
    pub models: Arc<ModelStore>,
    /// The repository API (`/v2/repository/...`), when it is on.
    repository_api: Option<RepositoryApi>,
    /// Where requests go, from clients and from the components themselves.
    routes: Arc<Routes>,
    pub components: Vec<Arc<ComponentRuntime>>,
    /// The folders of components' single files (see [`files`]), removed
    /// with the application.
    _staged_files: Vec<tempfile::TempDir>,
    pub limits: Limits,
    /// Request-body bytes buffered by all requests together.
    bodies: BodyBudget,
    admission: Admission,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

impl App {
    /// Reads the manifest, loads the models and compiles the components,
    /// logging each as it is ready.
    pub fn load(options: &AppOptions) -> Result<Self, AppError> {
        Self::load_observed(options, &LogLoadSteps)
    }

    /// [`App::load`], telling `observer` of each step.
    pub fn load_observed(
        options: &AppOptions,
        observer: &dyn LoadObserver,
    ) -> Result<Self, AppError> {
        options.limits.check().map_err(AppError::Limits)?;
        // What the pool would reserve, before anything slow is loaded.
        PoolSizes::for_limits(&options.limits).map_err(AppError::Limits)?;
        if let Some(cache) = &options.compile_cache {
            cache.check_trusted()?;
        }
        let (manifest, repository, embedded, any_model) = options.application()?;

        // Cheap checks first: a missing variable should not wait for the models.
        let values =
            resolve_application_variables(&manifest.variables, |name| std::env::var(name).ok())
                .map_err(|problem| manifest.error("variables", problem))?;

        let mut wanted = BTreeSet::new();
        for component in manifest.components.values() {
            for name in &component.ai_models {
                if repository.model_dir(name).is_none() {
                    return Err(manifest
                        .error(
                            format!("component.{}.ai_models", component.id),
                            format!("no model {name:?} in {}", repository.path().display()),
                        )
                        .into());
                }
                wanted.insert(name.as_str());
            }
        }
        let models =
            ModelStore::open(repository, options.store_options(), options.metrics.clone())?;
        observer.step(LoadStep::Plan {
            models: wanted.iter().filter(|n| models.loads_at_start(n)).count(),
            components: manifest.components.len(),
        });
        models.load_at_start(wanted, |step| {
            observer.step(match step {
                StartStep::Loading(name) => LoadStep::ModelLoading { name },
                StartStep::Loaded(model) => LoadStep::ModelLoaded { model },
            })
        })?;
        if let Some(debounce) = options.watch {
            // Looked at every second, or as often as the debounce when shorter.
            let every = debounce.min(Duration::from_secs(1));
            store::watch::start(&models, every, debounce)
                .map_err(|e| AppError::Runtime(format!("cannot watch the models: {e}")))?;
        }

        let runtime =
            Runtime::new(&options.limits).map_err(|e| AppError::Runtime(format!("{e:#}")))?;
        // As many as the instances that may run at once: each waits for one
        // inference at a time.
        let threads = InferenceThreads::start(options.limits.max_running)
            .map_err(|e| AppError::Runtime(format!("cannot start the inference threads: {e}")))?;
        // Components reach the application (self.alt, <id>.spin.internal)
        // through this link, connected once the routes are built.
        let app_link = AppLink::default();
        let mut staged_files = Vec::new();
        let mut components = Vec::new();
        for spec in manifest.components.values() {
            observer.step(LoadStep::ComponentCompiling { id: &spec.id });
            let started = Instant::now();
            let fail = |message: String| AppError::Component {
                id: spec.id.clone(),
                path: spec.source.clone(),
                message,
            };
            let bytes = match embedded.get(&spec.id) {
                Some(bytes) => Cow::Borrowed(*bytes),
                None => Cow::Owned(
                    std::fs::read(&spec.source)
                        .map_err(|e| fail(format!("cannot read the component: {e}")))?,
                ),
            };
            let (component, compiled) =
                match precompiled_component(&runtime, &spec.id, &bytes, &options.precompiled) {
                    Some(component) => (component, Compiled::Bundled),
                    None => {
                        compile(&runtime, &bytes, options.compile_cache.as_ref()).map_err(fail)?
                    }
                };
            let staged = files::stage(&spec.id, &spec.files)
                .map_err(|e| fail(format!("cannot gather its files: {e}")))?;
            staged_files.extend(staged.staging);
            let config = InstanceConfig {
                component_id: spec.id.clone(),
                files: staged.preopens,
                environment: spec.environment.clone().into_iter().collect(),
                variables: render_component_variables(&spec.variables, &values),
                models: ComponentModels::new(
                    models.clone(),
                    if any_model == Some(spec.id.as_str()) {
                        AllowedModels::Any
                    } else {
                        AllowedModels::named(&spec.ai_models)
                    },
                    threads.clone(),
                ),
                limits: options.limits.clone(),
                metrics: options.metrics.component(&spec.id),
                health: options.health.clone(),
                outbound: OutboundConfig {
                    policy: Arc::new(outbound_policy(&manifest, spec, &values)?),
                    app: app_link.clone(),
                    // As much as a client may send: what the host already
                    // holds in memory for one request.
                    max_response_bytes: options.limits.max_body_bytes as u64,
                },
            };
            let runtime_component = ComponentRuntime::new(&runtime, &component, config)
                .map_err(|e| fail(format!("cannot be served: {e:#}")))?;
            observer.step(LoadStep::ComponentReady {
                id: &spec.id,
                world: runtime_component.world,
                compiled,
                took: started.elapsed(),
            });
            components.push(Arc::new(runtime_component));
        }

        // The pool's instances beyond those kept for clients' requests.
        let nested_slots =
            (options.limits.max_instances as usize).saturating_sub(options.limits.max_running);
        let routes = Arc::new(Routes::new(&manifest, &components, nested_slots)?);
        let in_process: Arc<dyn InProcess> = routes.clone();
        app_link.connect(Arc::downgrade(&in_process));
        // Loaded: an embedder may serve from here on (the server waits until
        // the application is handed to it, see `server::Frontend`).
        options.health.set_loaded();
        Ok(Self {
            manifest,
            repository_api: options
                .admin_token
                .clone()
                .map(|token| RepositoryApi::new(models.clone(), token)),
            models,
            routes,
            components,
            _staged_files: staged_files,
            limits: options.limits.clone(),
            bodies: BodyBudget::new(&options.limits),
            admission: Admission::new(&options.limits, options.metrics.waiting()),
            metrics: options.metrics.clone(),
            health: options.health.clone(),
        })
    }

    /// Serves one request: routes it and runs the component in a fresh instance.
    /// Never fails: errors become JSON error responses. Each request is
    /// counted in the metrics, logged in one line, and given an id
    /// (`X-Request-Id`, see [`access_log`]).
    pub async fn handle(
        &self,
        mut request: http::Request<WasiBody>,
        client: Option<SocketAddr>,
    ) -> http::Response<WasiBody> {
        let arrival = Arrival::of(&request);
        request.headers_mut().insert(REQUEST_ID, arrival.id.clone());
        let mut unanswered = Unanswered {
            app: self,
            arrival: Some(arrival),
        };
        let (response, route) = self.route_and_run(request, client).await;
        let arrival = unanswered.answer();
        let (route, component) = self.labels(route);
        arrival.answered(&self.metrics, route, component, response)
    }

    /// The route (as written) and component of a route index, for metrics and logs.
    fn labels(&self, route: Option<usize>) -> (&str, &str) {
        match route {
            Some(index) => (self.routes.label(index), self.routes.component_id(index)),
            None => ("unmatched", ""),
        }
    }

    /// Routes a request and runs its component; the answer, and the index of
    /// the route taken, if one was.
    async fn route_and_run(
        &self,
        request: http::Request<WasiBody>,
        client: Option<SocketAddr>,
    ) -> (http::Response<WasiBody>, Option<usize>) {
        // The whole body first: a slow or endless upload holds no instance,
        // and an early answer (404, 400) never leaves a client still sending
        // into a closed connection. Its bytes stay reserved from the budget
        // of buffered bodies until the request is answered.
        let (request, _body_bytes) = match self.read_body(request).await {
            Ok(read) => read,
            Err(error) => {
                let message = error.to_string();
                let mut response = match error {
                    BodyError::TooLarge { .. } => {
                        json_error(StatusCode::PAYLOAD_TOO_LARGE, message)
                    }
                    BodyError::TimedOut(_) => json_error(StatusCode::REQUEST_TIMEOUT, message),
                    BodyError::Read(_) => json_error(StatusCode::BAD_REQUEST, message),
                    BodyError::Busy(_) => retry_later(message),
                };
                // The body may be left partly unread (refused by its declared
                // length, cut off at the limit, lingered on for a while only),
                // and then the connection carries no further request: say so
                // (RFC 9112 9.6), or a client pools it and its next request
                // meets a reset.
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                return (response, None);
            }
        };
        let path = request.uri().path().to_string();
        let request = match &self.repository_api {
            Some(api) => match api.handle(request).await {
                Ok(response) => return (response, None),
                Err(request) => request,
            },
            None => request,
        };
        let Some(matched) = self.routes.route(&path) else {
            let error = json_error(StatusCode::NOT_FOUND, format!("no route for {path}"));
            return (error, None);
        };
        let index = matched.index;
        let component = match self.routes.answer(index) {
            Answer::Component(component) => component,
            Answer::Static(response) => return (response.response(), Some(index)),
        };
        let request = match self.routes.with_spin_headers(request, &matched, client) {
            Ok(request) => request,
            Err(problem) => return (json_error(StatusCode::BAD_REQUEST, problem), Some(index)),
        };
        let running = match self.admission.admit().await {
            Ok(permit) => permit,
            Err(busy) => return (retry_later(busy.to_string()), Some(index)),
        };
        let response = match component.handle(request, running, 0).await {
            Ok(response) => response,
            Err(error) => failure_response(component, error),
        };
        (response, Some(index))
    }

    /// The route (as written in the manifest) a path goes to, if any.
    pub fn route(&self, path: &str) -> Option<&str> {
        let matched = self.routes.route(path)?;
        Some(self.routes.label(matched.index))
    }

    /// The request with its body read whole, within the limits, and the
    /// bytes it holds from the budget of buffered bodies.
    async fn read_body(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<(http::Request<WasiBody>, Reservation<'_>), BodyError> {
        let limit = self.limits.max_body_bytes;
        // Refused before it is stored, when the client says how much is coming.
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let (parts, mut body) = request.into_parts();
        let declared = match declared.map(usize::try_from) {
            Some(Ok(length)) if length <= limit => Some(length),
            Some(_) => {
                body::linger(&mut body).await;
                return Err(BodyError::TooLarge { limit });
            }
            None => None,
        };
        let mut reservation = self.bodies.reservation();
        // A declared length is reserved whole before a byte is read; the
        // bytes of a body without one, as they come.
        if let Some(length) = declared
            && let Err(busy) = reservation.grow_to(length).await
        {
            body::linger(&mut body).await;
            return Err(busy.into());
        }
        let bytes = body::read_limited(
            body,
            limit,
            self.limits.client_timeout,
            &mut reservation,
            declared,
        )
        .await?;
        Ok((
            http::Request::from_parts(parts, body::full(bytes)),
            reservation,
        ))
    }
}

/// What the client is told when its function gave no answer.
fn failure_response(
    component: &ComponentRuntime,
    error: FunctionError,
) -> http::Response<WasiBody> {
    let id = &component.id;
    let (status, message) = match error {
        FunctionError::Stopped(Failure::Deadline) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "function {id} did not answer within {:?} and was stopped",
                component.timeout
            ),
        ),
        FunctionError::Stopped(Failure::Memory { limit }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "function {id} failed: it ran out of memory (an instance may use {} MiB)",
                limit >> 20
            ),
        ),
        FunctionError::Stopped(Failure::Table { limit }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("function {id} failed: it grew a table past {limit} elements"),
        ),
        FunctionError::Stopped(Failure::TensorBudget { limit }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "function {id} failed: it held more than {} MiB of wasi-nn tensors \
                     (--max-tensor-bytes-per-instance)",
                limit >> 20
            ),
        ),
        FunctionError::Stopped(Failure::TensorRank { rank }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "function {id} failed: it made a wasi-nn tensor of {rank} dimensions \
                     (at most {})",
                crate::nn::wit::MAX_RANK
            ),
        ),
        FunctionError::Stopped(Failure::ClientGone) => (
            // No one reads it; the log does.
            StatusCode::from_u16(CLIENT_CLOSED_REQUEST).unwrap_or(StatusCode::BAD_REQUEST),
            format!("function {id} was stopped: its client went away"),
        ),
        FunctionError::Instantiation(error) => {
            tracing::warn!(component = %id, "cannot instantiate: {error}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("function {id} could not be started: {error}"),
            )
        }
        FunctionError::Failed { error, cause } => {
            tracing::debug!(component = %id, "request failed: {error:#}");
            let message = match cause {
                Some(cause) => {
                    format!("function {id} failed: {cause} (its output is in the server log)")
                }
                None => failure_message(id, &error),
            };
            (StatusCode::INTERNAL_SERVER_ERROR, message)
        }
    };
    json_error(status, message)
}

/// A request being served: if its future is dropped before the answer (its
/// client went away; hyper drops it when the connection closes), it is still
/// logged and counted, as 499.
struct Unanswered<'a> {
    app: &'a App,
    arrival: Option<Arrival>,
}

impl Unanswered<'_> {
    fn answer(&mut self) -> Arrival {
        self.arrival
            .take()
            .expect("a request is answered once, by its own handler")
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(arrival) = self.arrival.take() {
            let route = self.app.routes.route(arrival.path()).map(|m| m.index);
            let (route, component) = self.app.labels(route);
            arrival.abandoned(&self.app.metrics, route, component);
        }
    }
}

/// 503 with `Retry-After`: the client may try again in a second.
fn retry_later(message: String) -> http::Response<WasiBody> {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A component's `allowed_outbound_hosts`, with the application's variables.
fn outbound_policy(
    manifest: &Manifest,
    spec: &ComponentSpec,
    values: &std::collections::HashMap<String, String>,
) -> Result<OutboundPolicy, ManifestError> {
    let key = || format!("component.{}.allowed_outbound_hosts", spec.id);
    let mut hosts = Vec::new();
    for template in &spec.allowed_outbound_hosts {
        let entry = template
            .render(values)
            .ok_or_else(|| manifest.error(key(), "refers to a variable without a value"))?;
        hosts.push(AllowedHost::parse(&entry).map_err(|problem| manifest.error(key(), problem))?);
    }
    Ok(OutboundPolicy::new(hosts))
}

/// Compiles a component, through the cache when there is one.
pub fn compile(
    runtime: &Runtime,
    bytes: &[u8],
    cache: Option<&CompileCache>,
) -> Result<(Component, Compiled), String> {
    let invalid = |e: wasmtime::Error| format!("not a valid WebAssembly component: {e:#}");
    match cache {
        Some(cache) => cache
            .load(&runtime.engine, bytes)
            .map_err(|error| match error {
                CacheError::Untrusted(untrusted) => untrusted.to_string(),
                CacheError::Compile(error) => invalid(error),
            }),
        None => Component::new(&runtime.engine, bytes)
            .map(|c| (c, Compiled::Fresh))
            .map_err(invalid),
    }
}

/// What the client is told when a function fails. A trap's details (the panic
/// message, the wasm backtrace) are logged when its instance is dropped; they
/// do not always travel with the request's error, so the answer points there.
fn failure_message(component: &str, error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("function {component} failed: it trapped: {trap}"),
        None => format!(
            "function {component} failed before it answered (it trapped or gave no response; \
             the server log has the details)"
        ),
    }
}

/// A request body from bytes (for embedders and tests).
pub fn request_body(bytes: impl Into<bytes::Bytes>) -> WasiBody {
    body::full(bytes.into())
}
