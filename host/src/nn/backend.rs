//! The backends that run models, and the glue between them and wasi-nn.
//!
//! A backend loads a model into a [`Runner`]; [`graph`] wraps a runner into the
//! `wasmtime-wasi-nn` graph that guests receive from `load-by-name`. Each
//! execution context borrows the shared runner, so a model is loaded once and
//! serves every request.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor,
};
use wasmtime_wasi_nn::{ExecutionContext, Graph, Tensor};

use super::interface::{DataType, ModelInterface, format_shape};
use super::model_config::{ModelConfig, ModelFormat};
use super::tensor::{ElementType, checked_shape, invalid, invalid_input};
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

/// A model loaded by a backend: runs named inputs to named outputs.
pub trait Runner: Send + Sync + 'static {
    /// The model's inputs and outputs, as the model states them.
    fn interface(&self) -> &ModelInterface;
    /// Runs the model. Every input must be given once, by name; all outputs are
    /// returned, in the model's order.
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError>;
    /// Waits for work the backend still does after loading (ONNX Runtime builds
    /// its extra sessions while the model already serves), e.g. so that timing
    /// trials do not share the cores with it.
    fn settle(&self) {}
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

/// A native library named by an environment variable (`ORT_DYLIB_PATH`,
/// `OPENVINO_DYLIB_PATH`): `None` when it is not set, an error when it names
/// no file.
pub fn library_from_env(variable: &str) -> Option<Result<std::path::PathBuf, String>> {
    let path = std::path::PathBuf::from(std::env::var_os(variable)?);
    Some(if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{variable}={} does not exist", path.display()))
    })
}

/// The names of a model's inputs, in the model's order.
pub fn input_names(interface: &ModelInterface) -> Vec<String> {
    interface.inputs.iter().map(|t| t.name.clone()).collect()
}

/// The wasi-nn graph of a loaded model.
pub fn graph(runner: Arc<dyn Runner>) -> Graph {
    let graph: Box<dyn BackendGraph> = Box::new(SharedGraph(runner));
    Graph::from(graph)
}

struct SharedGraph(Arc<dyn Runner>);

impl BackendGraph for SharedGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = Box::new(Context {
            runner: self.0.clone(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        Ok(ExecutionContext::from(context))
    }
}

/// One guest execution context. `compute` with inputs is the WIT path; the
/// stored inputs and outputs serve the older `set-input`/`get-output` calls.
struct Context {
    runner: Arc<dyn Runner>,
    inputs: Vec<NamedTensor>,
    outputs: Vec<NamedTensor>,
}

impl Context {
    fn input_name(&self, id: Id) -> Result<String, BackendError> {
        match id {
            Id::Name(name) => Ok(name),
            Id::Index(i) => self
                .runner
                .interface()
                .inputs
                .get(i as usize)
                .map(|t| t.name.clone())
                .ok_or_else(|| invalid(format!("the model has no input #{i}"))),
        }
    }
}

impl BackendExecutionContext for Context {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = self.input_name(id)?;
        self.inputs.retain(|t| t.name != name);
        self.inputs.push(NamedTensor {
            name,
            tensor: tensor.clone(),
        });
        Ok(())
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            Some(inputs) => self.runner.run(inputs).map(Some),
            None => {
                let inputs = std::mem::take(&mut self.inputs);
                self.outputs = self.runner.run(inputs)?;
                Ok(None)
            }
        }
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let found = match &id {
            Id::Index(i) => self.outputs.get(*i as usize),
            Id::Name(name) => self.outputs.iter().find(|t| &t.name == name),
        };
        found
            .map(|t| t.tensor.clone())
            .ok_or_else(|| invalid(format!("no output {id:?}: call compute first")))
    }
}

/// Runs blocking inference without stalling the async runtime: on a
/// multi-threaded tokio runtime the worker hands its other tasks to a peer first.
pub fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A guest's input, checked against the model: its dimensions as `usize`.
pub struct CheckedInput {
    pub name: String,
    pub tensor: Tensor,
    pub dims: Vec<usize>,
}

/// Checks that the guest named each of the model's inputs exactly once and
/// nothing else, each with the model's element type, a shape the model takes
/// and as many bytes as that shape needs; returns them in the model's order.
pub fn order_inputs(
    interface: &ModelInterface,
    mut given: Vec<NamedTensor>,
) -> Result<Vec<CheckedInput>, BackendError> {
    let expected = &interface.inputs;
    if let Some(extra) = given
        .iter()
        .find(|t| !expected.iter().any(|e| e.name == t.name))
    {
        return Err(invalid_input(format!(
            "the model has no input named {:?}; its inputs are {:?}",
            extra.name,
            input_names(interface)
        )));
    }
    let mut ordered = Vec::with_capacity(expected.len());
    for info in expected {
        let name = &info.name;
        let position = given
            .iter()
            .position(|t| &t.name == name)
            .ok_or_else(|| invalid_input(format!("input {name:?} is missing")))?;
        let NamedTensor { name, tensor } = given.swap_remove(position);
        if given.iter().any(|t| t.name == name) {
            return Err(invalid_input(format!("input {name:?} is given twice")));
        }
        let ty = ElementType::from_wasi(tensor.ty);
        if info.ty != DataType::Known(ty) {
            return Err(invalid_input(format!(
                "input {name:?} is {ty}, but the model takes {}",
                info.ty
            )));
        }
        let dims = checked_shape(&name, &tensor)?;
        if let Some(shape) = &info.shape {
            let fits = dims.len() == shape.len()
                && dims
                    .iter()
                    .zip(shape)
                    .all(|(&d, &want)| want < 0 || d as i64 == want);
            if !fits {
                return Err(invalid_input(format!(
                    "input {name:?} has shape {dims:?}, but the model takes {}",
                    format_shape(shape)
                )));
            }
        }
        if dims.contains(&0) {
            return Err(invalid_input(format!(
                "input {name:?} has an empty dimension: {dims:?}"
            )));
        }
        ordered.push(CheckedInput { name, tensor, dims });
    }
    Ok(ordered)
}
