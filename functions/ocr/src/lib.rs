//! `ocr`: reads the text in an image with a PP-OCR pipeline of three models
//! served by the host through wasi-nn: a text detector, a direction
//! classifier and a recogniser.
//!
//! `POST /ocr/<model>` with an image as the body (`curl --data-binary
//! @page.png`) or as a form upload (`curl -F file=@page.png`), `<model>`
//! being the pipeline's detector (whose `model.toml` names the other two),
//! answers
//!
//! ```json
//! {"model": "pp-ocrv4", "width": 384, "height": 191,
//!  "lines": [{"text": "Region-based segmentation", "confidence": 0.996,
//!             "box": [[7, 12], [292, 14], [292, 33], [7, 32]], "angle": 0}, ...],
//!  "text": "Region-based segmentation\n..."}
//! ```
//!
//! with each line's four corners in the image's pixels (top left, top
//! right, bottom right, bottom left as the text runs), in reading order
//! (top to bottom, left to right), and `angle` 180 for a line read upside
//! down. How each stage works is PaddleOCR's own ([`pipeline`]), so that
//! the answers are those of its Python package.
//!
//! The sandbox does everything but the three models' inference: decoding,
//! scaling, the detector's post-processing (regions, rectangles, unclip),
//! cutting the lines out, batching them and decoding the recogniser's
//! output.
//!
//! Errors are `{"error": "..."}`: 400 for a body that is not an image, 404
//! for an unknown model, 405 for a method other than POST, 413 for an image
//! larger than the decoder takes or one with more than
//! [`pipeline::MAX_LINES`] lines.

mod detect;
mod geometry;
mod pipeline;
mod pixels;
mod recognize;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::{ApiError, Timings, form, model_name};

#[derive(Serialize)]
struct Answer<'a> {
    model: &'a str,
    width: u32,
    height: u32,
    lines: Vec<LineAnswer>,
    /// The lines' texts, one per line.
    text: String,
}

#[derive(Serialize)]
struct LineAnswer {
    text: String,
    confidence: f32,
    #[serde(rename = "box")]
    corners: [[f32; 2]; 4],
    angle: u16,
}

#[http_component]
fn handle(req: Request) -> Response {
    let mut timings = Timings::start();
    match read(&req, &mut timings) {
        Ok(body) => timings.json_response(body),
        Err(err) => err.into_response(),
    }
}

fn read(req: &Request, timings: &mut Timings) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST /ocr/<model>")?;
    if !req.query().is_empty() {
        return Err(ApiError::bad_request(format!(
            "unknown parameters {:?}: /ocr takes none",
            wasi_infer_guest::quoted(req.query())
        )));
    }
    let content_type = req.header("content-type").and_then(|v| v.as_str());
    let bytes = form::file_or_body(content_type, req.body())?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "no image: send an image (JPEG, PNG, WebP, GIF or BMP) as the body, or upload it as a form file",
        ));
    }
    let pipeline = pipeline::Pipeline::open(model)?;
    timings.lap("load");
    let image = image_prep::preprocess::decode(bytes).map_err(|e| match e {
        image_prep::Error::TooLarge(m) => ApiError::payload_too_large(m),
        e => ApiError::bad_request(e.to_string()),
    })?;
    timings.lap("decode");

    let lines = pipeline.read(&image, timings)?;
    let text = lines
        .iter()
        .map(|l| l.reading.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let answer = Answer {
        model,
        width: image.width(),
        height: image.height(),
        lines: lines
            .into_iter()
            .map(|l| LineAnswer {
                corners: l.corners.map(|p| [p.x as f32, p.y as f32]),
                text: l.reading.text,
                confidence: l.reading.confidence,
                angle: if l.turned { 180 } else { 0 },
            })
            .collect(),
        text,
    };
    let body = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::internal(format!("cannot serialise the answer: {e}")))?;
    timings.lap("postprocess");
    Ok(body)
}
