//! Misuses of wasi-nn. A wasi-nn error is the host refusing cleanly: 422 with
//! the host's message. A call that succeeds where it should not is 200
//! `{"escaped": true}`.

use std::mem::ManuallyDrop;

use serde_json::json;
use spin_sdk::http::Response;

use crate::{bad_request, reply};

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::errors::Error as NnError;
use bindings::wasi::nn::graph::{self, ExecutionTarget, Graph, GraphEncoding};
use bindings::wasi::nn::tensor::{Tensor, TensorType};

/// The model the manifest grants this component.
const ALLOWED_MODEL: &str = "efficientnet-lite0-int8";
/// A text model (three INT64 inputs [batch, sequence]), granted too.
const TEXT_MODEL: &str = "all-minilm-l6-v2";
const TEXT_INPUTS: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];
/// A model made slow on purpose (the tests make it): a chain of MatMuls of
/// one f32 input [n, n] by itself.
const SLOW_MODEL: &str = "slow-matmul";
/// A model the host has, but not for this component.
const FORBIDDEN_MODEL: &str = "efficientnet-lite0";
/// The allowed model's input: f32, [1, 3, 224, 224].
const INPUT: &str = "input";
const IMAGE_DIMS: [u32; 4] = [1, 3, 224, 224];
const IMAGE_BYTES: usize = 224 * 224 * 3 * 4;
/// A graph handle this component was never given.
const FORGED_HANDLE: u32 = 0x0bad_cafe;

pub fn wrong_shape() -> Response {
    let dims = [1, 3, 10, 10];
    compute(&dims, TensorType::Fp32, &[0; 3 * 10 * 10 * 4])
}

pub fn wrong_type() -> Response {
    compute(&IMAGE_DIMS, TensorType::U8, &vec![0; IMAGE_BYTES / 4])
}

/// An f32 input `factor` times the model's: its last dimension multiplied.
pub fn too_large(factor: u32) -> Result<Response, Response> {
    let too_big = || bad_request(format!("?factor={factor} is too large even for this"));
    let width = IMAGE_DIMS[3].checked_mul(factor).ok_or_else(too_big)?;
    let bytes = IMAGE_BYTES
        .checked_mul(factor as usize)
        .ok_or_else(too_big)?;
    let dims = [1, 3, 224, width];
    Ok(compute(&dims, TensorType::Fp32, &vec![0; bytes]))
}

pub fn not_allowed() -> Response {
    match graph::load_by_name(FORBIDDEN_MODEL) {
        Ok(_) => reply(200, json!({"escaped": true, "loaded": FORBIDDEN_MODEL})),
        Err(e) => nn_error(&e),
    }
}

pub fn load_bytes() -> Response {
    let builder = [b"not a model".to_vec()];
    match graph::load(&builder, GraphEncoding::Onnx, ExecutionTarget::Cpu) {
        Ok(_) => reply(200, json!({"escaped": true, "loaded": "bytes"})),
        Err(e) => nn_error(&e),
    }
}

/// Uses a graph handle this component never got: the host should trap.
pub fn bad_handle() -> Response {
    // SAFETY: not at all: the handle is forged, to see the host refuse it. It
    // is never dropped, which would hand the forged handle back again.
    let forged = ManuallyDrop::new(unsafe { Graph::from_handle(FORGED_HANDLE) });
    match forged.init_execution_context() {
        Ok(_) => reply(
            200,
            json!({"escaped": true, "forged_handle": FORGED_HANDLE, "created": "context"}),
        ),
        Err(e) => nn_error(&e),
    }
}

/// Creates `count` image tensors, all kept alive.
pub fn flood_tensors(count: u32) -> Response {
    let data = vec![0; IMAGE_BYTES];
    let tensors: Vec<Tensor> = (0..count)
        .map(|_| Tensor::new(&IMAGE_DIMS, TensorType::Fp32, &data))
        .collect();
    reply(200, json!({"escaped": true, "tensors": tensors.len()}))
}

/// Creates `count` execution contexts of one graph, all kept alive.
pub fn flood_contexts(count: u32) -> Response {
    let graph = match graph::load_by_name(ALLOWED_MODEL) {
        Ok(graph) => graph,
        Err(e) => return nn_error(&e),
    };
    let mut contexts = Vec::new();
    for _ in 0..count {
        match graph.init_execution_context() {
            Ok(context) => contexts.push(context),
            Err(e) => {
                return reply(
                    422,
                    json!({"error": describe(&e), "created": contexts.len()}),
                );
            }
        }
    }
    reply(200, json!({"escaped": true, "contexts": contexts.len()}))
}

/// The text model given `batch` x `seq` tokens (3 x 8 x batch x seq bytes):
/// past the model's bounds, far more work than the bytes suggest.
pub fn large_shape(batch: u32, seq: u32) -> Result<Response, Response> {
    let bytes = (batch as usize)
        .checked_mul(seq as usize)
        .and_then(|n| n.checked_mul(8))
        .filter(|&n| n <= 64 << 20)
        .ok_or_else(|| bad_request(format!("[{batch}, {seq}] is too large even for this")))?;
    let inputs = |data: &[u8]| -> Vec<(String, Tensor)> {
        TEXT_INPUTS
            .iter()
            .map(|name| {
                let tensor = Tensor::new(&[batch, seq], TensorType::I64, data);
                (name.to_string(), tensor)
            })
            .collect()
    };
    let data = vec![0u8; bytes];
    let computed = graph::load_by_name(TEXT_MODEL)
        .and_then(|graph| graph.init_execution_context())
        .and_then(|context| context.compute(inputs(&data)));
    Ok(match computed {
        // Within the model's bounds, running is what should happen.
        Ok(outputs) => reply(
            200,
            json!({"ok": true, "computed": [batch, seq], "outputs": outputs.len()}),
        ),
        Err(e) => nn_error(&e),
    })
}

/// Creates `count` tensors of no data and `rank` dimensions, all kept: a
/// flood of dimension lists.
pub fn flood_dims(count: u32, rank: u32) -> Response {
    let dims = vec![1u32; rank as usize];
    let tensors: Vec<Tensor> = (0..count)
        .map(|_| Tensor::new(&dims, TensorType::U8, &[]))
        .collect();
    reply(200, json!({"escaped": true, "tensors": tensors.len(), "rank": rank}))
}

/// Computes the text model `count` times on [16, 256] tokens, keeping every
/// output (6 MiB of hidden states each).
pub fn hoard_outputs(count: u32) -> Response {
    let run = || -> Result<usize, NnError> {
        let graph = graph::load_by_name(TEXT_MODEL)?;
        let context = graph.init_execution_context()?;
        let dims = [16u32, 256];
        let data = vec![0u8; 16 * 256 * 8];
        let mut hoard = Vec::new();
        for _ in 0..count {
            let inputs = TEXT_INPUTS
                .iter()
                .map(|name| (name.to_string(), Tensor::new(&dims, TensorType::I64, &data)))
                .collect();
            hoard.extend(context.compute(inputs)?);
        }
        Ok(hoard.len())
    };
    match run() {
        Ok(kept) => reply(200, json!({"escaped": true, "outputs_kept": kept})),
        Err(e) => nn_error(&e),
    }
}

/// Runs the slow model on an [n, n] input: seconds of inference.
pub fn slow(n: u32) -> Response {
    let elements = (n as usize) * (n as usize);
    let data = vec![0u8; elements * 4];
    let run = || -> Result<Response, NnError> {
        let graph = graph::load_by_name(SLOW_MODEL)?;
        let context = graph.init_execution_context()?;
        let input = Tensor::new(&[n, n], TensorType::Fp32, &data);
        let outputs = context.compute(vec![("x".to_string(), input)])?;
        Ok(reply(200, json!({"ok": true, "n": n, "outputs": outputs.len()})))
    };
    run().unwrap_or_else(|e| nn_error(&e))
}

/// Runs the allowed model on one input named [`INPUT`].
fn compute(dims: &[u32], ty: TensorType, data: &[u8]) -> Response {
    try_compute(dims, ty, data).unwrap_or_else(|e| nn_error(&e))
}

fn try_compute(dims: &[u32], ty: TensorType, data: &[u8]) -> Result<Response, NnError> {
    let graph = graph::load_by_name(ALLOWED_MODEL)?;
    let context = graph.init_execution_context()?;
    let input = Tensor::new(dims, ty, data);
    let outputs = context.compute(vec![(INPUT.to_string(), input)])?;
    Ok(reply(
        200,
        json!({"escaped": true, "computed": dims, "outputs": outputs.len()}),
    ))
}

fn nn_error(e: &NnError) -> Response {
    reply(422, json!({"error": describe(e)}))
}

/// The host's error, as `<code>: <message>`.
fn describe(e: &NnError) -> String {
    format!("{:?}: {}", e.code(), e.data())
}
