//! wasi-nn as functions see it (`wasi:nn@0.2.0-rc-2024-10-28`), with the
//! limits of one instance.
//!
//! A function loads a model by name, from its `ai_models` only; loading a
//! graph from bytes is refused (models are loaded once, by the host, from the
//! model repository). It may create a bounded number of execution contexts
//! and tensors of a bounded size, and all its tensors together are bounded
//! too: they live in host memory, outside the instance's own memory limit.
//! Every refusal is a wasi-nn error carrying the host's whole message, except
//! the tensor budget: a tensor constructor cannot fail, so going past it
//! traps the instance.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor as BackendTensor};

use super::tensor::InvalidInput;
use super::{ComponentModels, ServedModel};
use crate::runtime::state::{Failure, InstanceReport};

mod generated {
    wasmtime::component::bindgen!({
        world: "ml",
        path: "../wit/wasi-nn.wit",
        with: {
            "wasi:nn/graph.graph": super::Graph,
            "wasi:nn/tensor.tensor": wasmtime_wasi_nn::Tensor,
            "wasi:nn/inference.graph-execution-context": super::ExecutionContext,
            "wasi:nn/errors.error": super::NnError,
        },
        imports: { default: trappable },
        trappable_error_type: {
            "wasi:nn/errors.error" => super::NnError,
        },
    });
}

use generated::wasi::nn::errors::ErrorCode;
use generated::wasi::nn::graph::{ExecutionTarget, GraphBuilder, GraphEncoding};
use generated::wasi::nn::tensor::{TensorData, TensorDimensions, TensorType};
use generated::wasi::nn::{errors, graph, inference, tensor};

/// A graph as a function holds it: the model it was loaded from goes with it,
/// to its execution contexts.
pub struct Graph(Arc<ServedModel>);

/// An execution context, and the model whose compute times it records.
pub struct ExecutionContext {
    context: wasmtime_wasi_nn::ExecutionContext,
    model: Arc<ServedModel>,
}

/// What one instance may do with wasi-nn.
#[derive(Debug, Clone, Copy)]
pub struct NnLimits {
    /// Bytes of one input tensor.
    pub max_tensor_bytes: usize,
    /// Bytes of all the tensors the instance creates.
    pub max_tensor_bytes_per_instance: usize,
    /// Execution contexts the instance creates.
    pub max_execution_contexts: usize,
}

/// One instance's wasi-nn state.
pub struct InstanceNn {
    models: ComponentModels,
    limits: NnLimits,
    contexts: usize,
    tensor_bytes: usize,
    report: Arc<InstanceReport>,
}

impl InstanceNn {
    pub fn new(models: ComponentModels, limits: NnLimits, report: Arc<InstanceReport>) -> Self {
        Self {
            models,
            limits,
            contexts: 0,
            tensor_bytes: 0,
            report,
        }
    }

    pub fn models(&self) -> &ComponentModels {
        &self.models
    }
}

/// A wasi-nn error, as the guest's `error` resource.
#[derive(Debug)]
pub struct NnError {
    code: ErrorCode,
    message: String,
}

impl NnError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A backend's error, with its whole chain of causes: `BackendError`'s own
    /// message alone ("Failed while accessing backend") says nothing.
    fn backend(error: BackendError) -> Self {
        match error {
            BackendError::BackendAccess(inner) if inner.is::<InvalidInput>() => {
                Self::new(ErrorCode::InvalidArgument, inner.to_string())
            }
            BackendError::BackendAccess(inner) => {
                Self::new(ErrorCode::RuntimeError, format!("{inner:#}"))
            }
            other => Self::new(ErrorCode::RuntimeError, other.to_string()),
        }
    }
}

/// The tensors of one instance went past their budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "wasi-nn: the function created more than {limit} bytes of tensors \
     (--max-tensor-bytes-per-instance)"
)]
pub struct TensorBudgetExceeded {
    pub limit: usize,
}

/// The table and the instance's state, borrowed together.
pub struct NnView<'a> {
    pub table: &'a mut ResourceTable,
    pub nn: &'a mut InstanceNn,
}

impl NnView<'_> {
    fn fail<T>(&mut self, error: NnError) -> wasmtime::Result<Result<T, Resource<NnError>>> {
        Ok(Err(self.table.push(error)?))
    }
}

struct HasNnView;

impl HasData for HasNnView {
    type Data<'a> = NnView<'a>;
}

/// Adds wasi-nn to `linker`; `view` borrows the instance's state.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> NnView<'_>,
) -> wasmtime::Result<()> {
    graph::add_to_linker::<_, HasNnView>(linker, view)?;
    tensor::add_to_linker::<_, HasNnView>(linker, view)?;
    inference::add_to_linker::<_, HasNnView>(linker, view)?;
    errors::add_to_linker::<_, HasNnView>(linker, view)?;
    Ok(())
}

impl graph::Host for NnView<'_> {
    fn load(
        &mut self,
        _builder: Vec<GraphBuilder>,
        _encoding: GraphEncoding,
        _target: ExecutionTarget,
    ) -> wasmtime::Result<Result<Resource<Graph>, Resource<NnError>>> {
        self.fail(NnError::new(
            ErrorCode::Security,
            "this host does not load graphs from bytes: load a model by name \
             (load-by-name) from the component's ai_models",
        ))
    }

    fn load_by_name(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<Graph>, Resource<NnError>>> {
        match self.nn.models.get(&name) {
            Some(model) => Ok(Ok(self.table.push(Graph(model.clone()))?)),
            None => self.fail(NnError::new(
                ErrorCode::NotFound,
                format!("no model named {name:?} in this component's ai_models"),
            )),
        }
    }
}

impl graph::HostGraph for NnView<'_> {
    fn init_execution_context(
        &mut self,
        graph: Resource<Graph>,
    ) -> wasmtime::Result<Result<Resource<ExecutionContext>, Resource<NnError>>> {
        let limit = self.nn.limits.max_execution_contexts;
        if self.nn.contexts >= limit {
            return self.fail(NnError::new(
                ErrorCode::TooLarge,
                format!("a function may create at most {limit} execution contexts"),
            ));
        }
        let model = self.table.get(&graph)?.0.clone();
        match model.graph.init_execution_context() {
            Ok(context) => {
                self.nn.contexts += 1;
                Ok(Ok(self.table.push(ExecutionContext { context, model })?))
            }
            Err(error) => self.fail(NnError::backend(error)),
        }
    }

    fn drop(&mut self, graph: Resource<Graph>) -> wasmtime::Result<()> {
        self.table.delete(graph)?;
        Ok(())
    }
}

impl inference::HostGraphExecutionContext for NnView<'_> {
    fn compute(
        &mut self,
        context: Resource<ExecutionContext>,
        inputs: Vec<(String, Resource<Tensor>)>,
    ) -> wasmtime::Result<Result<Vec<(String, Resource<Tensor>)>, Resource<NnError>>> {
        let mut tensors = Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            let tensor = self.table.delete(tensor)?;
            let limit = self.nn.limits.max_tensor_bytes;
            if tensor.data.len() > limit {
                return self.fail(NnError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "input {name:?} has {} bytes; a tensor may have at most {limit}",
                        tensor.data.len()
                    ),
                ));
            }
            tensors.push(BackendTensor { name, tensor });
        }
        let context = self.table.get_mut(&context)?;
        let started = Instant::now();
        let computed = context.context.compute_with_io(tensors);
        context
            .model
            .compute_seconds
            .observe(started.elapsed().as_secs_f64());
        match computed {
            Ok(outputs) => {
                let mut named = Vec::with_capacity(outputs.len());
                for BackendTensor { name, tensor } in outputs {
                    named.push((name, self.table.push(tensor)?));
                }
                Ok(Ok(named))
            }
            Err(error) => self.fail(NnError::backend(error)),
        }
    }

    fn drop(&mut self, context: Resource<ExecutionContext>) -> wasmtime::Result<()> {
        self.table.delete(context)?;
        Ok(())
    }
}

impl tensor::HostTensor for NnView<'_> {
    fn new(
        &mut self,
        dimensions: TensorDimensions,
        ty: TensorType,
        data: TensorData,
    ) -> wasmtime::Result<Resource<Tensor>> {
        let limit = self.nn.limits.max_tensor_bytes_per_instance;
        self.nn.tensor_bytes = self.nn.tensor_bytes.saturating_add(data.len());
        if self.nn.tensor_bytes > limit {
            self.nn.report.set_failure(Failure::TensorBudget { limit });
            return Err(TensorBudgetExceeded { limit }.into());
        }
        Ok(self
            .table
            .push(Tensor::new(dimensions, to_backend(ty), data))?)
    }

    fn dimensions(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<TensorDimensions> {
        Ok(self.table.get(&tensor)?.dimensions.clone())
    }

    fn ty(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<TensorType> {
        Ok(from_backend(self.table.get(&tensor)?.ty))
    }

    fn data(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<TensorData> {
        Ok(self.table.get(&tensor)?.data.clone())
    }

    fn drop(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<()> {
        self.table.delete(tensor)?;
        Ok(())
    }
}

impl errors::HostError for NnView<'_> {
    fn code(&mut self, error: Resource<NnError>) -> wasmtime::Result<ErrorCode> {
        Ok(self.table.get(&error)?.code)
    }

    fn data(&mut self, error: Resource<NnError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&error)?.message.clone())
    }

    fn drop(&mut self, error: Resource<NnError>) -> wasmtime::Result<()> {
        self.table.delete(error)?;
        Ok(())
    }
}

impl errors::Host for NnView<'_> {
    fn convert_error(&mut self, error: NnError) -> wasmtime::Result<NnError> {
        Ok(error)
    }
}

impl tensor::Host for NnView<'_> {}
impl inference::Host for NnView<'_> {}

/// The backends' tensor type is `wasmtime-wasi-nn`'s, generated from the same WIT.
fn to_backend(ty: TensorType) -> wasmtime_wasi_nn::wit::TensorType {
    use wasmtime_wasi_nn::wit::TensorType as B;
    match ty {
        TensorType::Fp16 => B::Fp16,
        TensorType::Fp32 => B::Fp32,
        TensorType::Fp64 => B::Fp64,
        TensorType::Bf16 => B::Bf16,
        TensorType::U8 => B::U8,
        TensorType::I32 => B::I32,
        TensorType::I64 => B::I64,
    }
}

fn from_backend(ty: wasmtime_wasi_nn::wit::TensorType) -> TensorType {
    use wasmtime_wasi_nn::wit::TensorType as B;
    match ty {
        B::Fp16 => TensorType::Fp16,
        B::Fp32 => TensorType::Fp32,
        B::Fp64 => TensorType::Fp64,
        B::Bf16 => TensorType::Bf16,
        B::U8 => TensorType::U8,
        B::I32 => TensorType::I32,
        B::I64 => TensorType::I64,
    }
}
