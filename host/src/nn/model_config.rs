//! `models/<name>/model.toml`: what a model is (format, file, inputs and outputs)
//! and which backend should run it. Functions read the same file for their own
//! sections (`[preprocess]`, `labels`), which the host keeps but does not interpret.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ModelError;
use super::tensor::ElementType;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub description: Option<String>,
    pub format: ModelFormat,
    /// The weights, relative to the model's directory.
    pub file: PathBuf,
    #[serde(default)]
    pub backend: BackendChoice,
    /// Class labels, one per line (for functions).
    #[serde(default)]
    pub labels: Option<PathBuf>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// How a function prepares its input; opaque to the host.
    #[serde(default)]
    pub preprocess: Option<toml::Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    Onnx,
}

/// The backend a model asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The fastest backend available on this machine.
    #[default]
    Auto,
    Onnxruntime,
    Tract,
}

/// A named tensor of the model's interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ElementType,
    /// Dimensions; `-1` marks a dynamic one.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// The shape with every dimension known, if it has no dynamic one.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect()
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
            .collect();
        write!(f, "{} {} [{}]", self.name, self.ty, dims.join(", "))
    }
}

impl ModelConfig {
    /// Reads and checks `dir/model.toml`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let config: ModelConfig = toml::from_str(&text).map_err(|e| ModelError::Config {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        config
            .check()
            .map_err(|problem| ModelError::Config { path, problem })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err("a model needs at least one [[inputs]] and one [[outputs]]".into());
        }
        for t in self.inputs.iter().chain(&self.outputs) {
            if t.shape.iter().any(|&d| d == 0 || d < -1) {
                return Err(format!(
                    "tensor {:?}: dimensions must be positive, or -1 for a dynamic one",
                    t.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_bad_shapes() {
        let text = r#"
format = "onnx"
file = "model.onnx"
backend = "tract"
[[inputs]]
name = "input"
type = "f32"
shape = [-1, 3, 224, 224]
[[outputs]]
name = "logits"
type = "f32"
shape = [-1, 1000]
[preprocess]
anything = "goes"
"#;
        let c: ModelConfig = toml::from_str(text).unwrap();
        assert_eq!(c.backend, BackendChoice::Tract);
        assert_eq!(c.inputs[0].concrete_shape(), None);
        assert_eq!(c.inputs[0].to_string(), "input f32 [?, 3, 224, 224]");
        let bad: ModelConfig = toml::from_str(&text.replace("[-1, 1000]", "[0, 1000]")).unwrap();
        assert!(bad.check().is_err());
        assert!(toml::from_str::<ModelConfig>(&text.replace("backend", "backnd")).is_err());
    }
}
