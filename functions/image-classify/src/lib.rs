//! `image-classify`: an HTTP function that classifies an encoded image with an
//! image-classification model served by the host through wasi-nn.
//!
//! `POST /classify/<model>?top_k=K` with a JPEG, PNG, WebP, GIF or BMP body answers
//! `{"model": "<model>", "predictions": [{"index", "label", "score"}, ...]}`,
//! with a `Server-Timing` header that splits the time the function took.
//! The body's `Content-Type` may be `image/*`, `application/octet-stream` or
//! absent (the format is read from the bytes); anything else is a 415. An
//! image larger than [`image_prep::MAX_PIXELS`] is a 413, refused from its
//! header before its pixels are decoded.
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
    check_content_type(
        req.header("content-type")
            .map(|v| v.as_str().unwrap_or("(not UTF-8)")),
    )?;
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
///
/// An image too large to decode is 413 (Content Too Large), not 400: the
/// request is well-formed and the image may well be valid; what the client
/// must change is its size, which is what 413 says (RFC 9110 15.5.14: "the
/// request content is larger than the server is willing or able to process").
/// 422 would say the content is semantically wrong, which it is not.
pub(crate) fn api_error(error: image_prep::Error) -> ApiError {
    match error {
        image_prep::Error::BadImage(m) | image_prep::Error::NotAClassifier(m) => {
            ApiError::bad_request(m)
        }
        image_prep::Error::TooLarge(m) => ApiError::payload_too_large(m),
        image_prep::Error::Config(m) => ApiError::internal(m),
    }
}

/// The media types a body may be sent as: the format itself is read from the
/// bytes, so any `image/*` will do, as will "just bytes" or no type at all.
const ACCEPTED_TYPES: &str =
    "image/* (e.g. image/jpeg, image/png), application/octet-stream, or no Content-Type";

/// Refuses a body that says it is something other than an image (JSON, text,
/// a multipart form): 415, naming what is accepted.
fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = content_type else {
        return Ok(());
    };
    // "image/jpeg; charset=..." -> "image/jpeg"; type and subtype are case-insensitive.
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        return Ok(());
    }
    let essence = essence.to_ascii_lowercase();
    let accepted = match essence.split_once('/') {
        Some(("image", subtype)) => !subtype.is_empty(),
        Some(("application", "octet-stream")) => true,
        _ => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "unsupported Content-Type {value:?}: send the encoded image as the body, with Content-Type {ACCEPTED_TYPES}"
        )))
    }
}

fn top_k(query: &str) -> Result<usize, ApiError> {
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == "top_k")
        .map(|(_, value)| value);
    // Parsed as u64 whatever the pointer width, so the answer is the same
    // natively and in wasm32: a k past the classes is clamped by `top_k`
    // (which allocates by the classes, never by k); past u64, it is refused.
    match value {
        None => Ok(default_top_k()),
        Some(v) => match v.parse::<u64>() {
            Ok(k) if k >= 1 => Ok(usize::try_from(k).unwrap_or(usize::MAX)),
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                Err(ApiError::bad_request(format!(
                    "top_k is too large: {v:?} is past {} (a k past the model's classes answers them all)",
                    u64::MAX
                )))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_clamped_not_allocated_and_overflow_is_refused() {
        assert_eq!(top_k("top_k=3").unwrap(), 3);
        assert_eq!(top_k("a=b&top_k=1000000").unwrap(), 1_000_000);
        assert_eq!(
            top_k("top_k=18446744073709551615").unwrap(),
            usize::try_from(u64::MAX).unwrap_or(usize::MAX)
        );
        for bad in ["18446744073709551616", "99999999999999999999999"] {
            let e = top_k(&format!("top_k={bad}")).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.contains("top_k") && e.message.contains("too large"),
                "{}",
                e.message
            );
        }
        for bad in ["0", "-1", "abc", "1.5", ""] {
            let e = top_k(&format!("top_k={bad}")).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains("top_k"), "{}", e.message);
        }
    }

    #[test]
    fn images_and_bytes_are_accepted_other_types_are_415() {
        for ok in [
            None,
            Some(""),
            Some("image/jpeg"),
            Some("IMAGE/PNG"),
            Some("image/webp; q=1"),
            Some("image/x-anything"),
            Some("application/octet-stream"),
        ] {
            assert!(check_content_type(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "image",
            "image/",
            "application/x-www-form-urlencoded",
        ] {
            let e = check_content_type(Some(bad)).unwrap_err();
            assert_eq!(e.status, 415, "{bad}");
            assert!(e.message.contains("image/*"), "{}", e.message);
            assert!(
                e.message.contains("application/octet-stream"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn too_large_images_are_413() {
        let e = api_error(image_prep::Error::TooLarge("big".into()));
        assert_eq!(e.status, 413);
        assert_eq!(
            api_error(image_prep::Error::BadImage("x".into())).status,
            400
        );
    }
}
