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
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderValue;

use wasmtime::component::Component;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};

use super::Runtime;
use super::state::{HostState, InstanceConfig};

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

pub struct ComponentRuntime {
    pub id: String,
    pub world: HttpWorld,
    handler: ProxyHandler<Instantiator>,
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
            handler: ProxyHandler::new(Instantiator {
                engine: runtime.engine.clone(),
                pre,
                config: Arc::new(config),
            }),
        })
    }

    /// Handles one request in a fresh instance. The time the instance took to
    /// create is added to the response's `Server-Timing` header
    /// (`instantiate;dur=0.08`, milliseconds), after the function's own entries.
    pub async fn handle(
        &self,
        request: wasmtime_wasi_http::handler::Request,
    ) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
        let instantiated_in = Arc::new(OnceLock::new());
        let mut response = self
            .handler
            .handle(instantiated_in.clone(), request)
            .await?;
        if let Some(took) = instantiated_in.get() {
            add_server_timing(response.headers_mut(), "instantiate", *took);
        }
        Ok(response)
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
    type WorkerExpiration = NoExpiry;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, NoExpiry, OneRequest>> {
        let started = Instant::now();
        // Memory is bounded by the pool's slot size (RuntimeLimits::max_memory_bytes).
        let mut store = Store::new(&self.engine, HostState::new(&self.config)?);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        store.data_mut().instantiated_in = started.elapsed();
        Ok(Instance {
            store,
            proxy,
            view: HostState::http,
            expiration: NoExpiry,
            state: OneRequest {
                component_id: self.config.component_id.clone(),
            },
        })
    }
}

/// An instance serves one request, then is dropped.
struct OneRequest {
    component_id: String,
}

impl WorkerState for OneRequest {
    type StoreData = HostState;
    /// Where the request learns how long its instance took to create.
    type RequestData = Arc<OnceLock<Duration>>;

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, HostState>,
        instantiated_in: Arc<OnceLock<Duration>>,
        _task: wasmtime::component::GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let _ = instantiated_in.set(store.data().instantiated_in);
        Box::pin(std::future::pending())
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::warn!(component = %self.component_id, "instance failed: {error:#}");
        }
        drop(store);
    }
}

/// Instances live exactly as long as their one request.
struct NoExpiry;

impl WorkerExpiration for NoExpiry {
    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _state: WorkerStatus,
        _start: Instant,
    ) -> Poll<()> {
        Poll::Pending
    }
}
