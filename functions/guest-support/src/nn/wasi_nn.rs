//! The default build's backend: the host loads the model (once, for every
//! request) and runs it natively; the tensors cross into it through wasi-nn.

use super::bindings::wasi::nn::graph;
use super::bindings::wasi::nn::tensor::{Tensor, TensorType};
use super::{Failure, Output};

/// Named in error messages.
pub const NAME: &str = "wasi-nn";
pub const LOADING: &str = "loading the model";

/// An input, already copied into the host.
pub struct InputTensor(Tensor);

impl InputTensor {
    pub fn new(dims: &[u32], ty: TensorType, bytes: &[u8]) -> Self {
        Self(Tensor::new(dims, ty, bytes))
    }
}

/// The host loads every model once, for all instances: nothing to do here.
pub fn prepare(_model: &str) -> Result<(), crate::ApiError> {
    Ok(())
}

pub fn run(model: &str, inputs: Vec<(String, InputTensor)>) -> Result<Vec<Output>, Failure> {
    Session::open(model)?.compute(inputs)
}

/// A model loaded by name with an execution context, for many computes.
pub struct Session {
    // The context borrows nothing from the graph in wasi-nn, but is kept
    // beside it: the host may tie the context's life to its graph's.
    _graph: graph::Graph,
    context: super::bindings::wasi::nn::inference::GraphExecutionContext,
}

fn failed(doing: &'static str) -> impl Fn(super::bindings::wasi::nn::errors::Error) -> Failure {
    move |e| Failure {
        doing,
        code: e.code(),
        message: e.data(),
    }
}

impl Session {
    pub fn open(model: &str) -> Result<Self, Failure> {
        let graph = graph::load_by_name(model).map_err(failed(LOADING))?;
        let context = graph
            .init_execution_context()
            .map_err(failed("creating an execution context"))?;
        Ok(Self {
            _graph: graph,
            context,
        })
    }

    pub fn compute(&self, inputs: Vec<(String, InputTensor)>) -> Result<Vec<Output>, Failure> {
        let outputs = self
            .context
            .compute(inputs.into_iter().map(|(name, t)| (name, t.0)).collect())
            .map_err(failed("running the model"))?;
        Ok(outputs
            .into_iter()
            .map(|(name, tensor)| Output {
                name,
                ty: tensor.ty(),
                dims: tensor.dimensions(),
                data: tensor.data(),
            })
            .collect())
    }
}
