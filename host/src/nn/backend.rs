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

use super::model_config::ModelConfig;
use super::tensor::invalid;
use super::{ModelError, onnxruntime, tract};

/// A backend that can run models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum BackendKind {
    /// ONNX Runtime, the native library (`ORT_DYLIB_PATH` or `.deps/onnxruntime`).
    #[value(name = "onnxruntime")]
    OnnxRuntime,
    /// tract, pure Rust and always available.
    Tract,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::OnnxRuntime => "onnxruntime",
            BackendKind::Tract => "tract",
        })
    }
}

/// A model loaded by a backend: runs named inputs to named outputs.
pub trait Runner: Send + Sync + 'static {
    /// The model's input names, in the model's order.
    fn input_names(&self) -> &[String];
    /// Runs the model. Every input must be given once, by name; all outputs are returned.
    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError>;
}

/// Loads the model in `dir` with `kind`.
pub fn load(
    kind: BackendKind,
    dir: &Path,
    config: &ModelConfig,
) -> Result<Arc<dyn Runner>, ModelError> {
    Ok(match kind {
        BackendKind::OnnxRuntime => Arc::new(onnxruntime::OnnxRuntimeModel::load(dir, config)?),
        BackendKind::Tract => Arc::new(tract::TractModel::load(dir, config)?),
    })
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
                .input_names()
                .get(i as usize)
                .cloned()
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

/// Checks that the guest named each of the model's inputs exactly once and
/// nothing else, and returns them in the model's order.
pub fn order_inputs(
    expected: &[String],
    mut given: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, BackendError> {
    if let Some(extra) = given.iter().find(|t| !expected.contains(&t.name)) {
        return Err(invalid(format!(
            "the model has no input named {:?}; its inputs are {expected:?}",
            extra.name
        )));
    }
    let mut ordered = Vec::with_capacity(expected.len());
    for name in expected {
        let position = given
            .iter()
            .position(|t| &t.name == name)
            .ok_or_else(|| invalid(format!("input {name:?} is missing")))?;
        ordered.push(given.swap_remove(position));
        if given.iter().any(|t| &t.name == name) {
            return Err(invalid(format!("input {name:?} is given twice")));
        }
    }
    Ok(ordered)
}
