//! What this function needs to know about a model, read from its `model.toml`
//! (mounted read-only at `/models/<model>/`): the tensor names, how to prepare an
//! image, and where the labels are. The host reads the same file for the rest.

use serde::Deserialize;
use std::path::PathBuf;
use wasi_infer_guest::ApiError;

pub struct ModelMetadata {
    dir: PathBuf,
    pub input_name: String,
    pub output_name: String,
    pub preprocess: Preprocess,
    labels_file: Option<String>,
}

#[derive(Deserialize)]
struct ModelToml {
    labels: Option<String>,
    inputs: Vec<TensorName>,
    outputs: Vec<TensorName>,
    preprocess: Option<Preprocess>,
}

#[derive(Deserialize)]
struct TensorName {
    name: String,
}

/// How an image becomes the model's input tensor.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Resize so that the shorter side has this many pixels (bilinear)...
    pub resize_shorter_side: u32,
    /// ...then take the centre `[width, height]`.
    pub crop: [u32; 2],
    /// The model's colour channels: `rgb` (default) or `gray` (one channel, luma).
    #[serde(default)]
    pub color: Color,
    /// Per-channel (R, G, B, or the one gray channel) `(pixel - mean) / std`,
    /// on pixel values 0..=255.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub layout: Layout,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    #[default]
    Rgb,
    Gray,
}

impl Color {
    pub fn channels(self) -> usize {
        match self {
            Color::Rgb => 3,
            Color::Gray => 1,
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

impl ModelMetadata {
    pub fn load(model: &str) -> Result<Self, ApiError> {
        let wasi_infer_guest::ModelToml { dir, path, text } =
            wasi_infer_guest::read_model_toml(model)?;
        let parsed: ModelToml = toml::from_str(&text)
            .map_err(|e| ApiError::internal(format!("invalid {}: {e}", path.display())))?;
        let preprocess = parsed.preprocess.ok_or_else(|| {
            ApiError::bad_request(format!(
                "model {model:?} is not an image classifier (its model.toml has no [preprocess])"
            ))
        })?;
        let first = |list: Vec<TensorName>, what: &str| {
            list.into_iter()
                .next()
                .map(|t| t.name)
                .ok_or_else(|| ApiError::internal(format!("{} lists no {what}", path.display())))
        };
        Ok(Self {
            input_name: first(parsed.inputs, "inputs")?,
            output_name: first(parsed.outputs, "outputs")?,
            preprocess,
            labels_file: parsed.labels,
            dir,
        })
    }

    /// One label per class, in class-index order; empty when the model has none.
    pub fn labels(&self) -> Result<Vec<String>, ApiError> {
        let Some(file) = &self.labels_file else {
            return Ok(Vec::new());
        };
        let path = self.dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?;
        // A line may list synonyms ("tabby, tabby cat"): the first one is the label.
        Ok(text
            .lines()
            .map(|line| line.split(',').next().unwrap_or("").trim().to_string())
            .collect())
    }
}
