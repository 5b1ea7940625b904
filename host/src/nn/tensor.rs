//! Tensor element types and the conversions between wasi-nn's byte buffers
//! (little-endian, as in wasm memory) and typed values for the backends.

use serde::Deserialize;
use std::fmt;
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;

// wasi-nn tensor data is little-endian; the casts below reinterpret it in place.
#[cfg(not(target_endian = "little"))]
compile_error!("wasi-infer supports little-endian hosts only");

/// The element types wasi-nn names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    F16,
    Bf16,
    F32,
    F64,
    U8,
    I32,
    I64,
}

impl ElementType {
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 => 1,
            ElementType::F16 | ElementType::Bf16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
        }
    }

    pub fn to_wasi(self) -> TensorType {
        match self {
            ElementType::F16 => TensorType::Fp16,
            ElementType::Bf16 => TensorType::Bf16,
            ElementType::F32 => TensorType::Fp32,
            ElementType::F64 => TensorType::Fp64,
            ElementType::U8 => TensorType::U8,
            ElementType::I32 => TensorType::I32,
            ElementType::I64 => TensorType::I64,
        }
    }

    pub fn from_wasi(ty: TensorType) -> Self {
        match ty {
            TensorType::Fp16 => ElementType::F16,
            TensorType::Bf16 => ElementType::Bf16,
            TensorType::Fp32 => ElementType::F32,
            TensorType::Fp64 => ElementType::F64,
            TensorType::U8 => ElementType::U8,
            TensorType::I32 => ElementType::I32,
            TensorType::I64 => ElementType::I64,
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElementType::F16 => "f16",
            ElementType::Bf16 => "bf16",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
            ElementType::U8 => "u8",
            ElementType::I32 => "i32",
            ElementType::I64 => "i64",
        })
    }
}

/// Evaluates `$body` with the type alias `$T` bound to the Rust element type of
/// `$ty` (`half::f16` and `half::bf16` for the 16-bit floats); `$otherwise` for
/// the types left out. One place to list them for every backend.
macro_rules! with_element_type {
    ($ty:expr, $T:ident => $body:expr, _ => $otherwise:expr) => {
        $crate::nn::tensor::dispatch_element_type!($ty, $T => $body, $otherwise;
            F16 half::f16, Bf16 half::bf16, F32 f32, F64 f64, U8 u8, I32 i32, I64 i64)
    };
}

/// [`with_element_type!`] without bf16, for backends whose element traits do
/// not cover it (tract has no bf16).
macro_rules! with_element_type_but_bf16 {
    ($ty:expr, $T:ident => $body:expr, _ => $otherwise:expr) => {
        $crate::nn::tensor::dispatch_element_type!($ty, $T => $body, $otherwise;
            F16 half::f16, F32 f32, F64 f64, U8 u8, I32 i32, I64 i64)
    };
}

macro_rules! dispatch_element_type {
    ($ty:expr, $T:ident => $body:expr, $otherwise:expr; $($variant:ident $rust:ty),*) => {{
        #[allow(unreachable_patterns)]
        let value = match $ty {
            $($crate::nn::tensor::ElementType::$variant => {
                type $T = $rust;
                $body
            })*
            _ => $otherwise,
        };
        value
    }};
}
pub(crate) use {dispatch_element_type, with_element_type, with_element_type_but_bf16};

/// A guest error in a tensor: wasi-nn reports it, the host carries on.
pub fn invalid(message: impl fmt::Display) -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!("{message}"))
}

/// A guest's input the model cannot take: wasi-nn's `invalid-argument`, where
/// [`invalid`] is the backend failing (`runtime-error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

pub fn invalid_input(message: impl fmt::Display) -> BackendError {
    BackendError::BackendAccess(wasmtime::Error::new(InvalidInput(message.to_string())))
}

/// A guest's input past a bound of the model's (see [`super::bounds`]):
/// wasi-nn's `too-large`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TooLargeInput(pub String);

pub fn too_large_input(message: impl fmt::Display) -> BackendError {
    BackendError::BackendAccess(wasmtime::Error::new(TooLargeInput(message.to_string())))
}

/// Checks that a guest tensor's data has exactly as many bytes as its
/// dimensions and type say, and returns its dimensions as `usize`.
pub fn checked_shape(name: &str, tensor: &Tensor) -> Result<Vec<usize>, BackendError> {
    let ty = ElementType::from_wasi(tensor.ty);
    let dims: Vec<usize> = tensor.dimensions.iter().map(|&d| d as usize).collect();
    let expected = dims
        .iter()
        .try_fold(ty.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid_input(format!("input {name:?}: dimensions {dims:?} overflow")))?;
    if tensor.data.len() != expected {
        return Err(invalid_input(format!(
            "input {name:?}: {} bytes of data, but {ty} {dims:?} needs {expected}",
            tensor.data.len()
        )));
    }
    Ok(dims)
}

/// A copy of named tensors (wasmtime-wasi-nn's `NamedTensor` is not `Clone`).
pub fn copy_named(tensors: &[NamedTensor]) -> Vec<NamedTensor> {
    tensors
        .iter()
        .map(|t| NamedTensor {
            name: t.name.clone(),
            tensor: t.tensor.clone(),
        })
        .collect()
}

/// Typed values from little-endian bytes (copied: guest buffers need not be aligned).
pub fn values_from_bytes<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    bytemuck::pod_collect_to_vec(bytes)
}

/// A wasi-nn tensor from typed values.
pub fn tensor_from_values<T: bytemuck::NoUninit>(
    dims: &[usize],
    ty: ElementType,
    values: &[T],
) -> Result<Tensor, BackendError> {
    let dimensions = dims
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| invalid(format!("output dimension {d} too large"))))
        .collect::<Result<_, _>>()?;
    Ok(Tensor::new(
        dimensions,
        ty.to_wasi(),
        bytemuck::cast_slice(values).to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_must_match_data() {
        let t = Tensor::new(vec![2, 3], TensorType::Fp32, vec![0; 24]);
        assert_eq!(checked_shape("x", &t).unwrap(), vec![2, 3]);
        let t = Tensor::new(vec![2, 3], TensorType::Fp32, vec![0; 23]);
        assert!(checked_shape("x", &t).is_err());
        let t = Tensor::new(vec![u32::MAX, u32::MAX, u32::MAX], TensorType::I64, vec![]);
        assert!(checked_shape("x", &t).is_err());
    }

    #[test]
    fn round_trips_values() {
        let values = [1.5f32, -2.0, 3.25];
        let t = tensor_from_values(&[3], ElementType::F32, &values).unwrap();
        assert_eq!(values_from_bytes::<f32>(&t.data), values);
        assert_eq!(
            ElementType::from_wasi(ElementType::I64.to_wasi()),
            ElementType::I64
        );
    }
}
