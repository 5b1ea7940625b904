//! The pure-Rust backend: tract, always available, nothing to install.
//!
//! tract is several times faster when it knows a model's batch size
//! (EfficientNet-Lite0: 42 ms an image, against 155 ms with a symbolic batch),
//! so a model is optimised once per batch size: at load when `model.toml`
//! fixes it, else on the first request of each, keeping the last few plans.
//! Every other dynamic axis (a text's length) stays symbolic, named as the
//! ONNX graph names it, so that one plan serves every length: on
//! all-MiniLM-L6-v2 a symbolic sequence runs as fast as a concrete one
//! (8 to 170 tokens), while a plan per length cost 110-130 ms at each new
//! length. Requests that need the same new plan at once wait for one
//! optimisation, not one each.
//!
//! Some graphs tract cannot analyse with symbolic axes: PP-OCR's text
//! detector rounds its height and width up at each of its five halvings
//! and then concatenates maps whose sizes tract cannot prove equal. Such a
//! model is planned per concrete shape instead (found at load when its
//! batch is fixed, else on its first request), which costs an optimisation
//! at each new shape but runs it.
//!
//! An inference checks between nodes whether it is still wanted, and stops
//! when it is not; an optimisation cannot be stopped, but its cost is bounded
//! by the input bounds (see [`super::bounds`]) and its plan serves later requests.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, Symbol,
    TDim, TValue, Tensor as TractTensor, TypedSimplePlan,
};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::cancel::Cancel;
use super::interface::{DataType, ModelInterface};
use super::model_config::ModelConfig;
use super::onnx_graph;
use super::runner::{Runner, order_inputs};
use super::tensor::{
    ElementType, invalid, tensor_from_values, values_from_bytes, with_element_type_but_bf16,
};

/// Optimised plans kept per model, one per batch size.
const MAX_PLANS: usize = 8;

type Shapes = Vec<Vec<usize>>;

/// The shapes a plan is made for: `None` stands for a symbolic axis.
type PlanShapes = Vec<Vec<Option<usize>>>;

/// A plan for one set of input shapes, made once by whoever needs it first.
type PlanCell = Arc<OnceLock<Result<Arc<TypedSimplePlan>, String>>>;

pub struct TractModel {
    /// The model's file, for the log.
    path: PathBuf,
    interface: ModelInterface,
    /// The parsed model with its input types set, to optimise for new shapes.
    model: InferenceModel,
    /// For each input (in the graph's order), each axis's symbol if plans
    /// leave it symbolic.
    symbolic: Vec<Vec<Option<Symbol>>>,
    /// Set once a plan with symbolic axes failed: every plan is then made
    /// for concrete shapes.
    per_shape: AtomicBool,
    /// The most recently used last.
    plans: Mutex<VecDeque<(PlanShapes, PlanCell)>>,
}

impl TractModel {
    pub fn load(dir: &Path, config: &ModelConfig) -> Result<Self, String> {
        let path = dir.join(&config.file);
        let onnx = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true);
        let mut proto = onnx
            .proto_model_for_path(&path)
            .map_err(|e| format!("cannot read {}: {e:#}", path.display()))?;
        let interface = onnx_graph::interface(&proto)?;
        // Check the interface before tract sees the declared types and shapes.
        interface.check(&config.inputs, &config.outputs)?;
        let bf16 = DataType::Known(ElementType::Bf16);
        if let Some(t) = interface
            .inputs
            .iter()
            .chain(&interface.outputs)
            .find(|t| t.ty == bf16)
        {
            return Err(format!(
                "tensor {:?} is bf16, which tract has no type for: run this model on onnxruntime or openvino",
                t.name
            ));
        }
        if let Some(graph) = proto.graph.as_mut() {
            let rewritten = tract_prep::as_float_matmuls(graph);
            if rewritten > 0 {
                tracing::debug!(
                    model = %path.display(),
                    rewritten,
                    "integer matrix products computed in f32 on tract"
                );
            }
        }
        let mut model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| format!("cannot load {}: {e:#}", path.display()))?;

        for (i, info) in interface.inputs.iter().enumerate() {
            let spec = config
                .inputs
                .iter()
                .find(|s| s.name == info.name)
                .ok_or_else(|| format!("model.toml does not describe input {:?}", info.name))?;
            model
                .set_input_fact(i, InferenceFact::dt(datum_type(spec.ty)?))
                .map_err(|e| format!("input {:?}: {e:#}", info.name))?;
        }
        // model.toml's description of each input, in the graph's input order.
        let specs = interface
            .inputs
            .iter()
            .map(|info| {
                config
                    .inputs
                    .iter()
                    .find(|s| s.name == info.name)
                    .ok_or_else(|| format!("model.toml does not describe input {:?}", info.name))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let axis_names = tract_prep::graph_axis_names(&proto);
        // An axis is symbolic where both model.toml and the graph leave it
        // dynamic; one the graph fixes stays concrete, as tract expects it.
        let symbolic = specs
            .iter()
            .zip(&interface.inputs)
            .map(|(spec, info)| {
                spec.shape
                    .iter()
                    .enumerate()
                    .map(|(axis, &dim)| {
                        let graph_dim = info.shape.as_ref().and_then(|s| s.get(axis).copied());
                        let dynamic = axis > 0 && dim < 0 && graph_dim.is_none_or(|d| d < 0);
                        dynamic.then(|| {
                            let name = axis_names
                                .get(&(spec.name.clone(), axis))
                                .cloned()
                                .unwrap_or_else(|| format!("{}_{axis}", spec.name));
                            model.sym(&name)
                        })
                    })
                    .collect()
            })
            .collect();
        let this = Self {
            path: path.clone(),
            interface,
            model,
            symbolic,
            per_shape: AtomicBool::new(false),
            plans: Mutex::new(VecDeque::new()),
        };
        // With every batch size known, optimise now: the first request should
        // not pay for it, and a model tract cannot run should fail at start-up.
        let batches_known = specs
            .iter()
            .all(|spec| spec.shape.first().is_none_or(|&batch| batch >= 0));
        if batches_known {
            // The trial shapes, whose symbolic axes are left out unless
            // tract cannot plan the model with them.
            let trial: Shapes = specs.iter().map(|spec| spec.trial_shape()).collect();
            this.plan_for(&trial)?;
        }
        Ok(this)
    }

    /// The plan for these input shapes: with the symbolic axes left
    /// symbolic, unless tract could not plan the model so.
    fn plan_for(&self, shapes: &Shapes) -> Result<Arc<TypedSimplePlan>, String> {
        let concrete = || {
            shapes
                .iter()
                .map(|s| s.iter().map(|&d| Some(d)).collect())
                .collect()
        };
        if self.per_shape.load(Ordering::Relaxed) {
            return self.plan(&concrete());
        }
        let keyed = self.plan_shapes(shapes);
        if !keyed.iter().flatten().any(Option::is_none) {
            return self.plan(&keyed);
        }
        match self.plan(&keyed) {
            Ok(plan) => Ok(plan),
            Err(symbolic) => {
                let plan = self.plan(&concrete())?;
                if !self.per_shape.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        model = %self.path.display(),
                        reason = %symbolic,
                        "tract cannot plan the model with symbolic axes: it is planned for each input shape"
                    );
                }
                Ok(plan)
            }
        }
    }

    /// These input shapes with the symbolic axes left out: the plan's key.
    fn plan_shapes(&self, shapes: &Shapes) -> PlanShapes {
        shapes
            .iter()
            .zip(&self.symbolic)
            .map(|(shape, symbols)| {
                shape
                    .iter()
                    .enumerate()
                    .map(|(axis, &dim)| match symbols.get(axis) {
                        Some(Some(_)) => None,
                        _ => Some(dim),
                    })
                    .collect()
            })
            .collect()
    }

    /// The plan optimised for these input shapes, made on first use.
    fn plan(&self, shapes: &PlanShapes) -> Result<Arc<TypedSimplePlan>, String> {
        let cell = {
            let mut plans = self.plans.lock().map_err(|_| "plan cache poisoned")?;
            match plans.iter().position(|(s, _)| s == shapes) {
                Some(i) => {
                    let entry = plans.remove(i).ok_or("plan cache changed")?;
                    let cell = entry.1.clone();
                    plans.push_back(entry);
                    cell
                }
                None => {
                    if plans.len() == MAX_PLANS {
                        plans.pop_front();
                    }
                    let cell = PlanCell::default();
                    plans.push_back((shapes.clone(), cell.clone()));
                    cell
                }
            }
        };
        // Outside the cache's lock: other shapes go on meanwhile, and the
        // same shape waits for this one optimisation.
        cell.get_or_init(|| self.optimise(shapes)).clone()
    }

    fn optimise(&self, shapes: &PlanShapes) -> Result<Arc<TypedSimplePlan>, String> {
        let mut model = self.model.clone();
        for (i, (shape, symbols)) in shapes.iter().zip(&self.symbolic).enumerate() {
            let dims = shape
                .iter()
                .enumerate()
                .map(|(axis, dim)| match (dim, symbols.get(axis)) {
                    (Some(dim), _) => Ok(TDim::from(*dim)),
                    (None, Some(Some(symbol))) => Ok(TDim::from(symbol.clone())),
                    (None, _) => Err(format!("input {i} has an axis of no size")),
                })
                .collect::<Result<Vec<TDim>, String>>()?;
            let fact = model
                .input_fact(i)
                .map_err(|e| format!("{e:#}"))?
                .clone()
                .with_shape(dims);
            model
                .set_input_fact(i, fact)
                .map_err(|e| format!("{e:#}"))?;
        }
        model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("cannot optimise for input shapes {shapes:?}: {e:#}"))
    }
}

impl Runner for TractModel {
    fn interface(&self) -> &ModelInterface {
        &self.interface
    }

    fn run(
        &self,
        inputs: Vec<NamedTensor>,
        cancel: &Cancel,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = order_inputs(&self.interface, inputs)?;
        let shapes: Shapes = inputs.iter().map(|t| t.dims.clone()).collect();
        let values = inputs
            .iter()
            .map(|t| to_value(&t.name, &t.tensor, &t.dims))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = self.plan_for(&shapes).map_err(invalid)?;
        let mut state = plan.spawn().map_err(|e| invalid(format!("tract: {e:#}")))?;
        let outputs = state
            .run_plan_with_eval(
                values.into_iter().collect(),
                |session, op_state, node, input| {
                    if cancel.is_cancelled() {
                        return Err(anyhow::anyhow!("the inference was cancelled"));
                    }
                    tract_onnx::tract_core::plan::eval(session, op_state, node, input)
                },
            )
            .map_err(|e| invalid(format!("tract: {e:#}")))?;
        outputs
            .iter()
            .zip(&self.interface.outputs)
            .map(|(value, info)| {
                Ok(NamedTensor {
                    name: info.name.clone(),
                    tensor: from_value(&info.name, value)?,
                })
            })
            .collect()
    }
}

fn datum_type(ty: ElementType) -> Result<DatumType, String> {
    Ok(match ty {
        ElementType::F32 => DatumType::F32,
        ElementType::F64 => DatumType::F64,
        ElementType::F16 => DatumType::F16,
        ElementType::U8 => DatumType::U8,
        ElementType::I32 => DatumType::I32,
        ElementType::I64 => DatumType::I64,
        ElementType::Bf16 => {
            return Err("tract has no bf16: run this model on onnxruntime or openvino".into());
        }
    })
}

fn element_type(ty: DatumType) -> Option<ElementType> {
    Some(match ty {
        DatumType::F32 => ElementType::F32,
        DatumType::F64 => ElementType::F64,
        DatumType::F16 => ElementType::F16,
        DatumType::U8 => ElementType::U8,
        DatumType::I32 => ElementType::I32,
        DatumType::I64 => ElementType::I64,
        _ => return None,
    })
}

fn to_value(name: &str, tensor: &Tensor, dims: &[usize]) -> Result<TValue, BackendError> {
    fn make<T: tract_onnx::prelude::Datum + bytemuck::Pod>(
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<TractTensor, BackendError> {
        TractTensor::from_shape(dims, &values_from_bytes::<T>(bytes))
            .map_err(|e| invalid(format!("tract: {e:#}")))
    }
    let ty = ElementType::from_wasi(tensor.ty);
    let tensor = with_element_type_but_bf16!(ty, T => make::<T>(dims, &tensor.data), _ => Err(invalid(format!(
        "input {name:?}: tract has no {ty} tensors"
    ))))?;
    Ok(tensor.into())
}

fn from_value(name: &str, value: &TValue) -> Result<Tensor, BackendError> {
    fn take<T: tract_onnx::prelude::Datum + bytemuck::NoUninit>(
        value: &TValue,
        ty: ElementType,
    ) -> Result<Tensor, BackendError> {
        let data = value
            .try_as_plain_ram()
            .and_then(|plain| plain.as_slice::<T>())
            .map_err(|e| invalid(format!("tract: {e:#}")))?;
        tensor_from_values(value.shape(), ty, data)
    }
    let unsupported = || {
        invalid(format!(
            "output {name:?} is {:?}, which wasi-nn has no type for",
            value.datum_type()
        ))
    };
    let ty = element_type(value.datum_type()).ok_or_else(unsupported)?;
    with_element_type_but_bf16!(ty, T => take::<T>(value, ty), _ => Err(unsupported()))
}
