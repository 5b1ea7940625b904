//! What this function needs to know about a model, read from its `model.toml`
//! (mounted read-only at `/models/<model>/`): see [`image_prep::ClassifierSpec`].
//!
//! A pre-initialised component (see [`prepare`]) starts with each model's
//! metadata and labels already parsed and read; any other model is read from
//! `/models` when a request names it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image_prep::ClassifierSpec;
use wasi_infer_guest::{ApiError, nn};

pub struct ModelMetadata {
    dir: PathBuf,
    pub spec: ClassifierSpec,
    /// The labels, when they were read in advance.
    labels: Option<String>,
}

/// Models prepared by the pre-initialiser.
static PREPARED: Mutex<BTreeMap<String, Arc<ModelMetadata>>> = Mutex::new(BTreeMap::new());

impl ModelMetadata {
    /// The model's metadata: prepared in advance, or read now.
    pub fn get(model: &str) -> Result<Arc<Self>, ApiError> {
        let prepared = PREPARED.lock().ok().and_then(|p| p.get(model).cloned());
        match prepared {
            Some(meta) => Ok(meta),
            None => Self::load(model).map(Arc::new),
        }
    }

    fn load(model: &str) -> Result<Self, ApiError> {
        let wasi_infer_guest::ModelToml { dir, path, text } =
            wasi_infer_guest::read_model_toml(model)?;
        let spec = ClassifierSpec::parse(model, &path.display().to_string(), &text)
            .map_err(crate::api_error)?;
        Ok(Self {
            dir,
            spec,
            labels: None,
        })
    }

    /// The text of the labels file (one class per line); empty when the model
    /// has none.
    pub fn labels(&self) -> Result<Cow<'_, str>, ApiError> {
        if let Some(labels) = &self.labels {
            return Ok(Cow::Borrowed(labels));
        }
        let Some(file) = &self.spec.labels_file else {
            return Ok(Cow::Borrowed(""));
        };
        let path = self.dir.join(file);
        std::fs::read_to_string(&path)
            .map(Cow::Owned)
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))
    }
}

/// For the pre-initialiser: reads the model's metadata and labels and
/// prepares the model to run. Answers whether the model is an image
/// classifier (others are not this function's).
pub fn prepare(model: &str) -> Result<bool, ApiError> {
    let mut meta = match ModelMetadata::load(model) {
        Ok(meta) => meta,
        // Not a classifier (a text model): not this function's.
        Err(e) if e.status == 400 => return Ok(false),
        Err(e) => return Err(e),
    };
    meta.labels = Some(meta.labels()?.into_owned());
    nn::prepare(model)?;
    if let Ok(mut prepared) = PREPARED.lock() {
        prepared.insert(model.to_string(), Arc::new(meta));
    }
    Ok(true)
}
