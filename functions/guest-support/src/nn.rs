//! The one call that leaves the sandbox: run a model, loaded by name, through
//! wasi-nn. wasi-nn's errors become HTTP errors: an unknown model is a 404,
//! anything else a 500 that carries the host's message.

use crate::ApiError;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::errors::{Error as NnError, ErrorCode};
use bindings::wasi::nn::graph;
pub use bindings::wasi::nn::tensor::{Tensor, TensorType};

/// A named input tensor, as little-endian bytes.
pub struct Input {
    pub name: String,
    pub tensor: Tensor,
}

impl Input {
    pub fn f32(name: &str, dims: &[u32], values: &[f32]) -> Self {
        Self::new(name, dims, TensorType::Fp32, &le_bytes(values))
    }

    pub fn i64(name: &str, dims: &[u32], values: &[i64]) -> Self {
        Self::new(name, dims, TensorType::I64, &le_bytes(values))
    }

    fn new(name: &str, dims: &[u32], ty: TensorType, bytes: &[u8]) -> Self {
        Self {
            name: name.to_string(),
            tensor: Tensor::new(dims, ty, bytes),
        }
    }
}

/// wasi-nn tensors are little-endian. On a little-endian target (wasm32 always
/// is) that is the values' own memory, passed without a copy: the input tensor of
/// an image model is 600 kB.
#[cfg(target_endian = "little")]
fn le_bytes<T: bytemuck::NoUninit>(values: &[T]) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Borrowed(bytemuck::cast_slice(values))
}

#[cfg(target_endian = "big")]
fn le_bytes<T: bytemuck::NoUninit>(values: &[T]) -> std::borrow::Cow<'_, [u8]> {
    let size = std::mem::size_of::<T>();
    let mut bytes = bytemuck::cast_slice::<T, u8>(values).to_vec();
    bytes.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    std::borrow::Cow::Owned(bytes)
}

/// An f32 output tensor.
pub struct F32Output {
    pub dims: Vec<u32>,
    pub values: Vec<f32>,
}

/// Runs `model` on `inputs` and returns its f32 output named `output_name`.
pub fn infer_f32(
    model: &str,
    inputs: Vec<Input>,
    output_name: &str,
) -> Result<F32Output, ApiError> {
    let graph = graph::load_by_name(model).map_err(|e| match e.code() {
        ErrorCode::NotFound => ApiError::not_found(format!(
            "no model named {model:?} is available to this function"
        )),
        _ => nn_error("loading the model", &e),
    })?;
    let context = graph
        .init_execution_context()
        .map_err(|e| nn_error("creating an execution context", &e))?;
    let outputs = context
        .compute(inputs.into_iter().map(|i| (i.name, i.tensor)).collect())
        .map_err(|e| nn_error("running the model", &e))?;

    // A host may not name outputs as the model does (wasmtime's OpenVINO
    // backend numbers them): a lone output is the one asked for.
    let count = outputs.len();
    let (_, output) = match outputs.iter().position(|(name, _)| name == output_name) {
        Some(i) => outputs.into_iter().nth(i),
        None if count == 1 => outputs.into_iter().next(),
        None => None,
    }
    .ok_or_else(|| {
        ApiError::internal(format!(
            "the model returned no output named {output_name:?}"
        ))
    })?;
    if output.ty() != TensorType::Fp32 {
        return Err(ApiError::internal(format!(
            "output {output_name:?} is {:?}, expected FP32",
            output.ty()
        )));
    }
    let values = output
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(F32Output {
        dims: output.dimensions(),
        values,
    })
}

fn nn_error(doing: &str, e: &NnError) -> ApiError {
    ApiError::internal(format!(
        "wasi-nn failed {doing}: {:?}: {}",
        e.code(),
        e.data()
    ))
}
