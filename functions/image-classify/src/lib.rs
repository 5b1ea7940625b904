//! `image-classify`: an HTTP function that classifies an encoded image with an
//! image-classification model served by the host through wasi-nn.
//!
//! `POST /classify/<model>?top_k=K` with a JPEG, PNG, WebP, GIF or BMP body answers
//! `{"model": "<model>", "predictions": [{"index", "label", "score"}, ...]}`,
//! with a `Server-Timing` header that splits the time the function took.
//!
//! Decoding, resizing and normalisation ([`image_prep`]) run here, inside the
//! sandbox; only the tensor crosses into the host. How to prepare an image is read
//! from the model's `model.toml`, which the manifest mounts read-only at
//! `/models/<model>/`.

mod metadata;
mod timing;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, model_name, nn};

use timing::Timings;

/// Used when neither the query nor the `default_top_k` variable says otherwise.
const FALLBACK_TOP_K: usize = 5;

#[derive(Serialize)]
struct Classification<'a> {
    model: &'a str,
    predictions: Vec<image_prep::Prediction>,
}

#[http_component]
fn handle(req: Request) -> Response {
    let mut timings = Timings::start();
    match classify(&req, &mut timings) {
        Ok(body) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("server-timing", timings.header())
            .body(body)
            .build(),
        Err(err) => err.into_response(),
    }
}

fn classify(req: &Request, timings: &mut Timings) -> Result<Vec<u8>, ApiError> {
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
    let spec = &meta.spec;
    timings.lap("metadata");

    let image = image_prep::decode_for(body, &spec.preprocess).map_err(api_error)?;
    timings.lap("decode");
    let input = image_prep::to_tensor(&image, &spec.preprocess).map_err(api_error)?;
    drop(image);
    timings.lap("preprocess");

    let inputs = vec![nn::Input::f32(&spec.input_name, &input.dims, &input.values)];
    drop(input);
    let logits = nn::infer_f32(model, inputs, &spec.output_name)?.values;
    timings.lap("inference");

    let labels = meta.labels()?;
    let predictions = image_prep::top_k(&logits, top_k, |i| image_prep::label_of(&labels, i));
    let body = serde_json::to_vec(&Classification { model, predictions })
        .map_err(|e| ApiError::internal(format!("cannot serialise the response: {e}")))?;
    timings.lap("postprocess");
    Ok(body)
}

/// A bad image is the request's fault (400); a model that is no classifier was
/// named by the request (400); an invalid `model.toml` is the server's (500).
pub(crate) fn api_error(error: image_prep::Error) -> ApiError {
    match error {
        image_prep::Error::BadImage(m) | image_prep::Error::NotAClassifier(m) => {
            ApiError::bad_request(m)
        }
        image_prep::Error::Config(m) => ApiError::internal(m),
    }
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
#[cfg(feature = "spin-variables")]
fn default_top_k() -> usize {
    spin_sdk::variables::get("default_top_k")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|k| *k >= 1)
        .unwrap_or(FALLBACK_TOP_K)
}

#[cfg(not(feature = "spin-variables"))]
fn default_top_k() -> usize {
    FALLBACK_TOP_K
}
