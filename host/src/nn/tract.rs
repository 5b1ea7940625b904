//! The pure-Rust backend: tract, always available, nothing to install.
//!
//! tract is much faster with concrete shapes, so the model is optimised for
//! the input shapes declared in `model.toml` (dynamic dimensions are refused).

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TValue,
    Tensor as TractTensor, TypedSimplePlan,
};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::ModelError;
use super::backend::{BackendKind, Runner, order_inputs, run_blocking};
use super::model_config::ModelConfig;
use super::tensor::{
    ElementType, checked_shape, invalid, tensor_from_values, values_from_bytes, with_element_type,
};

pub struct TractModel {
    plan: Arc<TypedSimplePlan>,
    input_names: Vec<String>,
    /// The shape each input was optimised for.
    input_shapes: Vec<Vec<usize>>,
    output_names: Vec<String>,
}

impl TractModel {
    pub fn load(dir: &Path, config: &ModelConfig) -> Result<Self, ModelError> {
        let fail = |message: String| ModelError::Backend {
            model: dir.display().to_string(),
            backend: BackendKind::Tract,
            message,
        };
        let path = dir.join(&config.file);
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_path(&path)
            .map_err(|e| fail(format!("cannot load {}: {e:#}", path.display())))?;

        let mut input_names = Vec::new();
        let mut input_shapes = Vec::new();
        let mut actual_inputs = Vec::new();
        let outlets = model
            .input_outlets()
            .map_err(|e| fail(format!("{e:#}")))?
            .to_vec();
        for (i, outlet) in outlets.iter().enumerate() {
            let name = model.node(outlet.node).name.clone();
            let spec = config
                .inputs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| fail(format!("model.toml does not describe input {name:?}")))?;
            let shape = spec.concrete_shape().ok_or_else(|| {
                fail(format!(
                    "tract needs a concrete shape for input {name:?}; model.toml gives {:?}",
                    spec.shape
                ))
            })?;
            let fact = InferenceFact::dt_shape(datum_type(spec.ty).map_err(&fail)?, shape.clone());
            model
                .set_input_fact(i, fact)
                .map_err(|e| fail(format!("input {name:?}: {e:#}")))?;
            actual_inputs.push((name.clone(), Some(spec.ty)));
            input_names.push(name);
            input_shapes.push(shape);
        }
        super::check_interface(&config.inputs, &actual_inputs, "input").map_err(&fail)?;

        let output_names: Vec<String> = model
            .output_outlets()
            .map_err(|e| fail(format!("{e:#}")))?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .unwrap_or(&model.node(o.node).name)
                    .to_string()
            })
            .collect();
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| fail(format!("cannot optimise {}: {e:#}", path.display())))?;

        let actual_outputs: Vec<(String, Option<ElementType>)> = output_names
            .iter()
            .zip(
                plan.model()
                    .output_outlets()
                    .map_err(|e| fail(format!("{e:#}")))?,
            )
            .map(|(name, outlet)| {
                let ty = plan
                    .model()
                    .outlet_fact(*outlet)
                    .ok()
                    .and_then(|f| element_type(f.datum_type));
                (name.clone(), ty)
            })
            .collect();
        super::check_interface(&config.outputs, &actual_outputs, "output").map_err(&fail)?;

        Ok(Self {
            plan,
            input_names,
            input_shapes,
            output_names,
        })
    }
}

impl Runner for TractModel {
    fn input_names(&self) -> &[String] {
        &self.input_names
    }

    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = order_inputs(&self.input_names, inputs)?;
        let values = inputs
            .iter()
            .zip(&self.input_shapes)
            .map(|(t, expected)| to_value(&t.name, &t.tensor, expected))
            .collect::<Result<_, _>>()?;
        let outputs =
            run_blocking(|| self.plan.run(values)).map_err(|e| invalid(format!("tract: {e:#}")))?;
        outputs
            .iter()
            .zip(&self.output_names)
            .map(|(value, name)| {
                Ok(NamedTensor {
                    name: name.clone(),
                    tensor: from_value(name, value)?,
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
        ElementType::Bf16 => return Err("tract does not support bf16 tensors".into()),
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

fn to_value(name: &str, tensor: &Tensor, expected: &[usize]) -> Result<TValue, BackendError> {
    let dims = checked_shape(name, tensor)?;
    if dims != expected {
        return Err(invalid(format!(
            "input {name:?} has shape {dims:?}; this model runs on tract with shape {expected:?} only"
        )));
    }
    fn make<T: tract_onnx::prelude::Datum + bytemuck::Pod>(
        dims: &[usize],
        bytes: &[u8],
    ) -> Result<TractTensor, BackendError> {
        TractTensor::from_shape(dims, &values_from_bytes::<T>(bytes))
            .map_err(|e| invalid(format!("tract: {e:#}")))
    }
    let ty = ElementType::from_wasi(tensor.ty);
    let tensor = with_element_type!(ty, T => make::<T>(&dims, &tensor.data), _ => Err(invalid(format!(
        "input {name:?}: {ty} tensors are not supported by the tract backend yet"
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
            "output {name:?} is {:?}, which the tract backend cannot return yet",
            value.datum_type()
        ))
    };
    let ty = element_type(value.datum_type()).ok_or_else(unsupported)?;
    with_element_type!(ty, T => take::<T>(value, ty), _ => Err(unsupported()))
}
