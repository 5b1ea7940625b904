//! wasi-nn for functions: the model repository, loaded once at start-up and
//! shared by every request, and the backends that run the models.
//!
//! - [`repository`] finds models by name (a folder of model folders, or one);
//!   [`model_config`] reads `models/<name>/model.toml`; [`interface`] is what a
//!   model says its inputs and outputs are ([`onnx_graph`] reads it from an
//!   ONNX file alone); [`bounds`] how large a request's inputs may be.
//! - [`runner`] is what a loaded model is to the host; [`backend`] loads a
//!   model on a backend: [`onnxruntime`], [`openvino`] and [`tract`], one file
//!   per backend, are where a tensor meets a backend.
//! - [`threads`] runs functions' inferences on threads of their own, which
//!   [`cancel`] stops when no one waits for them any more.
//! - [`ModelRegistry`] loads the models and picks their backends; [`ComponentModels`]
//!   is the subset one component may load.
//! - [`wit`] is wasi-nn as functions call it, within the limits of an instance;
//!   [`metadata`] is what functions may learn of their models
//!   (`wasi-infer:models/metadata`).

pub mod backend;
pub mod bounds;
pub mod cancel;
pub mod interface;
pub mod metadata;
pub mod model_config;
pub mod onnx_graph;
pub mod onnxruntime;
pub mod openvino;
mod pool;
pub mod repository;
pub mod runner;
pub mod tensor;
pub mod threads;
pub mod tract;
pub mod wit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use crate::metrics::Metrics;
pub use backend::BackendKind;
pub use bounds::{BoundDefaults, InputBounds};
use cancel::Cancel;
pub use interface::ModelInterface;
use model_config::{BackendChoice, ModelConfig};
pub use repository::ModelRepository;
pub use runner::Runner;
use threads::InferenceThreads;

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
    #[error("model {model}: no backend can run it: {reasons}")]
    NoBackend { model: String, reasons: String },
}

/// A model ready to serve.
pub struct LoadedModel {
    pub name: String,
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub backend: BackendKind,
    pub load_time: Duration,
    runner: Arc<dyn Runner>,
}

impl LoadedModel {
    /// Loads the model in `dir` (named `name`) on the backend `force`, or the
    /// one its `model.toml` asks for.
    pub fn load(name: &str, dir: &Path, force: Option<BackendKind>) -> Result<Self, ModelError> {
        let started = Instant::now();
        let config = repository::load_config(dir)?;
        let (backend, runner) = select_backend(name, dir, &config, force)?;
        Ok(LoadedModel {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            config,
            backend,
            load_time: started.elapsed(),
            runner,
        })
    }

    /// The model's inputs and outputs, as the model itself states them.
    pub fn interface(&self) -> &ModelInterface {
        self.runner.interface()
    }

    /// Runs the model in-process, blocking the calling thread (benchmarks,
    /// tools): without the input bounds or a deadline, which guard what
    /// functions send through wasi-nn.
    pub fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        self.runner.run(inputs, &Cancel::new())
    }

    /// How large the inputs of a request may be, with the server's `defaults`.
    pub fn bounds(&self, defaults: BoundDefaults) -> InputBounds {
        InputBounds::new(&self.name, self.interface(), &self.config, defaults)
    }
}

/// Where [`ModelRegistry::load_each`] is.
pub enum ModelProgress<'a> {
    Loading(&'a str),
    Loaded(&'a LoadedModel),
}

/// Every model of a repository directory (`models/<name>/model.toml`), loaded.
#[derive(Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, LoadedModel>,
}

impl ModelRegistry {
    /// Loads the models of `repository` whose names are in `names`. `force`
    /// runs all of them on one backend instead of the one each `model.toml`
    /// asks for.
    pub fn load<'a>(
        repository: &ModelRepository,
        names: impl IntoIterator<Item = &'a str>,
        force: Option<BackendKind>,
    ) -> Result<Self, ModelError> {
        // One model at a time: each backend already builds a model's sessions
        // in parallel, and loading models side by side on a small machine was
        // slower than one after the other (and would disturb auto's trials).
        Self::load_each(repository, names, force, |progress| {
            if let ModelProgress::Loaded(model) = progress {
                tracing::info!(
                    model = %model.name,
                    backend = %model.backend,
                    load_ms = model.load_time.as_millis() as u64,
                    "model loaded"
                );
            }
        })
    }

    /// [`ModelRegistry::load`], telling `progress` of each model as it starts
    /// and as it is loaded.
    pub fn load_each<'a>(
        repository: &ModelRepository,
        names: impl IntoIterator<Item = &'a str>,
        force: Option<BackendKind>,
        mut progress: impl FnMut(ModelProgress<'_>),
    ) -> Result<Self, ModelError> {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        let mut models = BTreeMap::new();
        for name in names {
            progress(ModelProgress::Loading(name));
            let dir = repository
                .model_dir(name)
                .ok_or_else(|| ModelError::Config {
                    path: repository.path().to_path_buf(),
                    problem: format!("no model {name:?} in the repository"),
                })?;
            let model = LoadedModel::load(name, &dir, force)?;
            progress(ModelProgress::Loaded(&model));
            models.insert(model.name.clone(), model);
        }
        Ok(Self { models })
    }

    pub fn get(&self, name: &str) -> Option<&LoadedModel> {
        self.models.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedModel> {
        self.models.values()
    }

    /// The models a component may load by name, held to the input bounds
    /// `defaults` completes, run on `threads`, and recording their compute
    /// times in `metrics`. Unknown names are the caller's to reject (the
    /// manifest check does).
    pub fn for_component(
        &self,
        allowed: &[String],
        defaults: BoundDefaults,
        threads: &Arc<InferenceThreads>,
        metrics: &Metrics,
    ) -> ComponentModels {
        let mut names: Vec<&String> = allowed.iter().collect();
        names.sort_unstable();
        names.dedup();
        let models = names
            .into_iter()
            .filter_map(|name| {
                let model = self.models.get(name)?;
                let bounds = model.bounds(defaults);
                let interface = model
                    .interface()
                    .with_pins(&model.config.inputs, &model.config.outputs);
                Some(Arc::new(ServedModel {
                    name: name.clone(),
                    version: model.config.version.clone(),
                    description: model.config.description.clone(),
                    backend: model.backend,
                    interface,
                    bounds,
                    runner: model.runner.clone(),
                    compute_seconds: metrics.compute(name, &model.backend.to_string()),
                }))
            })
            .collect();
        ComponentModels {
            models,
            threads: threads.clone(),
        }
    }
}

/// Loads a model on the backend forced or asked for; for `auto`, see [`race`].
fn select_backend(
    name: &str,
    dir: &Path,
    config: &ModelConfig,
    force: Option<BackendKind>,
) -> Result<(BackendKind, Arc<dyn Runner>), ModelError> {
    let wanted = match (force, config.backend) {
        (Some(kind), _) => kind,
        (None, BackendChoice::Onnxruntime) => BackendKind::OnnxRuntime,
        (None, BackendChoice::Openvino) => BackendKind::OpenVino,
        (None, BackendChoice::Tract) => BackendKind::Tract,
        (None, BackendChoice::Auto) => return race(name, dir, config),
    };
    wanted
        .availability()
        .map_err(|reason| ModelError::Unavailable {
            model: name.to_string(),
            backend: wanted,
            reason,
        })?;
    Ok((wanted, backend::load(wanted, name, dir, config)?))
}

/// `backend = "auto"`: times the model on each native backend available
/// (ONNX Runtime, OpenVINO) and keeps the fastest. tract is the fallback when
/// no native backend can run the model: it was the slowest on every model we
/// measured (2-70x), and optimising a large model for it takes seconds of
/// start-up.
fn race(
    name: &str,
    dir: &Path,
    config: &ModelConfig,
) -> Result<(BackendKind, Arc<dyn Runner>), ModelError> {
    let mut candidates = Vec::new();
    let mut reasons = Vec::new();
    let mut try_load = |kind: BackendKind, candidates: &mut Vec<_>| {
        if !kind.reads(config.format) {
            return;
        }
        match kind.availability() {
            Err(reason) => {
                tracing::info!(model = name, backend = %kind, %reason, "backend not available");
                reasons.push(format!("{kind}: {reason}"));
            }
            Ok(()) => match backend::load(kind, name, dir, config) {
                Ok(runner) => candidates.push((kind, runner)),
                Err(e) => {
                    tracing::warn!(model = name, error = %e, "backend cannot run this model");
                    reasons.push(e.to_string());
                }
            },
        }
    };
    try_load(BackendKind::OnnxRuntime, &mut candidates);
    try_load(BackendKind::OpenVino, &mut candidates);
    if candidates.is_empty() {
        try_load(BackendKind::Tract, &mut candidates);
    }
    match candidates.len() {
        0 => Err(ModelError::NoBackend {
            model: name.to_string(),
            reasons: reasons.join("; "),
        }),
        1 => {
            let (kind, runner) = candidates.remove(0);
            tracing::info!(model = name, backend = %kind, "auto: the only backend available for this model");
            Ok((kind, runner))
        }
        _ => {
            // A backend whose trial fails is kept, last: the trial's zero
            // inputs may be what it refuses, not the requests to come.
            let inputs = trial_inputs(config);
            for (_, runner) in &candidates {
                runner.settle();
            }
            let mut timed: Vec<(Option<Duration>, BackendKind, Arc<dyn Runner>)> = candidates
                .into_iter()
                .map(|(kind, runner)| {
                    let time = time_inference(runner.as_ref(), &inputs)
                        .inspect_err(|e| {
                            tracing::warn!(model = name, backend = %kind, error = %e, "trial inference failed")
                        })
                        .ok();
                    (time, kind, runner)
                })
                .collect();
            timed.sort_by_key(|(time, kind, _)| (time.unwrap_or(Duration::MAX), *kind));
            let trials: Vec<String> = timed
                .iter()
                .map(|(time, kind, _)| match time {
                    Some(time) => format!("{kind} {:.2} ms", time.as_secs_f64() * 1e3),
                    None => format!("{kind} failed"),
                })
                .collect();
            let (_, kind, runner) = timed.remove(0);
            tracing::info!(model = name, backend = %kind, trials = %trials.join(", "), "auto: fastest backend chosen");
            Ok((kind, runner))
        }
    }
}

/// Zero-filled inputs of the declared shapes, for timing a model (dynamic
/// dimensions: a batch of 1, 16 elsewhere, e.g. 16 tokens).
pub fn trial_inputs(config: &ModelConfig) -> Vec<NamedTensor> {
    config
        .inputs
        .iter()
        .map(|spec| {
            let shape = spec.trial_shape();
            let len = shape.iter().product::<usize>() * spec.ty.size();
            // model.toml's dimensions fit wasi-nn's u32 (ModelConfig::check).
            let dims = shape.iter().map(|&d| d as u32).collect();
            NamedTensor {
                name: spec.name.clone(),
                tensor: wasmtime_wasi_nn::Tensor::new(dims, spec.ty.to_wasi(), vec![0; len]),
            }
        })
        .collect()
}

/// The best of a few runs, after one to warm up.
fn time_inference(runner: &dyn Runner, inputs: &[NamedTensor]) -> Result<Duration, String> {
    const RUNS: usize = 3;
    let mut best = Duration::MAX;
    for run in 0..=RUNS {
        let started = Instant::now();
        runner
            .run(tensor::copy_named(inputs), &Cancel::new())
            .map_err(|e| e.to_string())?;
        if run > 0 {
            best = best.min(started.elapsed());
        }
    }
    Ok(best)
}

/// A loaded model as functions see it: what it says it is, how large its
/// inputs may be, what runs it and where its compute times go.
pub struct ServedModel {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub backend: BackendKind,
    /// Its inputs and outputs, with the input dimensions `model.toml` pins.
    pub interface: ModelInterface,
    pub bounds: InputBounds,
    runner: Arc<dyn Runner>,
    pub compute_seconds: Histogram,
}

/// The models one component may load by name: only those in its
/// `ai_models`, in name order, and the threads that run them. Shared by all
/// of the component's instances.
#[derive(Clone)]
pub struct ComponentModels {
    models: Arc<[Arc<ServedModel>]>,
    threads: Arc<InferenceThreads>,
}

impl ComponentModels {
    pub fn get(&self, name: &str) -> Option<&Arc<ServedModel>> {
        self.models.iter().find(|model| model.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        self.models.iter()
    }

    /// Runs one inference of `model` on an inference thread, within its
    /// input bounds; `stop` (or dropping the future) cancels it.
    pub async fn run(
        &self,
        model: &ServedModel,
        inputs: Vec<NamedTensor>,
        stop: &Cancel,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        model.bounds.check(&inputs)?;
        let started = Instant::now();
        let outcome = self.threads.run(model.runner.clone(), inputs, stop).await;
        model
            .compute_seconds
            .observe(started.elapsed().as_secs_f64());
        outcome
    }
}
