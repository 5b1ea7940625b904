//! Pre-initialisation: work that is the same for every request, done once
//! before the component is deployed and kept in a snapshot of its memory
//! (Wizer: `wasi-infer preinit`, or `wasmtime wizer`).
//!
//! A function exports `wizer-initialize` with [`export_preinit!`](bindings::export_preinit) and
//! prepares each model in it with [`run`]: parsed metadata, labels, a
//! tokenizer, and in the self-contained build the optimised model itself
//! ([`crate::nn::prepare`]). Every request then gets a fresh instance that
//! starts from that memory, as it would start from the component's data.
//!
//! The initialiser runs with the model repository mounted at `/models` and
//! prepares every model folder there, or those named in
//! `WASI_INFER_PREINIT_MODELS` (comma-separated). What the snapshot holds is
//! only valid for those files: a pre-initialised component is built for its
//! models, and built again when they change.
//!
//! Two pieces of wasi-libc state must not outlive the initialiser, since
//! they hold the initialising host's handles and environment: the table of
//! preopened directories and the environment. [`run`] resets both, so a
//! request still reads `/models` (a model not in the snapshot) and its own
//! environment from the host that serves it.

use crate::{ApiError, MODELS_DIR};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        inline: "package wasi-infer:preinit;

            world preinit {
                /// Wizer's default initialiser name.
                export wizer-initialize: func();
            }",
        pub_export_macro: true,
        export_macro_name: "export_preinit",
        default_bindings_module: "wasi_infer_guest::preinit::bindings",
    });
}

pub use bindings::{Guest, export_preinit};

/// Which models the initialiser prepares, when not all of `/models`.
pub const MODELS_VAR: &str = "WASI_INFER_PREINIT_MODELS";

#[cfg(target_os = "wasi")]
unsafe extern "C" {
    /// wasi-libc: forget the preopened directories, so they are fetched
    /// again from the host that runs the snapshot.
    fn __wasilibc_reset_preopens();
    /// wasi-libc: forget the environment, so it is read again likewise.
    fn __wasilibc_deinitialize_environ();
}

/// Prepares each model with `prepare`, which answers whether the model is
/// one this function serves (an image classifier for `image-classify`);
/// others are skipped. A model it serves but cannot prepare stops the
/// pre-initialisation with its error: a snapshot must not silently lack one.
pub fn run(mut prepare: impl FnMut(&str) -> Result<bool, ApiError>) {
    let result = models().and_then(|models| {
        let mut prepared = 0;
        for model in &models {
            if prepare(model).map_err(|e| format!("model {model:?}: {}", e.message))? {
                prepared += 1;
            }
        }
        if prepared == 0 {
            return Err(format!(
                "none of the models in {MODELS_DIR} ({}) is one this function serves",
                models.join(", ")
            ));
        }
        Ok(())
    });
    // SAFETY: both only drop wasi-libc's cached state, which is fetched
    // again on next use; nothing borrows it here. (Natively, for the
    // functions' unit tests, there is no such state.)
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasilibc_reset_preopens();
        __wasilibc_deinitialize_environ();
    }
    if let Err(e) = result {
        // A trap is how an initialiser fails: the tool reports it and writes
        // no snapshot.
        panic!("pre-initialisation failed: {e}");
    }
}

/// The model folders to prepare, sorted.
fn models() -> Result<Vec<String>, String> {
    if let Ok(list) = std::env::var(MODELS_VAR) {
        let names: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() {
            return Err(format!("{MODELS_VAR} names no model"));
        }
        return Ok(names);
    }
    let entries = std::fs::read_dir(MODELS_DIR)
        .map_err(|e| format!("cannot list {MODELS_DIR} (mount the model repository there): {e}"))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {MODELS_DIR}: {e}"))?;
        let is_model = entry.path().join("model.toml").is_file();
        if let (true, Some(name)) = (is_model, entry.file_name().to_str()) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}
