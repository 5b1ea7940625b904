//! The one call that leaves the sandbox: run the named model through wasi-nn.

use crate::api_error::ApiError;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::errors::{Error as NnError, ErrorCode};
use bindings::wasi::nn::graph;
use bindings::wasi::nn::tensor::{Tensor, TensorType};

/// An f32 output tensor.
pub struct Output {
    pub dims: Vec<u32>,
    pub values: Vec<f32>,
}

/// Runs `model` on i64 inputs that all have the dimensions `dims`, and returns
/// its f32 output named `output_name`.
pub fn infer(
    model: &str,
    dims: &[u32],
    inputs: &[(&str, &[i64])],
    output_name: &str,
) -> Result<Output, ApiError> {
    let graph = graph::load_by_name(model).map_err(|e| match e.code() {
        ErrorCode::NotFound => ApiError::not_found(format!(
            "no model named {model:?} is available to this function"
        )),
        _ => nn_error("loading the model", &e),
    })?;
    let context = graph
        .init_execution_context()
        .map_err(|e| nn_error("creating an execution context", &e))?;

    let tensors = inputs
        .iter()
        .map(|(name, values)| {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.to_string(), Tensor::new(dims, TensorType::I64, &bytes))
        })
        .collect();
    let outputs = context
        .compute(tensors)
        .map_err(|e| nn_error("running the model", &e))?;

    let (_, output) = outputs
        .into_iter()
        .find(|(name, _)| name == output_name)
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
    Ok(Output {
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
