//! The self-contained build's backend: tract, compiled into the component
//! (for wasm32 with `simd128`), runs the model inside the sandbox, so the
//! function needs no wasi-nn and serves on any `wasi:http` host.
//!
//! A model is read from `/models/<model>/` as the host reads it: its
//! `model.toml` names the ONNX file and describes the inputs. It is prepared
//! as the host's tract backend prepares it (`tract-prep`: integer matrix
//! products as exact f32 ones), then optimised for one item at a time (the
//! functions send one image, or one text, per inference): a fixed batch of 1,
//! other dynamic axes symbolic under the graph's own names, so one plan
//! serves every text length.
//!
//! Parsing and optimising EfficientNet-Lite0 costs ~135 ms, which a fresh
//! instance per request would pay every time: [`prepare`], called from the
//! function's pre-initialiser (see [`crate::preinit`]), does it once, and the
//! snapshot carries the optimised plan in the component's memory. Without a
//! snapshot, a model is loaded on its first use in an instance.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TDim, TValue,
    Tensor as TractTensor, TypedSimplePlan,
};

use super::bindings::wasi::nn::tensor::TensorType;
use super::{ErrorCode, Failure, Output};
use crate::ApiError;

/// Named in error messages.
pub const NAME: &str = "tract";
pub const LOADING: &str = "loading the model";

/// Models loaded in this instance (or in the snapshot it started from).
static MODELS: Mutex<BTreeMap<String, Arc<Model>>> = Mutex::new(BTreeMap::new());

/// An input, as the function made it.
pub struct InputTensor {
    ty: TensorType,
    dims: Vec<u32>,
    bytes: Vec<u8>,
}

impl InputTensor {
    pub fn new(dims: &[u32], ty: TensorType, bytes: &[u8]) -> Self {
        Self {
            ty,
            dims: dims.to_vec(),
            bytes: bytes.to_vec(),
        }
    }
}

/// A model optimised for one item at a time.
struct Model {
    /// The graph's inputs, in its order, with their types.
    inputs: Vec<(String, DatumType)>,
    outputs: Vec<String>,
    plan: Arc<TypedSimplePlan>,
}

/// Loads and optimises `model` now, unless this instance has it: what a
/// pre-initialiser calls, so the snapshot holds the optimised plan.
pub fn prepare(model: &str) -> Result<(), ApiError> {
    model_named(model).map(drop).map_err(|f| {
        let message = format!("{NAME} failed {}: {}", f.doing, f.message);
        match f.code {
            ErrorCode::NotFound => ApiError::not_found(message),
            _ => ApiError::internal(message),
        }
    })
}

/// A model for many computes: the optimised plan, which this instance
/// keeps anyway.
pub struct Session {
    model: String,
}

impl Session {
    pub fn open(model: &str) -> Result<Self, Failure> {
        model_named(model)?;
        Ok(Self {
            model: model.to_string(),
        })
    }

    pub fn compute(&self, inputs: Vec<(String, InputTensor)>) -> Result<Vec<Output>, Failure> {
        run(&self.model, inputs)
    }
}

pub fn run(model: &str, inputs: Vec<(String, InputTensor)>) -> Result<Vec<Output>, Failure> {
    let model = model_named(model)?;
    let mut inputs = inputs;
    let values = model
        .inputs
        .iter()
        .map(|(name, ty)| {
            let i = inputs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                invalid(format!(
                    "the model takes an input {name:?}, which is missing"
                ))
            })?;
            let (_, tensor) = inputs.swap_remove(i);
            to_value(name, *ty, tensor)
        })
        .collect::<Result<_, _>>()?;
    if let Some((name, _)) = inputs.first() {
        return Err(invalid(format!("the model has no input named {name:?}")));
    }
    let outputs = model.plan.run(values).map_err(|e| Failure {
        doing: "running the model",
        code: ErrorCode::RuntimeError,
        message: format!("{e:#}"),
    })?;
    outputs
        .iter()
        .zip(&model.outputs)
        .map(|(value, name)| from_value(name, value))
        .collect()
}

fn invalid(message: String) -> Failure {
    Failure {
        doing: "running the model",
        code: ErrorCode::InvalidArgument,
        message,
    }
}

/// The model, from this instance's memory, else loaded now.
fn model_named(model: &str) -> Result<Arc<Model>, Failure> {
    let loaded = MODELS
        .lock()
        .map(|models| models.get(model).cloned())
        .unwrap_or_default();
    if let Some(found) = loaded {
        return Ok(found);
    }
    let found = Arc::new(load(model)?);
    if let Ok(mut models) = MODELS.lock() {
        models.insert(model.to_string(), found.clone());
    }
    Ok(found)
}

/// What this backend reads of a `model.toml`; the rest is for the host and
/// the function.
#[derive(Deserialize)]
struct ModelToml {
    format: String,
    file: String,
    inputs: Vec<InputToml>,
}

#[derive(Deserialize)]
struct InputToml {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    shape: Vec<i64>,
}

fn load(model: &str) -> Result<Model, Failure> {
    let failed = |code: ErrorCode, message: String| Failure {
        doing: LOADING,
        code,
        message,
    };
    let toml_file = crate::read_model_toml(model).map_err(|e| {
        let code = match e.status {
            404 => ErrorCode::NotFound,
            _ => ErrorCode::RuntimeError,
        };
        failed(code, e.message)
    })?;
    let config: ModelToml = toml::from_str(&toml_file.text).map_err(|e| {
        failed(
            ErrorCode::InvalidEncoding,
            format!("invalid {}: {e}", toml_file.path.display()),
        )
    })?;
    if config.format != "onnx" {
        return Err(failed(
            ErrorCode::InvalidEncoding,
            format!(
                "model {model:?} is in {} format; a self-contained function runs ONNX models",
                config.format
            ),
        ));
    }
    let path = toml_file.dir.join(&config.file);
    let onnx = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .with_ignore_output_shapes(true);
    let tract_error = |what: &str, e: tract_onnx::prelude::TractError| {
        failed(
            ErrorCode::InvalidEncoding,
            format!("cannot {what} {}: {e:#}", path.display()),
        )
    };
    let mut proto = onnx
        .proto_model_for_path(&path)
        .map_err(|e| tract_error("read", e))?;
    let axis_names = tract_prep::graph_axis_names(&proto);
    let graph = proto.graph.as_mut().ok_or_else(|| {
        failed(
            ErrorCode::InvalidEncoding,
            format!("{} has no graph", path.display()),
        )
    })?;
    tract_prep::as_float_matmuls(graph);
    let initialisers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: Vec<String> = graph
        .input
        .iter()
        .map(|i| i.name.clone())
        .filter(|name| !initialisers.contains(&name.as_str()))
        .collect();
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut tract_model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| tract_error("load", e))?;

    let mut inputs = Vec::with_capacity(input_names.len());
    for (i, name) in input_names.iter().enumerate() {
        let spec = config
            .inputs
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| {
                failed(
                    ErrorCode::InvalidEncoding,
                    format!(
                        "{} does not describe input {name:?}",
                        toml_file.path.display()
                    ),
                )
            })?;
        let ty = datum_type(&spec.ty).ok_or_else(|| {
            failed(
                ErrorCode::InvalidEncoding,
                format!("input {name:?}: tract runs no {:?} tensors", spec.ty),
            )
        })?;
        // One item at a time: a dynamic batch is 1; other dynamic axes stay
        // symbolic, shared where the graph gives them one name.
        let dims: Vec<TDim> = spec
            .shape
            .iter()
            .enumerate()
            .map(|(axis, &dim)| match (axis, usize::try_from(dim)) {
                (_, Ok(dim)) => TDim::from(dim),
                (0, Err(_)) => TDim::from(1),
                (_, Err(_)) => {
                    let symbol = axis_names
                        .get(&(name.clone(), axis))
                        .cloned()
                        .unwrap_or_else(|| format!("{name}_{axis}"));
                    TDim::from(tract_model.sym(&symbol))
                }
            })
            .collect();
        tract_model
            .set_input_fact(i, InferenceFact::dt_shape(ty, dims))
            .map_err(|e| tract_error("set the input of", e))?;
        inputs.push((name.clone(), ty));
    }
    let plan = tract_model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| tract_error("optimise", e))?;
    Ok(Model {
        inputs,
        outputs,
        plan,
    })
}

fn datum_type(name: &str) -> Option<DatumType> {
    Some(match name {
        "f32" => DatumType::F32,
        "f64" => DatumType::F64,
        "u8" => DatumType::U8,
        "i32" => DatumType::I32,
        "i64" => DatumType::I64,
        _ => return None,
    })
}

fn to_value(name: &str, ty: DatumType, input: InputTensor) -> Result<TValue, Failure> {
    let expected = match ty {
        DatumType::F32 => TensorType::Fp32,
        DatumType::F64 => TensorType::Fp64,
        DatumType::U8 => TensorType::U8,
        DatumType::I32 => TensorType::I32,
        _ => TensorType::I64,
    };
    if input.ty != expected {
        return Err(invalid(format!(
            "input {name:?} is {:?}, the model takes {expected:?}",
            input.ty
        )));
    }
    let dims: Vec<usize> = input.dims.iter().map(|&d| d as usize).collect();
    let count: Option<usize> = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count.and_then(|n| n.checked_mul(ty.size_of())) != Some(input.bytes.len()) {
        return Err(invalid(format!(
            "input {name:?}: {} bytes do not make a {expected:?} tensor of dimensions {:?}",
            input.bytes.len(),
            input.dims
        )));
    }
    fn make<T: tract_onnx::prelude::Datum + bytemuck::Pod>(
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<TractTensor, Failure> {
        let values: Vec<T> = bytes
            .chunks_exact(std::mem::size_of::<T>())
            .map(bytemuck::pod_read_unaligned)
            .collect();
        tract_onnx::prelude::tract_ndarray::ArrayD::from_shape_vec(dims, values)
            .map(TractTensor::from)
            .map_err(|e| invalid(format!("{e}")))
    }
    let tensor = match ty {
        DatumType::F32 => make::<f32>(&dims, &input.bytes),
        DatumType::F64 => make::<f64>(&dims, &input.bytes),
        DatumType::U8 => make::<u8>(&dims, &input.bytes),
        DatumType::I32 => make::<i32>(&dims, &input.bytes),
        _ => make::<i64>(&dims, &input.bytes),
    }?;
    Ok(tensor.into_tvalue())
}

fn from_value(name: &str, value: &TValue) -> Result<Output, Failure> {
    fn bytes<T: tract_onnx::prelude::Datum + bytemuck::NoUninit>(
        value: &TValue,
    ) -> Result<Vec<u8>, Failure> {
        value
            .try_as_plain_ram()
            .and_then(|plain| plain.as_slice::<T>())
            .map(|values| bytemuck::cast_slice(values).to_vec())
            .map_err(|e| invalid(format!("{e:#}")))
    }
    let (ty, data) = match value.datum_type() {
        DatumType::F32 => (TensorType::Fp32, bytes::<f32>(value)?),
        DatumType::F64 => (TensorType::Fp64, bytes::<f64>(value)?),
        DatumType::U8 => (TensorType::U8, bytes::<u8>(value)?),
        DatumType::I32 => (TensorType::I32, bytes::<i32>(value)?),
        DatumType::I64 => (TensorType::I64, bytes::<i64>(value)?),
        other => {
            return Err(Failure {
                doing: "running the model",
                code: ErrorCode::UnsupportedOperation,
                message: format!("output {name:?} is {other:?}, which wasi-nn has no type for"),
            });
        }
    };
    let dims = value
        .shape()
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(format!("output {name:?} has a dimension past u32")))?;
    Ok(Output {
        name: name.to_string(),
        ty,
        dims,
        data,
    })
}
