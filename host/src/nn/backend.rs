//! The backends that run models: which there are, and loading a model on one.
//! What a loaded model is to the rest of the host is a [`Runner`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::model_config::{ModelConfig, ModelFormat};
use super::runner::Runner;
use super::{ModelError, onnxruntime, openvino, tract};

/// A backend that can run models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum BackendKind {
    /// ONNX Runtime, the native library (`ORT_DYLIB_PATH` or `.deps/onnxruntime`).
    #[value(name = "onnxruntime")]
    OnnxRuntime,
    /// OpenVINO, the native library (`OPENVINO_INSTALL_DIR`, `LD_LIBRARY_PATH` or `.deps/openvino`).
    #[value(name = "openvino")]
    OpenVino,
    /// tract, pure Rust and always available.
    Tract,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [
        BackendKind::OnnxRuntime,
        BackendKind::OpenVino,
        BackendKind::Tract,
    ];

    /// Whether the backend's native library is there (or why not).
    pub fn availability(self) -> Result<(), String> {
        match self {
            BackendKind::OnnxRuntime => onnxruntime::library().map(drop),
            BackendKind::OpenVino => openvino::library().map(drop),
            BackendKind::Tract => Ok(()),
        }
    }

    /// Whether the backend reads models of this format.
    pub fn reads(self, format: ModelFormat) -> bool {
        format == ModelFormat::Onnx || self == BackendKind::OpenVino
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::OnnxRuntime => "onnxruntime",
            BackendKind::OpenVino => "openvino",
            BackendKind::Tract => "tract",
        })
    }
}

/// Loads the model in `dir` with `kind`, and checks its interface against `model.toml`.
pub fn load(
    kind: BackendKind,
    name: &str,
    dir: &Path,
    config: &ModelConfig,
) -> Result<Arc<dyn Runner>, ModelError> {
    let fail = |message: String| ModelError::Backend {
        model: name.to_string(),
        backend: kind,
        message,
    };
    if !kind.reads(config.format) {
        return Err(fail(format!(
            "cannot read format {:?}; only openvino reads OpenVINO IR",
            config.format.to_string()
        )));
    }
    let runner: Arc<dyn Runner> = match kind {
        BackendKind::OnnxRuntime => {
            Arc::new(onnxruntime::OnnxRuntimeModel::load(name, dir, config).map_err(fail)?)
        }
        BackendKind::OpenVino => {
            Arc::new(openvino::OpenVinoModel::load(name, dir, config).map_err(fail)?)
        }
        BackendKind::Tract => Arc::new(tract::TractModel::load(dir, config).map_err(fail)?),
    };
    runner
        .interface()
        .check(&config.inputs, &config.outputs)
        .map_err(fail)?;
    Ok(runner)
}
