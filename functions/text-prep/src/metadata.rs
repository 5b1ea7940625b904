//! What a text function needs to know about a model, read from its `model.toml`
//! (mounted read-only at `/models/<model>/`): which inputs it takes and the
//! `[preprocess]` table (tokenizer, maximum length, output to return). The host
//! reads the same file for the rest.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use wasi_infer_guest::ApiError;

/// The `task` of sentence embedders in `model.toml`.
pub const TEXT_EMBEDDING: &str = "text-embedding";

/// The shortest useful `max_length`: [CLS], one token, [SEP].
const MIN_MAX_LENGTH: usize = 3;

#[derive(Debug)]
pub struct ModelMetadata {
    /// The model's input names, in model.toml order.
    pub inputs: Vec<String>,
    /// The tokenizer.json file, resolved against the model directory.
    pub tokenizer_path: PathBuf,
    pub max_length: usize,
    /// The output the function answers with (an embedder's: one embedding
    /// per row).
    pub output: String,
}

#[derive(Deserialize)]
struct ModelToml {
    /// What the model does, when its `model.toml` says.
    task: Option<String>,
    inputs: Vec<TensorName>,
    /// Kept as a table so that a model with another kind of `[preprocess]`
    /// (an image classifier) gets a clear 400 rather than a parse error.
    preprocess: Option<toml::Table>,
}

#[derive(Deserialize)]
struct TensorName {
    name: String,
}

/// The `[preprocess]` table of a text model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextPreprocess {
    /// A HuggingFace tokenizer.json, relative to the model directory.
    tokenizer: String,
    /// Longer texts are truncated to this many tokens, special tokens included.
    max_length: usize,
    output: String,
}

impl ModelMetadata {
    /// Reads the model's `model.toml`, for a function that serves models of
    /// `task` (e.g. `"text-embedding"`): a model that declares another task,
    /// or has no tokenizer, is the request's mistake (400).
    pub fn load(model: &str, task: &str) -> Result<Self, ApiError> {
        let file = wasi_infer_guest::read_model_toml(model)?;
        Self::parse(model, task, &file.dir, &file.path, &file.text)
    }

    fn parse(
        model: &str,
        task: &str,
        dir: &Path,
        path: &Path,
        text: &str,
    ) -> Result<Self, ApiError> {
        let invalid = |e: &dyn std::fmt::Display| {
            ApiError::internal(format!("invalid {}: {e}", path.display()))
        };
        let parsed: ModelToml = toml::from_str(text).map_err(|e| invalid(&e))?;
        let not_text_model = || {
            ApiError::bad_request(format!(
                "model {model:?} is not a {task} model (its model.toml has no [preprocess] tokenizer)"
            ))
        };
        if parsed.task.as_deref().is_some_and(|t| t != task) {
            return Err(not_text_model());
        }
        let table = parsed.preprocess.ok_or_else(not_text_model)?;
        if !table.contains_key("tokenizer") {
            return Err(not_text_model());
        }
        let preprocess: TextPreprocess = table.try_into().map_err(|e| invalid(&e))?;
        if preprocess.max_length < MIN_MAX_LENGTH {
            return Err(invalid(&format!(
                "[preprocess] max_length must be at least {MIN_MAX_LENGTH}, got {}",
                preprocess.max_length
            )));
        }
        Ok(Self {
            inputs: parsed.inputs.into_iter().map(|t| t.name).collect(),
            tokenizer_path: dir.join(&preprocess.tokenizer),
            max_length: preprocess.max_length,
            output: preprocess.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelMetadata, ApiError> {
        let dir = Path::new("/models/m");
        ModelMetadata::parse("m", "text-embedding", dir, &dir.join("model.toml"), text)
    }

    #[test]
    fn reads_the_repository_model() {
        let text = include_str!("../../../models/all-minilm-l6-v2/model.toml");
        let meta = parse(text).unwrap();
        assert_eq!(
            meta.inputs,
            ["input_ids", "attention_mask", "token_type_ids"]
        );
        assert_eq!(meta.tokenizer_path, Path::new("/models/m/tokenizer.json"));
        assert_eq!(meta.max_length, 256);
        assert_eq!(meta.output, "sentence_embedding");
    }

    #[test]
    fn an_image_model_is_a_bad_request() {
        let image_model = "inputs = [{ name = \"input\" }]\n[preprocess]\ncrop = [224, 224]\n";
        assert_eq!(parse(image_model).unwrap_err().status, 400);
        assert_eq!(parse("inputs = []").unwrap_err().status, 400);
    }

    #[test]
    fn a_broken_preprocess_is_an_internal_error() {
        let base = "inputs = [{ name = \"input_ids\" }]\n[preprocess]\ntokenizer = \"t.json\"\n";
        let missing_output = format!("{base}max_length = 8\n");
        assert_eq!(parse(&missing_output).unwrap_err().status, 500);
        let too_short = format!("{base}max_length = 2\noutput = \"o\"\n");
        assert_eq!(parse(&too_short).unwrap_err().status, 500);
        assert_eq!(parse("not toml [").unwrap_err().status, 500);
    }
}
