//! The component runtime: one wasmtime [`Engine`] and [`Linker`] for the whole
//! application, each component compiled once and pre-instantiated, and a fresh
//! store and instance for every request (see [`component`]).

pub mod cache;
mod cache_trust;
pub mod component;
mod deadline;
pub mod outbound;
pub mod pool;
pub mod state;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::{Limits, size_text};
use crate::variables::{
    ComponentVariables, SpinVariables, bindings as spin_variables, bindings_v3 as spin_variables_v3,
};
pub use cache::{CacheError, CompileCache, Compiled};
pub use cache_trust::UntrustedCache;
pub use component::{ComponentRuntime, HttpWorld};
pub use outbound::{AppLink, InProcess, InProcessTarget, OutboundConfig};
pub use pool::PoolSizes;
pub use state::{Failure, HostState, InstanceConfig, InstanceReport, Preopen};

/// The engine and linker shared by every component of an application.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

impl Runtime {
    pub fn new(limits: &Limits) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // wasi:http@0.3 handlers are async component functions.
        config.wasm_component_model_async(true);
        // Compiled code checks the epoch at loop heads and function entries:
        // how a function that never returns is made to yield, and stopped at
        // its deadline (see `deadline`).
        config.epoch_interruption(true);

        // Pre-reserved slots make per-request instantiation a few microseconds.
        let sizes = PoolSizes::for_limits(limits).map_err(wasmtime::Error::msg)?;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(sizes.component_instances);
        pool.total_core_instances(sizes.core_instances);
        pool.total_memories(sizes.memories);
        pool.total_tables(sizes.tables);
        pool.max_memory_size(limits.max_memory_bytes);
        pool.table_elements(limits.max_table_elements);
        // A request's instance touches a few MiB (the decoded image, the
        // tensor). Returning them to the kernel after each request cost ~500
        // page faults per request, and contention on the process's memory map
        // between the server's threads. Instead a slot keeps them and zeroes
        // them in place for the next instance: with PAGEMAP_SCAN (Linux 6.7+)
        // only the pages that were touched.
        pool.linear_memory_keep_resident(limits.keep_resident_bytes);
        pool.table_keep_resident(64 << 10);
        pool.pagemap_scan(Enabled::Auto);
        // Reuse the slots already used before touching a new one: with the
        // default (up to 100 unused warm slots), new slots are preferred, and
        // as each keeps its resident memory, a long-running server's memory
        // grew towards 100 slots' worth. Now the slots ever used are as many
        // as instances ever ran at once (at most `max_running`).
        pool.max_unused_warm_slots(0);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        // The pool reserves its address space here: too many instances of
        // too much memory fail now, not at the first request.
        let engine = Engine::new(&config).map_err(|error| {
            error.context(format!(
                "cannot reserve the instance pool for --max-instances {} of --max-memory {} each",
                limits.max_instances,
                size_text(limits.max_memory_bytes)
            ))
        })?;
        deadline::start_epoch_ticker(&engine);
        let mut linker = Linker::<HostState>::new(&engine);
        // Full WASI p2 (Rust std imports cli, clocks, filesystem, random, ...) and p3.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        crate::nn::wit::add_to_linker(&mut linker, HostState::nn)?;
        crate::nn::metadata::add_to_linker(&mut linker, HostState::metadata)?;
        spin_variables::fermyon::spin::variables::add_to_linker::<_, HasSelf<ComponentVariables>>(
            &mut linker,
            |s: &mut HostState| &mut s.variables,
        )?;
        spin_variables_v3::spin::variables::variables::add_to_linker::<_, SpinVariables>(
            &mut linker,
            |s: &mut HostState| &s.variables,
        )?;
        Ok(Self { engine, linker })
    }
}
