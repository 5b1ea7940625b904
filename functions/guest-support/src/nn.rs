//! The one call that leaves the sandbox: run a model, loaded by name, through
//! wasi-nn. wasi-nn's errors become HTTP errors: an unknown model is a 404,
//! anything else a 500 that carries the host's message ([`infer_f32`], for
//! functions written for one kind of model). [`compute`] is the general call,
//! for a function that passes a request's tensors through as they are: there
//! the request may be at fault, so the host's verdict becomes the status.

use crate::ApiError;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::errors::Error as NnError;
pub use bindings::wasi::nn::errors::ErrorCode;
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

    /// A tensor of any type, from its little-endian bytes.
    pub fn new(name: &str, dims: &[u32], ty: TensorType, bytes: &[u8]) -> Self {
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
    // The function made the tensors: a refusal is its own fault, a 500.
    let outputs = run(model, inputs, nn_error)?;

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

/// An output tensor of any type, as the host returned it.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub ty: TensorType,
    pub dims: Vec<u32>,
    /// Little-endian elements, row-major.
    pub data: Vec<u8>,
}

/// Runs `model` on `inputs` and returns every output, in the host's order.
///
/// Making an [`Input`] copies its bytes into the host, so a caller may drop
/// its own copy before calling: a large request then is not held twice while
/// the model runs.
pub fn compute(model: &str, inputs: Vec<Input>) -> Result<Vec<Output>, ApiError> {
    let outputs = run(model, inputs, nn_error_by_code)?;
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

/// Loads `model` by name and computes; `error` turns wasi-nn's errors into
/// answers (an unknown model is always a 404).
fn run(
    model: &str,
    inputs: Vec<Input>,
    error: fn(&str, &NnError) -> ApiError,
) -> Result<Vec<(String, Tensor)>, ApiError> {
    let graph = graph::load_by_name(model).map_err(|e| match e.code() {
        ErrorCode::NotFound => ApiError::not_found(format!(
            "no model named {model:?} is available to this function"
        )),
        _ => error("loading the model", &e),
    })?;
    let context = graph
        .init_execution_context()
        .map_err(|e| error("creating an execution context", &e))?;
    context
        .compute(inputs.into_iter().map(|i| (i.name, i.tensor)).collect())
        .map_err(|e| error("running the model", &e))
}

/// The HTTP status for a wasi-nn error code, when the tensors came from the
/// request: the host refusing them (invalid-argument) or finding them too large
/// is the request's doing; anything else is the server's.
pub fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidArgument => 400,
        ErrorCode::NotFound => 404,
        ErrorCode::TooLarge => 413,
        _ => 500,
    }
}

fn nn_error_by_code(doing: &str, e: &NnError) -> ApiError {
    let code = e.code();
    let message = format!("wasi-nn failed {doing}: {code:?}: {}", e.data());
    match status_of(code) {
        400 => ApiError::bad_request(message),
        404 => ApiError::not_found(message),
        413 => ApiError::payload_too_large(message),
        _ => ApiError::internal(message),
    }
}

fn nn_error(doing: &str, e: &NnError) -> ApiError {
    ApiError::internal(format!(
        "wasi-nn failed {doing}: {:?}: {}",
        e.code(),
        e.data()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_blamed_only_for_what_it_can_change() {
        assert_eq!(status_of(ErrorCode::InvalidArgument), 400);
        assert_eq!(status_of(ErrorCode::NotFound), 404);
        assert_eq!(status_of(ErrorCode::TooLarge), 413);
        for code in [
            ErrorCode::InvalidEncoding,
            ErrorCode::Timeout,
            ErrorCode::RuntimeError,
            ErrorCode::UnsupportedOperation,
            ErrorCode::Security,
            ErrorCode::Unknown,
        ] {
            assert_eq!(status_of(code), 500, "{code:?}");
        }
    }
}
