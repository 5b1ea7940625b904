//! What this function needs to know about a model, read from its `model.toml`
//! (mounted read-only at `/models/<model>/`): see [`image_prep::ClassifierSpec`].

use std::path::PathBuf;

use image_prep::ClassifierSpec;
use wasi_infer_guest::ApiError;

pub struct ModelMetadata {
    dir: PathBuf,
    pub spec: ClassifierSpec,
}

impl ModelMetadata {
    pub fn load(model: &str) -> Result<Self, ApiError> {
        let wasi_infer_guest::ModelToml { dir, path, text } =
            wasi_infer_guest::read_model_toml(model)?;
        let spec = ClassifierSpec::parse(model, &path.display().to_string(), &text)
            .map_err(crate::api_error)?;
        Ok(Self { dir, spec })
    }

    /// The text of the labels file (one class per line); empty when the model
    /// has none.
    pub fn labels(&self) -> Result<String, ApiError> {
        let Some(file) = &self.spec.labels_file else {
            return Ok(String::new());
        };
        let path = self.dir.join(file);
        std::fs::read_to_string(&path)
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))
    }
}
