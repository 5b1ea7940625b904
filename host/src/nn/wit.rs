//! wasi-nn as functions see it (`wasi:nn@0.2.0-rc-2024-10-28`), with the
//! limits of one instance.
//!
//! A function loads a model by name, from its `ai_models` only; loading a
//! graph from bytes is refused (models are loaded once, by the host, from the
//! model repository). It may create a bounded number of execution contexts.
//!
//! Everything a function makes here lives in host memory, outside its own
//! memory limit, so all of it is charged to the instance's budget
//! (`--max-tensor-bytes-per-instance`) while it exists: tensors with their
//! data and dimensions, the outputs a compute returns, error messages, graphs
//! and contexts. Ranks and names are capped, since their lists are copied
//! before they can be looked at. Going past the budget traps the instance
//! (an allocation cannot fail in wasi-nn) with a message naming the limit;
//! every other refusal is a wasi-nn error carrying the host's whole message.
//!
//! `compute` waits for its inference on an inference thread without blocking
//! (see [`super::threads`]): while it waits, the instance's deadline and its
//! client can stop it, and stopping it cancels the inference.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor as BackendTensor};

use super::cancel::Cancel;
use super::stats::Execution;
use super::tensor::{InvalidInput, TooLargeInput};
use super::{ComponentModels, ServedModel};

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
        imports: {
            "wasi:nn/inference.[method]graph-execution-context.compute": async | trappable,
            // A model not loaded yet loads while its request waits.
            "wasi:nn/graph.load-by-name": async | trappable,
            default: trappable,
        },
        trappable_error_type: {
            "wasi:nn/errors.error" => super::NnError,
        },
    });
}

use generated::wasi::nn::errors::ErrorCode;
use generated::wasi::nn::graph::{ExecutionTarget, GraphBuilder, GraphEncoding};
use generated::wasi::nn::tensor::{TensorData, TensorDimensions, TensorType};
use generated::wasi::nn::{errors, graph, inference, tensor};

/// Dimensions a tensor may have: more than any model takes, few enough that
/// a dimensions list cannot be a way to hold memory.
pub const MAX_RANK: usize = 16;

/// Bytes of a name (a model's, an input's) a function may pass.
pub const MAX_NAME_BYTES: usize = 512;

/// What the host keeps for each object besides its data (the table entry,
/// the allocation): charged so that a flood of empty objects is counted too.
const OBJECT_BYTES: usize = 128;

/// A graph as a function holds it: the model it was loaded from goes with it,
/// to its execution contexts.
pub struct Graph(Arc<ServedModel>);

/// An execution context: the model it runs.
pub struct ExecutionContext {
    model: Arc<ServedModel>,
}

/// What one instance may do with wasi-nn.
#[derive(Debug, Clone, Copy)]
pub struct NnLimits {
    /// Bytes of one input tensor.
    pub max_tensor_bytes: usize,
    /// Bytes of host memory the instance's wasi-nn objects may hold at once.
    pub max_tensor_bytes_per_instance: usize,
    /// Execution contexts the instance creates.
    pub max_execution_contexts: usize,
}

/// One instance's wasi-nn state.
pub struct InstanceNn {
    models: ComponentModels,
    limits: NnLimits,
    contexts: usize,
    /// Bytes its wasi-nn objects hold now (see the module's documentation).
    held_bytes: usize,
    /// Fired when the instance is stopped: its inferences are cancelled.
    stop: Cancel,
    /// The version each model's last load by name got (model, version).
    loaded: Vec<(String, String)>,
}

impl InstanceNn {
    pub fn new(models: ComponentModels, limits: NnLimits, stop: Cancel) -> Self {
        Self {
            models,
            limits,
            contexts: 0,
            held_bytes: 0,
            stop,
            loaded: Vec::new(),
        }
    }

    pub fn models(&self) -> &ComponentModels {
        &self.models
    }

    /// The version the last load of `model` by name got.
    pub fn loaded_version(&self, model: &str) -> Option<&str> {
        self.loaded
            .iter()
            .find(|(name, _)| name == model)
            .map(|(_, version)| version.as_str())
    }

    /// Charges `bytes` to the instance's budget, or traps it.
    fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let limit = self.limits.max_tensor_bytes_per_instance;
        match self.held_bytes.checked_add(bytes) {
            Some(held) if held <= limit => {
                self.held_bytes = held;
                Ok(())
            }
            _ => Err(TensorBudgetExceeded { limit }.into()),
        }
    }

    fn refund(&mut self, bytes: usize) {
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
    }
}

/// The host memory a tensor holds.
fn tensor_bytes(tensor: &Tensor) -> usize {
    OBJECT_BYTES + tensor.data.len() + tensor.dimensions.len() * size_of::<u32>()
}

fn error_bytes(error: &NnError) -> usize {
    OBJECT_BYTES + error.message.len()
}

/// A name as a message shows it: at most 64 characters of it.
/// The inferences one compute runs, for the statistics: the first
/// dimension of its first input when the model has a batch dimension.
fn batch_of(model: &ServedModel, inputs: &[BackendTensor]) -> u64 {
    if model.max_batch_size == 0 {
        return 1;
    }
    inputs
        .first()
        .and_then(|t| t.tensor.dimensions.first())
        .map_or(1, |&d| u64::from(d))
}

fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("{:?}...", &name[..end]),
        None => format!("{name:?}"),
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
            BackendError::BackendAccess(inner) if inner.is::<TooLargeInput>() => {
                Self::new(ErrorCode::TooLarge, inner.to_string())
            }
            BackendError::BackendAccess(inner) => {
                Self::new(ErrorCode::RuntimeError, format!("{inner:#}"))
            }
            other => Self::new(ErrorCode::RuntimeError, other.to_string()),
        }
    }
}

/// The wasi-nn objects of one instance went past their budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "wasi-nn: the function holds more than {limit} bytes of tensors and other \
     wasi-nn objects (--max-tensor-bytes-per-instance)"
)]
pub struct TensorBudgetExceeded {
    pub limit: usize,
}

/// A function passed a tensor of too many dimensions.
#[derive(Debug, thiserror::Error)]
#[error("wasi-nn: a tensor may have at most {MAX_RANK} dimensions; the function gave {0}")]
pub struct RankExceeded(pub usize);

/// The instance was stopped (its deadline, its client gone) while it waited
/// for its model to load.
#[derive(Debug, thiserror::Error)]
#[error("wasi-nn: the instance was stopped while it waited for its model to load")]
pub struct StoppedWhileLoading;

/// The instance was stopped (its deadline, its client gone) while it waited
/// for an inference.
#[derive(Debug, thiserror::Error)]
#[error("wasi-nn: the instance was stopped while its inference ran")]
pub struct StoppedInCompute;

/// The table and the instance's state, borrowed together.
pub struct NnView<'a> {
    pub table: &'a mut ResourceTable,
    pub nn: &'a mut InstanceNn,
}

impl NnView<'_> {
    /// Gives the outputs' names to the guest and keeps their tensors in
    /// its table, charged to its tensor budget.
    fn hand_over(
        &mut self,
        outputs: Vec<BackendTensor>,
    ) -> wasmtime::Result<Vec<(String, Resource<Tensor>)>> {
        let mut named = Vec::with_capacity(outputs.len());
        for BackendTensor { name, tensor } in outputs {
            self.nn.charge(tensor_bytes(&tensor))?;
            named.push((name, self.table.push(tensor)?));
        }
        Ok(named)
    }

    /// The error as the guest's resource, charged while it lives.
    fn fail<T>(&mut self, error: NnError) -> wasmtime::Result<Result<T, Resource<NnError>>> {
        self.nn.charge(error_bytes(&error))?;
        Ok(Err(self.table.push(error)?))
    }
}

/// The refusal of a name a function passed, if it is too long.
fn name_refusal(what: &str, name: &str) -> Option<NnError> {
    (name.len() > MAX_NAME_BYTES).then(|| {
        NnError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{what} {} has {} bytes; a name may have at most {MAX_NAME_BYTES}",
                shown(name),
                name.len()
            ),
        )
    })
}

struct HasNnView;

impl HasData for HasNnView {
    type Data<'a> = NnView<'a>;
}

/// Adds wasi-nn to `linker`; `view` borrows the instance's state.
pub fn add_to_linker<T: Send + 'static>(
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

    async fn load_by_name(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<Graph>, Resource<NnError>>> {
        if let Some(error) = name_refusal("model name", &name) {
            return self.fail(error);
        }
        // A model loading on demand is waited for as long as the instance
        // runs: its deadline and its client stop the wait (not the load,
        // which the next request would wait for).
        let stop = self.nn.stop.clone();
        let acquired = tokio::select! {
            acquired = self.nn.models.acquire(&name) => acquired,
            () = stop.cancelled() => return Err(StoppedWhileLoading.into()),
        };
        match acquired {
            Ok(model) => {
                self.nn.charge(OBJECT_BYTES)?;
                // One entry per model (the names a component may load are
                // the store's): replaced, never piled up.
                match self
                    .nn
                    .loaded
                    .iter_mut()
                    .find(|(name, _)| *name == model.name)
                {
                    Some(entry) => entry.1.clone_from(&model.version),
                    None => self
                        .nn
                        .loaded
                        .push((model.name.clone(), model.version.clone())),
                }
                Ok(Ok(self.table.push(Graph(model))?))
            }
            Err(unavailable) => {
                let code = if unavailable.is_not_found() {
                    ErrorCode::NotFound
                } else {
                    // Not the request's fault, nor for good: the function
                    // answers 503 (see guest-support's nn module).
                    ErrorCode::Unknown
                };
                let message = match unavailable {
                    super::Unavailable::NoModel(_) => format!(
                        "no model named {} in this component's ai_models",
                        shown(&name)
                    ),
                    other => other.to_string(),
                };
                self.fail(NnError::new(code, message))
            }
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
        self.nn.charge(OBJECT_BYTES)?;
        self.nn.contexts += 1;
        Ok(Ok(self.table.push(ExecutionContext { model })?))
    }

    fn drop(&mut self, graph: Resource<Graph>) -> wasmtime::Result<()> {
        self.table.delete(graph)?;
        self.nn.refund(OBJECT_BYTES);
        Ok(())
    }
}

impl inference::HostGraphExecutionContext for NnView<'_> {
    async fn compute(
        &mut self,
        context: Resource<ExecutionContext>,
        inputs: Vec<(String, Resource<Tensor>)>,
    ) -> wasmtime::Result<Result<Vec<(String, Resource<Tensor>)>, Resource<NnError>>> {
        let started = Instant::now();
        // The inputs pass to the model: they are the guest's no more.
        let mut tensors = Vec::with_capacity(inputs.len());
        let mut input_bytes = 0;
        let mut refusal = None;
        let limit = self.nn.limits.max_tensor_bytes;
        for (name, tensor) in inputs {
            let tensor = self.table.delete(tensor)?;
            input_bytes += tensor_bytes(&tensor);
            if refusal.is_none() {
                refusal = name_refusal("input", &name).or_else(|| {
                    (tensor.data.len() > limit).then(|| {
                        NnError::new(
                            ErrorCode::InvalidArgument,
                            format!(
                                "input {} has {} bytes; a tensor may have at most {limit}",
                                shown(&name),
                                tensor.data.len()
                            ),
                        )
                    })
                });
            }
            tensors.push(BackendTensor { name, tensor });
        }
        let model = self.table.get(&context)?.model.clone();
        let batch = batch_of(&model, &tensors);
        let input = started.elapsed();
        let timed = match refusal {
            Some(error) => Err(error),
            None => Ok(self.nn.models.run(&model, tensors, &self.nn.stop).await),
        };
        // The inputs are gone with the inference.
        self.nn.refund(input_bytes);
        let (outcome, queue, infer) = match timed {
            Ok(timed) => (
                timed.outcome.map_err(NnError::backend),
                timed.queued,
                timed.ran,
            ),
            Err(error) => (Err(error), None, None),
        };
        let output_started = Instant::now();
        // Every way out is counted: a stopped instance's compute and one
        // whose outputs are past its tensor budget are failures too.
        let answer = if self.nn.stop.is_cancelled() {
            Err(StoppedInCompute.into())
        } else {
            match outcome {
                Ok(outputs) => self.hand_over(outputs).map(Ok),
                Err(error) => self.fail(error),
            }
        };
        let succeeded = matches!(answer, Ok(Ok(_)));
        model.stats.record(Execution {
            batch,
            succeeded,
            total: started.elapsed(),
            queue,
            input,
            infer,
            output: succeeded.then(|| output_started.elapsed()),
        });
        answer
    }

    fn drop(&mut self, context: Resource<ExecutionContext>) -> wasmtime::Result<()> {
        self.table.delete(context)?;
        self.nn.refund(OBJECT_BYTES);
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
        if dimensions.len() > MAX_RANK {
            return Err(RankExceeded(dimensions.len()).into());
        }
        let tensor = Tensor::new(dimensions, to_backend(ty), data);
        self.nn.charge(tensor_bytes(&tensor))?;
        Ok(self.table.push(tensor)?)
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
        let tensor = self.table.delete(tensor)?;
        self.nn.refund(tensor_bytes(&tensor));
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
        let error = self.table.delete(error)?;
        self.nn.refund(error_bytes(&error));
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
