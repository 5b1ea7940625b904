//! What a component instance can reach: the per-request store data.
//!
//! A fresh [`HostState`] is made for every request, from the component's
//! [`InstanceConfig`], which is built once at start-up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::health::Health;
use crate::limits::Limits;
use crate::metrics::{ComponentMetrics, InFlight};
use crate::nn::ComponentModels;
use crate::nn::cancel::Cancel;
use crate::nn::metadata::MetadataView;
use crate::nn::wit::{InstanceNn, NnLimits, NnView, RankExceeded, TensorBudgetExceeded};
use crate::variables::ComponentVariables;

use super::outbound::{Outbound, OutboundConfig};

/// The fixed part of a component's environment, shared by its instances.
#[derive(Clone)]
pub struct InstanceConfig {
    pub component_id: String,
    /// Read-only host directories at guest paths (see `app::files`).
    pub files: Vec<Preopen>,
    pub environment: Vec<(String, String)>,
    pub variables: ComponentVariables,
    pub models: ComponentModels,
    pub limits: Limits,
    pub metrics: ComponentMetrics,
    pub health: Arc<Health>,
    pub outbound: OutboundConfig,
}

/// A host directory an instance sees, read-only, at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
}

/// Why an instance was stopped by the host, when it was: what the client is
/// told (a trap alone would say "unreachable executed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It ran past its deadline.
    Deadline,
    /// It asked for more linear memory than an instance may have.
    Memory { limit: usize },
    /// It asked for more table elements than an instance may have.
    Table { limit: usize },
    /// Its wasi-nn objects held more bytes than an instance may.
    TensorBudget { limit: usize },
    /// It gave a tensor more dimensions than wasi-nn allows.
    TensorRank { rank: usize },
    /// Its client went away before the answer.
    ClientGone,
}

impl Failure {
    /// The failure a host call's error stands for, if the host stopped the
    /// instance through one.
    pub fn of_error(error: &wasmtime::Error) -> Option<Failure> {
        error.chain().find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<TensorBudgetExceeded>() {
                Some(Failure::TensorBudget { limit: e.limit })
            } else {
                cause
                    .downcast_ref::<RankExceeded>()
                    .map(|e| Failure::TensorRank { rank: e.0 })
            }
        })
    }
}

/// What an instance tells the request it serves.
#[derive(Debug, Default)]
pub struct InstanceReport {
    /// How long creating the instance took (reported in `Server-Timing`).
    pub instantiated_in: OnceLock<Duration>,
    /// Set when the host stopped the instance, before the trap unwinds.
    failure: OnceLock<Failure>,
    /// Why the instance failed, set when it is dropped: after its request
    /// has learnt that it failed, so the request waits for it (briefly).
    error: OnceLock<String>,
    ended: AtomicBool,
    ended_notify: tokio::sync::Notify,
    /// Fired when the host stops the instance ([`InstanceReport::stop_for`]):
    /// its running inferences are cancelled, and it is dropped.
    pub stop: Cancel,
}

impl InstanceReport {
    /// Records that the instance is gone, and why it failed if it did.
    pub fn end(&self, error: Option<String>) {
        if let Some(error) = error {
            let _ = self.error.set(error);
        }
        self.ended.store(true, Ordering::Release);
        self.ended_notify.notify_waiters();
    }

    /// Why the instance failed, waiting at most `wait` for it to end.
    pub async fn error(&self, wait: Duration) -> Option<String> {
        let ended = self.ended_notify.notified();
        if !self.ended.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(wait, ended).await;
        }
        self.error.get().cloned()
    }

    /// Records the first reason the host stopped the instance.
    pub fn set_failure(&self, failure: Failure) {
        let _ = self.failure.set(failure);
    }

    /// Stops the instance for good (its deadline, its client gone): records
    /// why, and cancels what it still runs.
    pub fn stop_for(&self, failure: Failure) {
        self.set_failure(failure);
        self.stop.cancel();
    }

    pub fn failure(&self) -> Option<Failure> {
        self.failure.get().copied()
    }
}

pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// Its outbound requests, checked against `allowed_outbound_hosts`.
    pub(crate) outbound: Outbound,
    nn: InstanceNn,
    pub(crate) variables: ComponentVariables,
    pub(crate) report: Arc<InstanceReport>,
    /// The running slot this instance holds: released when the store is
    /// dropped, i.e. when the instance is gone, not when its answer starts.
    pub(crate) running: Option<OwnedSemaphorePermit>,
    health: Arc<Health>,
    /// Counts the instance in `wasi_infer_instances_in_flight` while it lives.
    _in_flight: InFlight,
    max_memory_bytes: usize,
    max_table_elements: usize,
    max_body_bytes: usize,
}

impl HostState {
    /// The state of an instance whose function must answer by `deadline`.
    pub fn new(config: &Arc<InstanceConfig>, deadline: Instant) -> wasmtime::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        // Guest output lands in the server's log; no sockets, no ambient
        // files (outbound HTTP goes through `Outbound`, under the allow-list).
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
        let limits = &config.limits;
        let report = Arc::new(InstanceReport::default());
        let nn = InstanceNn::new(
            config.models.clone(),
            NnLimits {
                max_tensor_bytes: limits.max_tensor_bytes,
                max_tensor_bytes_per_instance: limits.max_tensor_bytes_per_instance,
                max_execution_contexts: limits.max_execution_contexts,
            },
            report.stop.clone(),
        );
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        Ok(Self {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(config.outbound.clone(), deadline),
            nn,
            variables: config.variables.clone(),
            report,
            running: None,
            health: config.health.clone(),
            _in_flight: config.metrics.instance(),
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            max_body_bytes: limits.max_body_bytes,
        })
    }

    /// wasi-nn's view of the instance.
    pub(crate) fn nn(&mut self) -> NnView<'_> {
        NnView {
            table: &mut self.table,
            nn: &mut self.nn,
        }
    }

    /// `wasi-infer:models/metadata`'s view of the instance.
    pub(crate) fn metadata(&mut self) -> MetadataView<'_> {
        MetadataView {
            models: self.nn.models(),
            nn: &self.nn,
            health: &self.health,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

impl HostState {
    /// Whether growing to `desired` stays within `limit`; records `failure`
    /// when it does not.
    fn within(&self, desired: usize, limit: usize, failure: Failure) -> bool {
        let allowed = desired <= limit;
        if !allowed {
            self.report.set_failure(failure);
        }
        allowed
    }
}

/// Memory and tables past the limits are refused (the guest sees its
/// allocation fail), and the reason is recorded for the answer.
impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.max_memory_bytes;
        Ok(self.within(desired, limit, Failure::Memory { limit }))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.max_table_elements;
        Ok(self.within(desired, limit, Failure::Table { limit }))
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
            hooks: &mut self.outbound,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}
