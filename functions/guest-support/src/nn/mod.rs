//! Running a model: through wasi-nn (the default: the host loads and runs it,
//! natively) or, in the self-contained build (feature `self-contained`),
//! with tract compiled into the component, so that the function needs no
//! wasi-nn at all. Functions call [`infer_f32`] or [`compute`] and never know
//! which: the seam between the two builds is this module.
//!
//! Errors become HTTP errors: an unknown model is a 404, anything else a 500
//! that carries the backend's message ([`infer_f32`], for functions written
//! for one kind of model). [`compute`] is the general call, for a function
//! that passes a request's tensors through as they are: there the request may
//! be at fault, so the backend's verdict becomes the status.

use crate::ApiError;

#[cfg(feature = "self-contained")]
mod embedded;
#[cfg(not(feature = "self-contained"))]
mod wasi_nn;

#[cfg(feature = "self-contained")]
use embedded as backend;
#[cfg(not(feature = "self-contained"))]
use wasi_nn as backend;

/// Makes `model` ready to run at once: in the self-contained build, loads
/// and optimises it in this instance's memory (what a pre-initialised
/// snapshot should hold); in the wasi-nn build, nothing (the host has it).
pub use backend::prepare;

/// The types of wasi-nn's interface, which both builds speak. Only the
/// wasi-nn build calls its functions, so only it imports the interface
/// (wit-component keeps the imports the code uses).
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

pub use bindings::wasi::nn::errors::ErrorCode;
pub use bindings::wasi::nn::tensor::TensorType;

/// A named input tensor, as little-endian bytes.
pub struct Input {
    pub name: String,
    tensor: backend::InputTensor,
}

impl Input {
    pub fn f32(name: &str, dims: &[u32], values: &[f32]) -> Self {
        Self::new(name, dims, TensorType::Fp32, &le_bytes(values))
    }

    pub fn i64(name: &str, dims: &[u32], values: &[i64]) -> Self {
        Self::new(name, dims, TensorType::I64, &le_bytes(values))
    }

    /// A tensor of any type, from its little-endian bytes, which are copied
    /// (into the host, in the wasi-nn build).
    pub fn new(name: &str, dims: &[u32], ty: TensorType, bytes: &[u8]) -> Self {
        Self {
            name: name.to_string(),
            tensor: backend::InputTensor::new(dims, ty, bytes),
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
    let outputs = run(model, inputs, Blame::Function)?;

    // A host may not name outputs as the model does (wasmtime's OpenVINO
    // backend numbers them): a lone output is the one asked for.
    let count = outputs.len();
    let output = match outputs.iter().position(|o| o.name == output_name) {
        Some(i) => outputs.into_iter().nth(i),
        None if count == 1 => outputs.into_iter().next(),
        None => None,
    }
    .ok_or_else(|| {
        ApiError::internal(format!(
            "the model returned no output named {output_name:?}"
        ))
    })?;
    let values = output.f32_values().ok_or_else(|| {
        ApiError::internal(format!(
            "output {output_name:?} is {:?}, expected FP32",
            output.ty
        ))
    })?;
    Ok(F32Output {
        dims: output.dims,
        values,
    })
}

/// An output tensor of any type, as the backend returned it.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub ty: TensorType,
    pub dims: Vec<u32>,
    /// Little-endian elements, row-major.
    pub data: Vec<u8>,
}

impl Output {
    /// Its elements, if it is an FP32 tensor.
    pub fn f32_values(&self) -> Option<Vec<f32>> {
        (self.ty == TensorType::Fp32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
    }
}

/// Runs `model` on `inputs` and returns every output, in the backend's order.
///
/// Making an [`Input`] copies its bytes, so a caller may drop its own copy
/// before calling: a large request then is not held twice while the model
/// runs.
pub fn compute(model: &str, inputs: Vec<Input>) -> Result<Vec<Output>, ApiError> {
    run(model, inputs, Blame::ByCode)
}

/// Who is at fault when the backend refuses the tensors.
#[derive(Clone, Copy)]
enum Blame {
    /// The function made them: any refusal is a 500.
    Function,
    /// They came from the request: the error code decides ([`status_of`]).
    ByCode,
}

/// What went wrong in a backend, as wasi-nn reports it.
struct Failure {
    /// What the backend was doing, for the message ("loading the model").
    doing: &'static str,
    code: ErrorCode,
    message: String,
}

/// Loads `model` by name and computes; an unknown model is always a 404.
fn run(model: &str, inputs: Vec<Input>, blame: Blame) -> Result<Vec<Output>, ApiError> {
    let inputs = inputs.into_iter().map(|i| (i.name, i.tensor)).collect();
    backend::run(model, inputs).map_err(|f| api_error(model, f, blame))
}

/// A model loaded once for many computes: a recurrent model fed chunk by
/// chunk, or one stage of a pipeline run over many crops. [`compute`] loads
/// the model (by name: a lookup in the host) and makes an execution context
/// on every call; a session does both once.
pub struct Session {
    model: String,
    inner: backend::Session,
}

impl Session {
    /// Loads `model`: an unknown one is a 404, one that cannot be had now
    /// (failed to load, no room in the memory budget) a 503.
    pub fn open(model: &str) -> Result<Self, ApiError> {
        let inner =
            backend::Session::open(model).map_err(|f| api_error(model, f, Blame::Function))?;
        Ok(Self {
            model: model.to_string(),
            inner,
        })
    }

    /// Runs the model on `inputs`, which the function made: a refusal is a
    /// 500, a tensor too large a 500 as well (bound the work before).
    pub fn compute(&self, inputs: Vec<Input>) -> Result<Vec<Output>, ApiError> {
        let inputs = inputs.into_iter().map(|i| (i.name, i.tensor)).collect();
        self.inner
            .compute(inputs)
            .map_err(|f| api_error(&self.model, f, Blame::Function))
    }
}

/// The HTTP error for a backend's failure with `model`.
fn api_error(model: &str, f: Failure, blame: Blame) -> ApiError {
    if f.doing == backend::LOADING {
        return match f.code {
            ErrorCode::NotFound if !model.contains('@') => ApiError::not_found(format!(
                "no model named {model:?} is available to this function"
            )),
            // No such version: the host's message names those there are.
            ErrorCode::NotFound => ApiError::not_found(f.message),
            // The model exists but cannot be had now (it failed to load,
            // was unloaded, or the memory budget has no room): the
            // host's message says which.
            _ => ApiError::unavailable(f.message),
        };
    }
    let message = format!(
        "{} failed {}: {:?}: {}",
        backend::NAME,
        f.doing,
        f.code,
        f.message
    );
    match (blame, status_of(f.code)) {
        (Blame::ByCode, 400) => ApiError::bad_request(message),
        (Blame::ByCode, 404) => ApiError::not_found(message),
        (Blame::ByCode, 413) => ApiError::payload_too_large(message),
        _ => ApiError::internal(message),
    }
}

/// The HTTP status for a wasi-nn error code, when the tensors came from the
/// request: the backend refusing them (invalid-argument) or finding them too
/// large is the request's doing; anything else is the server's.
pub fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidArgument => 400,
        ErrorCode::NotFound => 404,
        ErrorCode::TooLarge => 413,
        _ => 500,
    }
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
