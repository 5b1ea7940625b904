//! `text-embed`: an HTTP function that turns texts into sentence embeddings with
//! a text-embedding model served by the host through wasi-nn.
//!
//! `POST /embed/<model>` with the JSON body `{"input": "a text"}` or
//! `{"input": ["text one", "text two", ...]}` (at most 64 texts, none empty)
//! answers
//!
//! ```json
//! {"model": "<model>", "dimensions": 384, "embeddings": [[0.01, ...], ...], "tokens": [8, 11]}
//! ```
//!
//! with one embedding per text, in request order, as the model's output gives
//! it (all-MiniLM-L6-v2: mean-pooled and L2-normalised, so a dot product is the
//! cosine similarity). `tokens` counts each text's tokens after truncation,
//! [CLS] and [SEP] included.
//!
//! Errors are `{"error": "..."}`: 400 for a body that is not such JSON, 404 for
//! an unknown model, 405 (with `Allow: POST`) for another method, 500 when the
//! model or its files misbehave.
//!
//! Tokenisation ([`text_prep`]) runs here, inside the sandbox, with the model's `tokenizer.json`;
//! then each text goes to the host in its own wasi-nn compute (`[1, tokens]`),
//! so a text's embedding never depends on the other texts of the request. How to tokenise and which output to return are
//! read from the `[preprocess]` table of the model's `model.toml`, which the
//! manifest mounts read-only at `/models/<model>/`.
//!
//! Like `image-classify`, it builds with inference through wasi-nn (the
//! default) or compiled in (`self-contained`), and either may be
//! pre-initialised, so that a fresh instance starts with the tokenizer built.

mod prepared;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use text_prep::{batch, metadata, request, tokenize};
use wasi_infer_guest::{ApiError, json_response, model_name, nn};

#[derive(Serialize)]
struct Embeddings<'a> {
    model: &'a str,
    dimensions: usize,
    embeddings: Vec<&'a [f32]>,
    tokens: Vec<usize>,
}

/// `wizer-initialize`: prepares every text-embedding model in `/models`
/// (see [`wasi_infer_guest::preinit`]).
struct Preinit;

impl wasi_infer_guest::preinit::Guest for Preinit {
    fn wizer_initialize() {
        wasi_infer_guest::preinit::run(prepared::prepare);
    }
}

wasi_infer_guest::preinit::export_preinit!(Preinit);

#[http_component]
fn handle(req: Request) -> Response {
    match embed(&req) {
        Ok(body) => json_response(200, &body),
        Err(err) => err.into_response(),
    }
}

fn embed(req: &Request) -> Result<Vec<u8>, ApiError> {
    if *req.method() != Method::Post {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let model = model_name(req, "POST /embed/<model>")?;
    let texts = request::texts(req.body())?;

    // Prepared in advance (a pre-initialised component), or read now.
    let prepared = prepared::get(model);
    let tokenizer_json;
    let loaded;
    let (meta, tokenizer) = match &prepared {
        Some(p) => (&p.meta, &p.tokenizer),
        None => {
            let meta = metadata::ModelMetadata::load(model, metadata::TEXT_EMBEDDING)?;
            tokenizer_json = tokenize::read(&meta.tokenizer_path)?;
            let tokenizer = tokenize::Tokenizer::from_json(&tokenizer_json, meta.max_length)?;
            loaded = (meta, tokenizer);
            (&loaded.0, &loaded.1)
        }
    };
    let ids: Vec<Vec<u32>> = texts.iter().map(|text| tokenizer.encode(text)).collect();

    // One compute per text: int8 models like all-MiniLM-L6-v2 quantise their
    // activations dynamically over the whole input, so in a padded batch each
    // text's embedding would depend on the other texts of the request.
    let mut embeddings = Vec::with_capacity(ids.len());
    let mut dimensions = 0;
    for text_ids in &ids {
        let batch = batch::Batch::new(std::slice::from_ref(text_ids), tokenizer.pad_id());
        let dims = [dim(batch.batch)?, dim(batch.seq)?];
        // Feed the inputs the model declares, so a model without token_type_ids
        // (DistilBERT-like) works too.
        let inputs = meta
            .inputs
            .iter()
            .map(|name| {
                batch.input(name).map(|values| nn::Input::i64(name, &dims, values)).ok_or_else(|| {
                    ApiError::internal(format!(
                        "model {model:?} takes an input {name:?}; this function provides only input_ids, attention_mask and token_type_ids"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = nn::infer_f32(model, inputs, &meta.output)?;
        dimensions =
            embedding_size(&output.dims, batch.batch, output.values.len()).ok_or_else(|| {
                ApiError::internal(format!(
                    "output {:?} has dimensions {:?} ({} values), expected [1, N]",
                    meta.output,
                    output.dims,
                    output.values.len(),
                ))
            })?;
        embeddings.push(output.values);
    }
    let answer = Embeddings {
        model,
        dimensions,
        embeddings: embeddings.iter().map(Vec::as_slice).collect(),
        tokens: ids.iter().map(Vec::len).collect(),
    };
    serde_json::to_vec(&answer)
        .map_err(|e| ApiError::internal(format!("cannot serialise the response: {e}")))
}

fn dim(n: usize) -> Result<u32, ApiError> {
    u32::try_from(n).map_err(|_| ApiError::internal(format!("tensor dimension {n} is too large")))
}

/// The length of one embedding when `dims` is `[batch, N]` with N > 0 and the
/// data holds exactly that many values.
fn embedding_size(dims: &[u32], batch: usize, values: usize) -> Option<usize> {
    match *dims {
        [rows, n]
            if rows as usize == batch && n > 0 && batch.checked_mul(n as usize) == Some(values) =>
        {
            Some(n as usize)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_size_checks_the_output_shape() {
        assert_eq!(embedding_size(&[2, 384], 2, 768), Some(384));
        assert_eq!(embedding_size(&[1, 384], 2, 384), None);
        assert_eq!(embedding_size(&[2, 384], 2, 767), None);
        assert_eq!(embedding_size(&[2, 3, 384], 2, 2304), None);
        assert_eq!(embedding_size(&[2, 0], 2, 0), None);
    }
}
