//! What a component instance can reach: the per-request store data.
//!
//! A fresh [`HostState`] is made for every request, from the component's
//! [`InstanceConfig`], which is built once at start-up.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wasmtime_wasi_nn::wit::WasiNnCtx;

use crate::manifest::DirMount;
use crate::nn::ComponentModels;
use crate::variables::ComponentVariables;

/// The fixed part of a component's environment, shared by its instances.
#[derive(Clone)]
pub struct InstanceConfig {
    pub component_id: String,
    pub files: Vec<DirMount>,
    pub environment: Vec<(String, String)>,
    pub variables: ComponentVariables,
    pub models: ComponentModels,
}

pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: OutboundDenied,
    pub(crate) nn: WasiNnCtx,
    pub(crate) variables: ComponentVariables,
    /// How long creating this instance took (reported in `Server-Timing`).
    pub(crate) instantiated_in: std::time::Duration,
}

impl HostState {
    pub fn new(config: &Arc<InstanceConfig>) -> wasmtime::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        // Guest output lands in the server's log; no network, no ambient files.
        wasi.inherit_stdout()
            .inherit_stderr()
            .envs(&config.environment)
            // Guests read small files from read-only mounts (a model's
            // metadata and labels), from the page cache in microseconds.
            // Handing each open, stat and read to tokio's blocking pool cost
            // more than the reads themselves (about 1 ms a request).
            .allow_blocking_current_thread(true);
        for mount in &config.files {
            wasi.preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly)?;
        }
        // No backends: guests load only the host's preloaded models, by name.
        let nn = WasiNnCtx::new([], config.models.clone().into());
        Ok(Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: OutboundDenied,
            nn,
            variables: config.variables.clone(),
            instantiated_in: std::time::Duration::ZERO,
        })
    }

    /// The resource table and the wasi-nn state, borrowed together.
    pub(crate) fn nn_parts(&mut self) -> (&mut ResourceTable, &mut WasiNnCtx) {
        (&mut self.table, &mut self.nn)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Functions may not make outbound HTTP requests.
struct OutboundDenied;

impl WasiHttpHooks for OutboundDenied {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
