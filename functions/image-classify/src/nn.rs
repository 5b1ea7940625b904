//! The one call that leaves the sandbox: run the named model through wasi-nn.

use crate::api_error::ApiError;
use crate::preprocess::InputTensor;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::errors::{Error as NnError, ErrorCode};
use bindings::wasi::nn::graph;
use bindings::wasi::nn::tensor::{Tensor, TensorType};

/// Runs `model` on one f32 input and returns its f32 output named `output_name`.
pub fn infer(
    model: &str,
    input_name: &str,
    output_name: &str,
    input: InputTensor,
) -> Result<Vec<f32>, ApiError> {
    let graph = graph::load_by_name(model).map_err(|e| match e.code() {
        ErrorCode::NotFound => ApiError::not_found(format!(
            "no model named {model:?} is available to this function"
        )),
        _ => nn_error("loading the model", &e),
    })?;
    let context = graph
        .init_execution_context()
        .map_err(|e| nn_error("creating an execution context", &e))?;

    let bytes: Vec<u8> = input.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensor = Tensor::new(&input.dims, TensorType::Fp32, &bytes);
    let outputs = context
        .compute(vec![(input_name.to_string(), tensor)])
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
    Ok(output
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn nn_error(doing: &str, e: &NnError) -> ApiError {
    ApiError::internal(format!(
        "wasi-nn failed {doing}: {:?}: {}",
        e.code(),
        e.data()
    ))
}
