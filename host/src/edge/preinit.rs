//! Pre-initialisation with Wizer (`wasmtime-wizer`, the same release as our
//! wasmtime): runs a component's `wizer-initialize` export once, with the
//! model repository mounted at `/models`, and writes a new component whose
//! memory starts where that call left it. Every request's fresh instance
//! then begins with what the initialiser prepared (parsed metadata, labels,
//! a tokenizer; in the self-contained build, the optimised model).
//!
//! The initialiser gets WASI (read-only `/models`, an environment naming
//! the models to prepare, stderr for its errors) and `wasi:http`'s types;
//! every other import (wasi-nn, Spin's variables) traps if called, since a
//! snapshot must not depend on a host's state that the serving host would
//! not have.

use std::path::{Path, PathBuf};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::runtime::outbound::DenyAll;

/// Where the functions find the model repository.
pub const MODELS_MOUNT: &str = "/models";

/// The environment variable that names the models to prepare (see the
/// functions' `wasi_infer_guest::preinit`).
pub const MODELS_VAR: &str = "WASI_INFER_PREINIT_MODELS";

/// The export Wizer calls.
pub const INIT_FUNC: &str = "wizer-initialize";

/// What to pre-initialise a component with.
#[derive(Debug, Clone)]
pub struct PreinitOptions {
    /// The model repository, mounted read-only at `/models`.
    pub models_dir: PathBuf,
    /// The models to prepare; every model folder when empty.
    pub models: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreinitError {
    #[error("the model repository {0} is not a folder")]
    NoModels(PathBuf),
    #[error(
        "the component exports no `{INIT_FUNC}`: it was not built to be pre-initialised \
         (a wasi-infer function exports it through wasi_infer_guest::preinit)"
    )]
    NoInitialiser,
    #[error("pre-initialising failed: {0:#}")]
    Wizer(wasmtime::Error),
}

/// Runs `component`'s initialiser and returns the pre-initialised component.
pub async fn preinitialize(
    component: &[u8],
    options: &PreinitOptions,
) -> Result<Vec<u8>, PreinitError> {
    if !options.models_dir.is_dir() {
        return Err(PreinitError::NoModels(options.models_dir.clone()));
    }
    let engine = Engine::new(&config()).map_err(PreinitError::Wizer)?;
    if !exports_initialiser(component) {
        return Err(PreinitError::NoInitialiser);
    }
    let mut store = Store::new(
        &engine,
        InitState::new(options).map_err(PreinitError::Wizer)?,
    );
    // Wizer reads the instance's memory back as one list per data segment;
    // a model's weights are tens of megabytes, past the default bound on
    // what one call may hand the host (a guard against hostile guests,
    // whose role here is played by our own initialiser).
    store.set_hostcall_fuel(usize::MAX);
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(PreinitError::Wizer)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(PreinitError::Wizer)?;
    let mut wizer = wasmtime_wizer::Wizer::new();
    // Kept: wasmtime-wizer 48 removes the core module's export of that name
    // but not the component's use of it, which leaves an invalid component
    // (the core export and the component export share the name). Calling
    // it again later only prepares again.
    wizer.keep_init_func(true);
    let (snapshot, _) = wizer
        .run_component(&mut store, component, async |store, instrumented| {
            stub_other_imports(&mut linker, instrumented)?;
            linker.instantiate_async(store, instrumented).await
        })
        .await
        .map_err(PreinitError::Wizer)?;
    Ok(snapshot)
}

/// The WASI packages the initialiser's host provides (`wasi:http` for its
/// types: the component exports a handler).
const PROVIDED: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Defines every other import (wasi-nn, Spin's variables, the models'
/// metadata) as functions that trap when called. (wasmtime's
/// `define_unknown_imports_as_traps` would also stub the WASI interfaces
/// whose version differs from the linker's, which the linker would
/// otherwise match by semver.)
fn stub_other_imports(
    linker: &mut Linker<InitState>,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;
    let engine = linker.engine().clone();
    for (name, item) in component.component_type().imports(&engine) {
        if PROVIDED.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        let mut stubs = linker.instance(name)?;
        for (export, item) in instance.exports(&engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let called = format!("{name}#{export}");
                    stubs.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!(
                            "the initialiser called `{called}`, which a snapshot cannot depend on"
                        )
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stubs.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether the component exports Wizer's initialiser: checked before the
/// work, so that a component built without it gets a message that says so.
fn exports_initialiser(component: &[u8]) -> bool {
    // Parsed, not compiled: the component's own export section.
    wasmparser::Parser::new(0)
        .parse_all(component)
        .filter_map(Result::ok)
        .any(|payload| match payload {
            wasmparser::Payload::ComponentExportSection(exports) => exports
                .into_iter()
                .filter_map(Result::ok)
                .any(|export| export.name.name == INIT_FUNC),
            _ => false,
        })
}

fn config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config
}

/// The initialiser's host: WASI and `wasi:http`'s types, nothing else.
struct InitState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyAll,
    table: ResourceTable,
}

impl InitState {
    fn new(options: &PreinitOptions) -> wasmtime::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().preopened_dir(
            &options.models_dir,
            MODELS_MOUNT,
            FsPerms::ReadOnly,
        )?;
        if !options.models.is_empty() {
            wasi.env(MODELS_VAR, options.models.join(","));
        }
        Ok(Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: DenyAll,
            table: ResourceTable::new(),
        })
    }
}

impl WasiView for InitState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InitState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The conventional name for a pre-initialised component beside its source:
/// `image_classify.wasm` → `image_classify.preinit.wasm`.
pub fn default_output(input: &Path) -> PathBuf {
    input.with_extension("preinit.wasm")
}
