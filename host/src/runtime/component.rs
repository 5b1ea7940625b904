//! One component of the application: compiled once, pre-instantiated, and
//! instantiated afresh for every request.
//!
//! Requests are dispatched through `wasmtime-wasi-http`'s [`ProxyHandler`],
//! which drives both `wasi:http/incoming-handler@0.2` and `wasi:http/handler@0.3`
//! components. Each instance takes exactly one request and is then dropped, so
//! no state leaks from one request to the next.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderValue;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::Component;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre,
    ShouldAccept, WorkerState,
};

use super::Runtime;
use super::deadline::{self, Expiry};
use super::state::{Failure, HostState, InstanceConfig, InstanceReport};

/// Which `wasi:http` world a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpWorld {
    /// `wasi:http/incoming-handler@0.2.x`
    P2,
    /// `wasi:http/handler@0.3.x`
    P3,
}

impl std::fmt::Display for HttpWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpWorld::P2 => "wasi:http@0.2",
            HttpWorld::P3 => "wasi:http@0.3",
        })
    }
}

/// How long a failed request waits to learn why its instance failed.
const CAUSE_WAIT: Duration = Duration::from_millis(200);

pub struct ComponentRuntime {
    pub id: String,
    pub world: HttpWorld,
    /// How long its function has to answer.
    pub timeout: Duration,
    handler: ProxyHandler<Instantiator>,
}

/// Why a function gave no answer.
#[derive(Debug)]
pub enum FunctionError {
    /// The host stopped it at a limit.
    Stopped(Failure),
    /// Its instance could not be created.
    Instantiation(String),
    /// It trapped or returned without answering; `cause` is why, when known.
    Failed {
        error: wasmtime::Error,
        cause: Option<String>,
    },
}

impl ComponentRuntime {
    /// Links and pre-instantiates a compiled component.
    pub fn new(
        runtime: &Runtime,
        component: &Component,
        config: InstanceConfig,
    ) -> wasmtime::Result<Self> {
        let instance_pre = runtime.linker.instantiate_pre(component)?;
        let (pre, world) =
            match wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre.clone()) {
                Ok(pre) => (ProxyPre::P3(pre), HttpWorld::P3),
                Err(_) => (
                    ProxyPre::P2(wasmtime_wasi_http::p2::bindings::ProxyPre::new(
                        instance_pre,
                    )?),
                    HttpWorld::P2,
                ),
            };
        Ok(Self {
            id: config.component_id.clone(),
            world,
            timeout: config.limits.request_timeout,
            handler: ProxyHandler::new(Instantiator {
                engine: runtime.engine.clone(),
                pre,
                config: Arc::new(config),
            }),
        })
    }

    /// Handles one request in a fresh instance, which holds `running` until
    /// it is gone. The time the instance took to create is added to the
    /// response's `Server-Timing` header (`instantiate;dur=0.08`,
    /// milliseconds), before the function's own entries.
    ///
    /// `depth` counts the in-process requests that led here (0 for a
    /// client's; see `outbound`).
    pub async fn handle(
        &self,
        request: wasmtime_wasi_http::handler::Request,
        running: OwnedSemaphorePermit,
        depth: u8,
    ) -> Result<wasmtime_wasi_http::handler::Response, FunctionError> {
        let link = Arc::new(RequestLink::default());
        let dispatch = Dispatch {
            link: link.clone(),
            running,
            depth,
        };
        // Dropped before it resolves: the client went away (see `RequestLink`).
        let abandon = AbandonOnDrop(Some(link.clone()));
        let result = self.handler.handle(dispatch, request).await;
        abandon.disarm();
        let report: Option<Arc<InstanceReport>> = link.report.get().cloned();
        match result {
            Ok(mut response) => {
                if let Some(took) = report.as_ref().and_then(|r| r.instantiated_in.get()) {
                    add_server_timing(response.headers_mut(), "instantiate", *took);
                }
                Ok(response)
            }
            Err(error) => Err(match report {
                _ if error.is::<ExpirationError>() => FunctionError::Stopped(Failure::Deadline),
                None => match error.downcast_ref::<InstantiationError<Dispatch>>() {
                    Some(e) => FunctionError::Instantiation(format!("{:#}", e.error)),
                    None => FunctionError::Failed { error, cause: None },
                },
                Some(report) => {
                    // A trap reaches the instance's end before it reaches us.
                    let cause = report.error(CAUSE_WAIT).await;
                    match report.failure() {
                        Some(failure) => FunctionError::Stopped(failure),
                        None => FunctionError::Failed { error, cause },
                    }
                }
            }),
        }
    }
}

/// Puts `name;dur=<ms>` first in the `Server-Timing` header.
fn add_server_timing(headers: &mut http::HeaderMap, name: &str, took: Duration) {
    const SERVER_TIMING: &str = "server-timing";
    let entry = format!("{name};dur={:.3}", took.as_secs_f64() * 1000.0);
    let value = match headers.get(SERVER_TIMING).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{entry}, {existing}"),
        _ => entry,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(SERVER_TIMING, value);
    }
}

struct Instantiator {
    engine: Engine,
    pre: ProxyPre<HostState>,
    config: Arc<InstanceConfig>,
}

impl HandlerState for Instantiator {
    type StoreData = HostState;
    type WorkerExpiration = Expiry;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiry, OneRequest>> {
        let started = Instant::now();
        // The deadline counts from here: instantiation runs guest code too.
        let deadline = started + self.config.limits.request_timeout;
        let mut store = Store::new(&self.engine, HostState::new(&self.config, deadline)?);
        store.limiter(|state| state);
        deadline::interrupt_at(&mut store, self.config.limits.request_timeout, deadline);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        let report = store.data().report.clone();
        let took = started.elapsed();
        let _ = report.instantiated_in.set(took);
        self.config
            .metrics
            .instantiation_seconds
            .observe(took.as_secs_f64());
        Ok(Instance {
            store,
            proxy,
            view: HostState::http,
            expiration: Expiry::at(deadline, report),
            state: OneRequest {
                component_id: self.config.component_id.clone(),
                deadline,
            },
        })
    }
}

/// What a request hands its instance.
pub struct Dispatch {
    link: Arc<RequestLink>,
    running: OwnedSemaphorePermit,
    depth: u8,
}

/// What a request and the instance serving it know of each other: the
/// request learns what became of its instance; the instance learns that its
/// client went away (the request's future was dropped: hyper drops it when
/// the connection closes), and is stopped, with whatever it computes.
#[derive(Default)]
struct RequestLink {
    report: OnceLock<Arc<InstanceReport>>,
    abandoned: std::sync::atomic::AtomicBool,
}

impl RequestLink {
    /// Called by the instance when it takes the request.
    fn attach(&self, report: Arc<InstanceReport>) {
        use std::sync::atomic::Ordering::SeqCst;
        let _ = self.report.set(report.clone());
        // Whichever of attach and abandon comes second stops the instance.
        if self.abandoned.load(SeqCst) {
            report.stop_for(Failure::ClientGone);
        }
    }

    fn abandon(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.abandoned.store(true, SeqCst);
        if let Some(report) = self.report.get() {
            report.stop_for(Failure::ClientGone);
        }
    }
}

/// Abandons a request whose future is dropped before its answer.
struct AbandonOnDrop(Option<Arc<RequestLink>>);

impl AbandonOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(link) = self.0.take() {
            link.abandon();
        }
    }
}

/// An instance serves one request, then is dropped.
struct OneRequest {
    component_id: String,
    deadline: Instant,
}

impl WorkerState for OneRequest {
    type StoreData = HostState;
    type RequestData = Dispatch;

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        dispatch: Dispatch,
        _task: wasmtime::component::GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        dispatch.link.attach(store.data().report.clone());
        store.data_mut().running = Some(dispatch.running);
        store.data_mut().outbound.depth = dispatch.depth;
        Box::pin(Expiry::future(self.deadline))
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        let report = store.data().report.clone();
        if let Some(failure) = result.as_ref().err().and_then(Failure::of_error) {
            report.set_failure(failure);
        }
        // The instance's memory goes back to the pool before anyone is told.
        drop(store);
        let cause = result.err().map(|error| {
            match report.failure() {
                Some(failure) => {
                    tracing::warn!(component = %self.component_id, ?failure, "instance stopped: {error:#}")
                }
                None => {
                    tracing::warn!(component = %self.component_id, "instance failed: {error:#}")
                }
            }
            error.root_cause().to_string()
        });
        report.end(cause);
    }
}
