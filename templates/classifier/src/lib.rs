//! `{{name}}`: classifies an image with a model the host runs through wasi-nn.
//!
//! `POST {{route}}/<model>` with an encoded image (JPEG, PNG, WebP, GIF, BMP)
//! as the body (`curl --data-binary @photo.jpg`) or as a form upload
//! (`curl -F file=@photo.jpg`) answers the most probable classes:
//!
//! ```json
//! {"model": "<model>", "predictions": [{"index": 282, "label": "tiger cat", "score": 0.38}, ...]}
//! ```
//!
//! How to prepare the image (resize, crop, mean and std, layout), the tensor
//! names and the labels file come from the model's `model.toml`, which the
//! manifest mounts read-only at `/models/<model>/`; `image-prep` does the
//! work. Change [`classify`] to do your own pre- or post-processing.
//!
//! Written by `wasi-infer new classifier {{name}}`.

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, Timings, form, model_name, nn, read_model_toml};

/// How many classes an answer holds.
const TOP_K: usize = 5;

#[derive(Serialize)]
struct Answer<'a> {
    model: &'a str,
    predictions: Vec<image_prep::Prediction>,
}

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
    let model = model_name(req, "POST {{route}}/<model>")?;
    let content_type = req.header("content-type").and_then(|v| v.as_str());
    let image = image_body(content_type, req.body())?;

    let toml = read_model_toml(model)?;
    let spec =
        image_prep::ClassifierSpec::parse(model, &toml.path.display().to_string(), &toml.text)
            .map_err(api_error)?;
    let decoded = image_prep::decode_for(image, &spec.preprocess).map_err(api_error)?;
    timings.lap("decode");
    let input = image_prep::to_tensor(&decoded, &spec.preprocess).map_err(api_error)?;
    timings.lap("preprocess");

    let inputs = vec![nn::Input::f32(&spec.input_name, &input.dims, &input.values)];
    let logits = nn::infer_f32(model, inputs, &spec.output_name)?.values;
    timings.lap("inference");

    let labels = match &spec.labels_file {
        Some(file) => {
            let path = toml.dir.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?
        }
        None => String::new(),
    };
    let predictions = image_prep::top_k(&logits, TOP_K, |i| image_prep::label_of(&labels, i));
    let body = serde_json::to_vec(&Answer { model, predictions })
        .map_err(|e| ApiError::internal(format!("cannot serialise the answer: {e}")))?;
    timings.lap("postprocess");
    Ok(body)
}

/// The encoded image: the first file of a form upload, or the body itself.
fn image_body<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<&'a [u8], ApiError> {
    let image = form::file_or_body(content_type, body)?;
    if image.is_empty() {
        return Err(ApiError::bad_request(
            "no image: send the encoded image as the body, or upload it as a form file",
        ));
    }
    Ok(image)
}

/// A bad image is the request's fault (400, or 413 when it is too large to
/// decode); a model that is no image classifier too (400); a broken
/// `model.toml` is the server's (500).
fn api_error(error: image_prep::Error) -> ApiError {
    match error {
        image_prep::Error::BadImage(m) | image_prep::Error::NotAClassifier(m) => {
            ApiError::bad_request(m)
        }
        image_prep::Error::TooLarge(m) => ApiError::payload_too_large(m),
        image_prep::Error::Config(m) => ApiError::internal(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_the_body_or_the_uploaded_file() {
        assert_eq!(image_body(None, b"\x89PNG...").unwrap(), b"\x89PNG...");
        let upload = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
            Content-Type: image/png\r\n\r\n\
            \x89PNG...\r\n\
            --XyZ--\r\n";
        let form = Some("multipart/form-data; boundary=XyZ");
        assert_eq!(image_body(form, upload).unwrap(), b"\x89PNG...");
    }

    #[test]
    fn no_image_is_a_bad_request() {
        assert_eq!(image_body(None, b"").unwrap_err().status, 400);
        let form = Some("multipart/form-data; boundary=XyZ");
        assert_eq!(image_body(form, b"not a form").unwrap_err().status, 400);
    }

    #[test]
    fn the_classes_are_the_most_probable_first() {
        let labels = "cat\ndog\nbird\n";
        let top = image_prep::top_k(&[0.5, 2.0, -1.0], 2, |i| image_prep::label_of(labels, i));
        let names: Vec<_> = top.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(names, ["dog", "cat"]);
        assert!(top[0].score > top[1].score);
    }
}
