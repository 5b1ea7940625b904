//! `image-classify`: an HTTP function that classifies an encoded image with an
//! image-classification model served by the host through wasi-nn.
//!
//! `POST /classify/<model>?top_k=K` with a JPEG, PNG, WebP, GIF or BMP body answers
//! `{"model": "<model>", "predictions": [{"index", "label", "score"}, ...]}`.
//!
//! Decoding, resizing and normalisation run here, inside the sandbox; only the
//! tensor crosses into the host. How to prepare an image is read from the model's
//! `model.toml`, which the manifest mounts read-only at `/models/<model>/`.

mod metadata;
mod postprocess;
mod preprocess;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, json_response, model_name, nn};

/// Used when neither the query nor the `default_top_k` variable says otherwise.
const FALLBACK_TOP_K: usize = 5;

#[derive(Serialize)]
struct Classification<'a> {
    model: &'a str,
    predictions: Vec<postprocess::Prediction>,
}

#[http_component]
fn handle(req: Request) -> Response {
    match classify(&req) {
        Ok(body) => json_response(200, &body),
        Err(err) => err.into_response(),
    }
}

fn classify(req: &Request) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST /classify/<model>")?;
    let top_k = top_k(req.query())?;
    let body = req.body();
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty: send the encoded image (JPEG, PNG, WebP, GIF or BMP) as the body",
        ));
    }

    let meta = metadata::ModelMetadata::load(model)?;
    let image = preprocess::decode(body)?;
    let input = preprocess::to_tensor(&image, &meta.preprocess)?;
    let inputs = vec![nn::Input::f32(&meta.input_name, &input.dims, &input.values)];
    let logits = nn::infer_f32(model, inputs, &meta.output_name)?.values;
    let labels = meta.labels()?;
    let predictions = postprocess::top_k(&logits, top_k, &labels);

    serde_json::to_vec(&Classification { model, predictions })
        .map_err(|e| ApiError::internal(format!("cannot serialise the response: {e}")))
}

fn top_k(query: &str) -> Result<usize, ApiError> {
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == "top_k")
        .map(|(_, value)| value);
    match value {
        None => Ok(default_top_k()),
        Some(v) => match v.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(k),
            _ => Err(ApiError::bad_request(format!(
                "top_k must be a whole number of at least 1, got {v:?}"
            ))),
        },
    }
}

/// The application may set a default through the `default_top_k` variable.
fn default_top_k() -> usize {
    spin_sdk::variables::get("default_top_k")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|k| *k >= 1)
        .unwrap_or(FALLBACK_TOP_K)
}
