//! `image-classify`: an HTTP function that classifies an encoded image with an
//! image-classification model served by the host through wasi-nn.
//!
//! `POST /classify/<model>?top_k=K` with a JPEG, PNG, WebP, GIF or BMP body answers
//! `{"model": "<model>", "predictions": [{"index", "label", "score"}, ...]}`,
//! with a `Server-Timing` header that splits the time the function took.
//! The image is read the ways clients send one (see [`image_body`]): the raw
//! bytes as the body, whatever `Content-Type` they come with (curl's
//! `--data-binary` says `application/x-www-form-urlencoded`), or the first
//! file of a `multipart/form-data` upload (`curl -F file=@photo.jpg`, an HTML
//! form). A body that is neither an image nor says it is one (JSON, text) is
//! a 415. An image larger than [`image_prep::MAX_PIXELS`] is a 413, refused
//! from its header before its pixels are decoded.
//!
//! Decoding, resizing and normalisation ([`image_prep`]) run here, inside the
//! sandbox; only the tensor crosses into the host. How to prepare an image is read
//! from the model's `model.toml`, which the manifest mounts read-only at
//! `/models/<model>/`.
//!
//! The same source builds two ways: by default the model runs in the host,
//! through wasi-nn; with the `self-contained` feature, tract runs it inside
//! this component, which then serves on any `wasi:http` host (see
//! [`wasi_infer_guest::nn`]). Either build may be pre-initialised
//! (`wasi-infer preinit`), so that a fresh instance starts with the models'
//! metadata and labels read, and the self-contained one with the models
//! optimised.

mod metadata;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, Timings, form, model_name, nn};

/// Used when neither the query nor the `default_top_k` variable says otherwise.
const FALLBACK_TOP_K: usize = 5;

#[derive(Serialize)]
struct Classification<'a> {
    model: &'a str,
    predictions: Vec<image_prep::Prediction>,
}

/// `wizer-initialize`: prepares every image classifier in `/models` (see
/// [`wasi_infer_guest::preinit`]).
struct Preinit;

impl wasi_infer_guest::preinit::Guest for Preinit {
    fn wizer_initialize() {
        wasi_infer_guest::preinit::run(metadata::prepare);
    }
}

wasi_infer_guest::preinit::export_preinit!(Preinit);

#[http_component]
fn handle(req: Request) -> Response {
    let mut timings = Timings::start();
    match classify(&req, &mut timings) {
        Ok(body) => timings.json_response(body),
        Err(err) => err.into_response(),
    }
}

fn classify(req: &Request, timings: &mut Timings) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST /classify/<model>")?;
    let content_type = req
        .header("content-type")
        .map(|v| v.as_str().unwrap_or("(not UTF-8)"));
    let body = image_body(content_type, req.body())?;
    let top_k = top_k(req.query())?;
    let meta = metadata::ModelMetadata::get(model)?;
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
    timings.lap("labels");
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

/// What a body may say it is when its bytes are not recognisably an image
/// (the decoder then names what is wrong with them): any `image/*`, "just
/// bytes", or nothing at all.
const ACCEPTED_TYPES: &str = "image/* (e.g. image/jpeg, image/png), application/octet-stream, multipart/form-data (a file upload), or no Content-Type";

/// The encoded image a request carries.
///
/// - `multipart/form-data`: the form's first file part (a malformed form or
///   one without a file is a 400 that says so).
/// - Any other type: the body itself when its bytes start as an image, since
///   clients label raw uploads loosely (curl's `--data-binary` sends
///   `application/x-www-form-urlencoded`; some libraries `text/plain`).
/// - A body that is not an image is decoded (and refused with a 400 naming
///   the problem) only when it claims to be one or claims nothing; anything
///   else (JSON, text, a URL-encoded form) is a 415 naming what is accepted.
fn image_body<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<&'a [u8], ApiError> {
    const SEND_AN_IMAGE: &str = "send the encoded image (JPEG, PNG, WebP, GIF or BMP) as the body, or upload it as a form file (curl -F file=@photo.jpg)";
    let essence = content_type.map(form::essence).unwrap_or_default();
    if essence == "multipart/form-data" {
        let file = form::first_file(content_type.unwrap_or_default(), body)
            .map_err(|e| ApiError::bad_request(format!("{e}")))?;
        if file.data.is_empty() {
            return Err(ApiError::bad_request(format!(
                "the uploaded file {:?} is empty: {SEND_AN_IMAGE}",
                file.filename
            )));
        }
        return Ok(file.data);
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the request body is empty: {SEND_AN_IMAGE}"
        )));
    }
    if image_prep::looks_like_image(body) {
        return Ok(body);
    }
    let claims_image = match essence.split_once('/') {
        _ if essence.is_empty() => true,
        Some(("image", subtype)) => !subtype.is_empty(),
        Some(("application", "octet-stream")) => true,
        _ => false,
    };
    if claims_image {
        Ok(body)
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "unsupported Content-Type {:?} for a body that is not an image: {SEND_AN_IMAGE}; accepted: {ACCEPTED_TYPES}",
            content_type.unwrap_or_default()
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

    /// The first bytes of a PNG: enough for the signature check.
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn an_image_is_taken_whatever_its_content_type_says() {
        for content_type in [
            None,
            Some("image/png"),
            Some("application/octet-stream"),
            // What curl --data-binary sends without -H.
            Some("application/x-www-form-urlencoded"),
            Some("text/plain"),
            Some("application/json"),
        ] {
            assert_eq!(
                image_body(content_type, PNG).unwrap(),
                PNG,
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_an_image_is_decoded_only_when_it_claims_to_be_one() {
        let text = b"hello";
        for claims in [
            None,
            Some(""),
            Some("IMAGE/PNG"),
            Some("image/x-anything"),
            Some("application/octet-stream"),
        ] {
            // Passed on: the decoder answers 400 naming what is wrong.
            assert_eq!(image_body(claims, text).unwrap(), text, "{claims:?}");
        }
        for other in [
            "application/json",
            "text/plain",
            "image",
            "image/",
            "application/x-www-form-urlencoded",
        ] {
            let e = image_body(Some(other), text).unwrap_err();
            assert_eq!(e.status, 415, "{other}");
            assert!(
                e.message.contains("image/*") && e.message.contains("multipart/form-data"),
                "{}",
                e.message
            );
            assert!(e.message.contains(other), "{}", e.message);
        }
        let e = image_body(Some("image/png"), b"").unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn a_form_upload_gives_its_first_file() {
        let ct = "multipart/form-data; boundary=B";
        let mut body =
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(PNG);
        body.extend_from_slice(b"\r\n--B--\r\n");
        assert_eq!(image_body(Some(ct), &body).unwrap(), PNG);
        // A form that is malformed or holds no file is a 400 that says why.
        for bad in [
            &b"not a form"[..],
            b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B--",
        ] {
            let e = image_body(Some(ct), bad).unwrap_err();
            assert_eq!(e.status, 400, "{}", e.message);
            assert!(e.message.contains("multipart/form-data"), "{}", e.message);
        }
        let empty =
            b"--B\r\nContent-Disposition: form-data; name=f; filename=e.png\r\n\r\n\r\n--B--";
        let e = image_body(Some(ct), empty).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("empty"), "{}", e.message);
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
