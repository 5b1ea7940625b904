//! `{{name}}`: runs a text model the host serves through wasi-nn on each
//! text of a request.
//!
//! `POST {{route}}/<model>` with `{"input": "a text"}` or
//! `{"input": ["text one", "text two"]}` answers the model's output for
//! each text, in request order, and how many tokens each became:
//!
//! ```json
//! {"model": "<model>", "outputs": [[0.03, -0.01, ...], [0.01, ...]], "tokens": [8, 9]}
//! ```
//!
//! The tokenizer (`tokenizer.json`, BERT WordPiece), the longest input and
//! which output to answer come from the `[preprocess]` table of the model's
//! `model.toml`, mounted read-only at `/models/<model>/`; `text-prep` does
//! the work. Change [`postprocess`] to turn the output into your answer
//! (e.g. a softmax over a text classifier's logits).
//!
//! Written by `wasi-infer new text {{name}}`.

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use text_prep::{Batch, ModelMetadata, Tokenizer, request, tokenize};
use wasi_infer_guest::{ApiError, Timings, model_name, nn};

/// The `task` the models this function serves declare in their `model.toml`.
const TASK: &str = text_prep::metadata::TEXT_EMBEDDING;

#[derive(Serialize)]
struct Answer<'a> {
    model: &'a str,
    outputs: Vec<Vec<f32>>,
    tokens: Vec<usize>,
}

#[http_component]
fn handle(req: Request) -> Response {
    let mut timings = Timings::start();
    match run(&req, &mut timings) {
        Ok(body) => timings.json_response(body),
        Err(err) => err.into_response(),
    }
}

fn run(req: &Request, timings: &mut Timings) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST {{route}}/<model>")?;
    let texts = request::texts(req.body())?;

    let meta = ModelMetadata::load(model, TASK)?;
    let json = tokenize::read(&meta.tokenizer_path)?;
    let tokenizer = Tokenizer::from_json(&json, meta.max_length)?;
    let ids: Vec<Vec<u32>> = texts.iter().map(|text| tokenizer.encode(text)).collect();
    timings.lap("tokenize");

    // One inference per text, so that no text's answer depends on another's
    // (padding, or an int8 model's dynamic quantisation over the batch).
    let mut outputs = Vec::with_capacity(ids.len());
    for text_ids in &ids {
        let batch = Batch::new(std::slice::from_ref(text_ids), tokenizer.pad_id());
        let dims = [dim(batch.batch)?, dim(batch.seq)?];
        let inputs = meta
            .inputs
            .iter()
            .map(|name| {
                let values = batch.input(name).ok_or_else(|| {
                    ApiError::internal(format!(
                        "model {model:?} takes an input {name:?}; text-prep makes input_ids, attention_mask and token_type_ids"
                    ))
                })?;
                Ok(nn::Input::i64(name, &dims, values))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let output = nn::infer_f32(model, inputs, &meta.output)?;
        outputs.push(postprocess(&output.dims, output.values)?);
    }
    timings.lap("inference");

    let tokens = ids.iter().map(Vec::len).collect();
    serde_json::to_vec(&Answer {
        model,
        outputs,
        tokens,
    })
    .map_err(|e| ApiError::internal(format!("cannot serialise the answer: {e}")))
}

/// One text's answer from the model's output for it, which must be one row
/// (`[1, N]`). Returned as it is: an embedder's output is its answer.
fn postprocess(dims: &[u32], values: Vec<f32>) -> Result<Vec<f32>, ApiError> {
    match dims {
        [1, n] if *n as usize == values.len() && *n > 0 => Ok(values),
        _ => Err(ApiError::internal(format!(
            "the model's output has dimensions {dims:?} ({} values), expected [1, N]",
            values.len()
        ))),
    }
}

fn dim(n: usize) -> Result<u32, ApiError> {
    u32::try_from(n).map_err(|_| ApiError::internal(format!("tensor dimension {n} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_one_row_of_the_output() {
        assert_eq!(
            postprocess(&[1, 3], vec![0.1, 0.2, 0.3]).unwrap(),
            [0.1, 0.2, 0.3]
        );
        assert_eq!(postprocess(&[2, 3], vec![0.0; 6]).unwrap_err().status, 500);
        assert_eq!(postprocess(&[1, 4], vec![0.0; 3]).unwrap_err().status, 500);
    }

    #[test]
    fn a_request_holds_one_or_more_texts() {
        assert_eq!(request::texts(br#"{"input": "a"}"#).unwrap(), ["a"]);
        assert_eq!(
            request::texts(br#"{"input": ["a", "b"]}"#).unwrap().len(),
            2
        );
        assert_eq!(request::texts(b"{}").unwrap_err().status, 400);
    }
}
