//! wasi-nn for functions: the model repository, loaded once at start-up and
//! shared by every request, and the backends that run the models.
//!
//! - [`model_config`] reads `models/<name>/model.toml`.
//! - [`backend`] chooses backends and glues them to `wasmtime-wasi-nn`.
//! - [`onnxruntime`] and [`tract`], one file per backend, are where a tensor meets a backend.
//! - [`ModelRegistry`] holds the loaded models; [`ComponentModels`] is the subset one
//!   component may load.

pub mod backend;
pub mod model_config;
pub mod onnxruntime;
pub mod tensor;
pub mod tract;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime_wasi_nn::{Graph, GraphRegistry};

pub use backend::BackendKind;
use model_config::{BackendChoice, ModelConfig, TensorSpec};
use tensor::ElementType;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {problem}")]
    Config { path: PathBuf, problem: String },
    #[error("model {model}: backend {backend}: {message}")]
    Backend {
        model: String,
        backend: BackendKind,
        message: String,
    },
    #[error("model {model} asks for backend {backend}, which is not available: {reason}")]
    Unavailable {
        model: String,
        backend: BackendKind,
        reason: String,
    },
}

/// A model ready to serve.
pub struct LoadedModel {
    pub name: String,
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub backend: BackendKind,
    pub load_time: Duration,
    graph: Graph,
}

/// Every model of a repository directory (`models/<name>/model.toml`), loaded.
#[derive(Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, LoadedModel>,
}

impl ModelRegistry {
    /// Loads the models in `dir` whose names are in `names`. `force` runs all of
    /// them on one backend instead of the one each `model.toml` asks for.
    pub fn load<'a>(
        dir: &Path,
        names: impl IntoIterator<Item = &'a str>,
        force: Option<BackendKind>,
    ) -> Result<Self, ModelError> {
        let mut models = BTreeMap::new();
        for name in names {
            if models.contains_key(name) {
                continue;
            }
            let model_dir = dir.join(name);
            let started = Instant::now();
            let config = ModelConfig::load(&model_dir)?;
            let backend = choose_backend(name, config.backend, force)?;
            let runner = backend::load(backend, &model_dir, &config)?;
            let model = LoadedModel {
                name: name.to_string(),
                dir: model_dir,
                config,
                backend,
                load_time: started.elapsed(),
                graph: backend::graph(runner),
            };
            tracing::info!(
                model = name,
                %backend,
                load_ms = model.load_time.as_millis() as u64,
                "model loaded"
            );
            models.insert(name.to_string(), model);
        }
        Ok(Self { models })
    }

    pub fn get(&self, name: &str) -> Option<&LoadedModel> {
        self.models.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedModel> {
        self.models.values()
    }

    /// The models a component may load by name. Unknown names are the caller's
    /// to reject (the manifest check does).
    pub fn for_component(&self, allowed: &[String]) -> ComponentModels {
        ComponentModels(Arc::new(
            allowed
                .iter()
                .filter_map(|name| Some((name.clone(), self.models.get(name)?.graph.clone())))
                .collect(),
        ))
    }
}

fn choose_backend(
    model: &str,
    asked: BackendChoice,
    force: Option<BackendKind>,
) -> Result<BackendKind, ModelError> {
    let wanted = match (force, asked) {
        (Some(kind), _) => kind,
        (None, BackendChoice::Onnxruntime) => BackendKind::OnnxRuntime,
        (None, BackendChoice::Tract) => BackendKind::Tract,
        (None, BackendChoice::Auto) => {
            return Ok(match onnxruntime::library() {
                Ok(_) => BackendKind::OnnxRuntime,
                Err(reason) => {
                    tracing::info!(model, %reason, "ONNX Runtime not available, using tract");
                    BackendKind::Tract
                }
            });
        }
    };
    if wanted == BackendKind::OnnxRuntime {
        onnxruntime::library().map_err(|reason| ModelError::Unavailable {
            model: model.to_string(),
            backend: wanted,
            reason,
        })?;
    }
    Ok(wanted)
}

/// Checks a model's actual inputs or outputs against what `model.toml` declares.
fn check_interface(
    declared: &[TensorSpec],
    actual: &[(String, Option<ElementType>)],
    what: &str,
) -> Result<(), String> {
    for spec in declared {
        match actual.iter().find(|(name, _)| *name == spec.name) {
            None => {
                let names: Vec<&str> = actual.iter().map(|(n, _)| n.as_str()).collect();
                return Err(format!(
                    "model.toml declares {what} {:?}, but the model's {what}s are {names:?}",
                    spec.name
                ));
            }
            Some((_, Some(ty))) if *ty != spec.ty => {
                return Err(format!(
                    "model.toml declares {what} {:?} as {}, but the model has {ty}",
                    spec.name, spec.ty
                ));
            }
            _ => {}
        }
    }
    if declared.len() != actual.len() {
        return Err(format!(
            "model.toml declares {} {what}s, but the model has {}",
            declared.len(),
            actual.len()
        ));
    }
    Ok(())
}

/// The wasi-nn registry one component sees: only the models in its
/// `ai_models`. Shared by all of the component's instances.
#[derive(Clone, Default)]
pub struct ComponentModels(Arc<HashMap<String, Graph>>);

impl GraphRegistry for ComponentModels {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        // Graphs are shared, never replaced by a guest.
        let _ = name;
        None
    }
}
