//! What the host knows about the models a function may load
//! (`wasi-infer:models/metadata`, `wit/wasi-infer/models.wit`): their inputs
//! and outputs as the loaded models state them, and whether the server is
//! ready. A function that serves models it was not written for (the Open
//! Inference Protocol) learns everything about them here.
//!
//! A component imports this interface only if it calls it: wit-component
//! keeps the imports the code uses, so functions that link this crate without
//! calling these still run on a plain `wasi:http` host.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-infer/models.wit",
        world: "wasi-infer:models/model-aware",
    });
}

pub use bindings::wasi_infer::models::metadata::{
    DurationStat, ModelMetadata, ServerMetadata, TensorMetadata, VersionStats, get_model, labels,
    list_models, loaded_version, model_ready, ready, server, statistics,
};
