//! `{{name}}`: the smallest function that runs a model through wasi-nn, to
//! grow into your own.
//!
//! `POST {{route}}/<model>` with `{"data": [0.0, 0.5, ...]}` (and `"shape":
//! [1, 784]` when the model's input has dynamic dimensions) feeds the numbers
//! to the model's first input, as f32, and answers every output:
//!
//! ```json
//! {"model": "<model>", "outputs": [{"name": "logits", "shape": [1, 10], "data": [-3.1, ...]}]}
//! ```
//!
//! The model's inputs and outputs come from the host
//! (`wasi_infer_guest::models`), as the loaded model states them. Replace
//! [`Request`]'s numbers with what your clients send (an image, a sound, a
//! text), and [`answer`] with what they want back.
//!
//! Written by `wasi-infer new blank {{name}}`.

use serde::{Deserialize, Serialize};
use spin_sdk::http::{IntoResponse, Method, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, Timings, model_name, models, nn};

/// What a client sends.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    data: Vec<f32>,
    /// The input's dimensions; needed only when the model's are not fixed.
    shape: Option<Vec<u32>>,
}

#[derive(Serialize)]
struct Output {
    name: String,
    shape: Vec<u32>,
    data: Vec<f32>,
}

#[derive(Serialize)]
struct Answer<'a> {
    model: &'a str,
    outputs: Vec<Output>,
}

#[http_component]
fn handle(req: spin_sdk::http::Request) -> Response {
    let mut timings = Timings::start();
    match run(&req, &mut timings) {
        Ok(body) => timings.json_response(body),
        Err(err) => err.into_response(),
    }
}

fn run(req: &spin_sdk::http::Request, timings: &mut Timings) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST {{route}}/<model>")?;
    let request: Request = serde_json::from_slice(req.body()).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object with \"data\" (numbers) and, for a model whose input has dynamic dimensions, \"shape\": {e}"
        ))
    })?;

    let meta = models::get_model(model, None).ok_or_else(|| {
        ApiError::not_found(format!(
            "no model named {model:?} is available to this function"
        ))
    })?;
    let input = meta
        .inputs
        .first()
        .ok_or_else(|| ApiError::internal(format!("model {model:?} takes no input")))?;
    let shape = input_shape(request.shape, input.shape.as_deref(), request.data.len())?;
    let inputs = vec![nn::Input::f32(&input.name, &shape, &request.data)];
    timings.lap("preprocess");

    let outputs = nn::compute(model, inputs)?;
    timings.lap("inference");

    let body = answer(model, outputs)?;
    timings.lap("postprocess");
    Ok(body)
}

/// The input's dimensions: the request's, else the model's when they are all
/// fixed; either way they must hold exactly the numbers sent.
fn input_shape(
    asked: Option<Vec<u32>>,
    model: Option<&[i64]>,
    len: usize,
) -> Result<Vec<u32>, ApiError> {
    let shape = match asked {
        Some(shape) => shape,
        None => model
            .and_then(|dims| {
                dims.iter()
                    .map(|&d| u32::try_from(d).ok())
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the model's input has dimensions {model:?} (-1 is dynamic): send \"shape\" too"
                ))
            })?,
    };
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize));
    if elements != Some(len) {
        return Err(ApiError::bad_request(format!(
            "dimensions {shape:?} do not hold the {len} numbers sent"
        )));
    }
    Ok(shape)
}

/// The answer: every output, as f32.
fn answer(model: &str, outputs: Vec<nn::Output>) -> Result<Vec<u8>, ApiError> {
    let outputs = outputs
        .into_iter()
        .map(|o| {
            let data = o.f32_values().ok_or_else(|| {
                ApiError::internal(format!(
                    "output {:?} is {:?}; this function answers FP32 outputs",
                    o.name, o.ty
                ))
            })?;
            Ok(Output {
                name: o.name,
                shape: o.dims,
                data,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::to_vec(&Answer { model, outputs })
        .map_err(|e| ApiError::internal(format!("cannot serialise the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_the_requests_or_the_models_fixed_one() {
        assert_eq!(input_shape(None, Some(&[1, 4]), 4).unwrap(), [1, 4]);
        assert_eq!(
            input_shape(Some(vec![2, 2]), Some(&[-1, 2]), 4).unwrap(),
            [2, 2]
        );
        assert_eq!(
            input_shape(None, Some(&[-1, 4]), 4).unwrap_err().status,
            400
        );
        assert_eq!(input_shape(None, None, 4).unwrap_err().status, 400);
        assert_eq!(
            input_shape(Some(vec![1, 3]), None, 4).unwrap_err().status,
            400
        );
        assert_eq!(
            input_shape(Some(vec![u32::MAX, u32::MAX, u32::MAX]), None, 1)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn outputs_are_answered_as_numbers() {
        let output = nn::Output {
            name: "y".into(),
            ty: nn::TensorType::Fp32,
            dims: vec![1, 2],
            data: [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        let body = answer("m", vec![output]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["outputs"][0]["data"], serde_json::json!([1.5, -2.0]));
        assert_eq!(json["outputs"][0]["shape"], serde_json::json!([1, 2]));
    }
}
