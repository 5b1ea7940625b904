//! wasi-nn for functions: the model repository, its models loaded once and
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
//! - [`store`] holds the models served: their versions, when each is loaded
//!   (at start-up or on demand), the memory budget, reloads; [`LoadedModel`]
//!   loads one and picks its backend; [`ComponentModels`] is what one
//!   component may load.
//! - [`wit`] is wasi-nn as functions call it, within the limits of an instance;
//!   [`metadata`] is what functions may learn of their models
//!   (`wasi-infer:models/metadata`).

pub mod auto_choice;
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
pub mod stats;
pub mod store;
pub mod tensor;
pub mod threads;
pub mod tract;
pub mod wit;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use crate::metrics::Metrics;
use auto_choice::AutoChoices;
pub use backend::BackendKind;
pub use bounds::{BoundDefaults, InputBounds};
use cancel::Cancel;
pub use interface::ModelInterface;
use model_config::{BackendChoice, ModelConfig};
pub use repository::ModelRepository;
pub use runner::Runner;
use stats::InferenceStats;
use store::memory::Charge;
pub use store::{ModelStore, StoreOptions, Unavailable};
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
        let config = repository::load_config(dir)?;
        Self::load_with(name, dir, config, force, None)
    }

    /// Loads the model `config` describes, its files in `dir`; for
    /// `backend = "auto"`, the backend `choices` remembers for it, if any.
    pub fn load_with(
        name: &str,
        dir: &Path,
        config: ModelConfig,
        force: Option<BackendKind>,
        choices: Option<&AutoChoices>,
    ) -> Result<Self, ModelError> {
        let started = Instant::now();
        let (backend, runner) = select_backend(name, dir, &config, force, choices)?;
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

    /// Waits for the work the backend still does after loading.
    pub fn settle(&self) {
        self.runner.settle();
    }

    /// How large the inputs of a request may be, with the server's `defaults`.
    pub fn bounds(&self, defaults: BoundDefaults) -> InputBounds {
        InputBounds::new(&self.name, self.interface(), &self.config, defaults)
    }
}

/// Loads a model on the backend forced or asked for; for `auto`, see [`race`].
fn select_backend(
    name: &str,
    dir: &Path,
    config: &ModelConfig,
    force: Option<BackendKind>,
    choices: Option<&AutoChoices>,
) -> Result<(BackendKind, Arc<dyn Runner>), ModelError> {
    let wanted = match (force, config.backend) {
        (Some(kind), _) => kind,
        (None, BackendChoice::Onnxruntime) => BackendKind::OnnxRuntime,
        (None, BackendChoice::Openvino) => BackendKind::OpenVino,
        (None, BackendChoice::Tract) => BackendKind::Tract,
        (None, BackendChoice::Auto) => {
            let key = choices.and_then(|c| Some((c, c.key(dir, config)?)));
            if let Some((choices, key)) = &key
                && let Some(kind) = choices.get(key)
                && kind.reads(config.format)
                && kind.availability().is_ok()
            {
                match backend::load(kind, name, dir, config) {
                    Ok(runner) => {
                        tracing::info!(model = name, backend = %kind, "auto: the backend its trials chose before (remembered in the cache)");
                        return Ok((kind, runner));
                    }
                    Err(e) => tracing::warn!(
                        model = name,
                        "auto: the backend chosen before fails now ({e}); timing them again"
                    ),
                }
            }
            let (kind, runner, trials) = race(name, dir, config)?;
            if let (Some((choices, key)), Some(trials)) = (&key, trials) {
                choices.put(key, kind, &trials);
            }
            return Ok((kind, runner));
        }
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
/// A backend picked by `auto`, the model loaded on it, and the trials that
/// chose it when there were any (two backends or more).
type Raced = (BackendKind, Arc<dyn Runner>, Option<String>);

fn race(name: &str, dir: &Path, config: &ModelConfig) -> Result<Raced, ModelError> {
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
            Ok((kind, runner, None))
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
            let (time, kind, runner) = timed.remove(0);
            let trials = trials.join(", ");
            tracing::info!(model = name, backend = %kind, %trials, "auto: fastest backend chosen");
            // A choice made by a failed trial is not one to remember.
            Ok((kind, runner, time.is_some().then_some(trials)))
        }
    }
}

/// Zero-filled inputs of the declared shapes, for timing a model (dynamic
/// dimensions: a batch of 1, 32 elsewhere, e.g. 32 tokens).
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

/// A loaded version of a model as functions see it: what it says it is,
/// how large its inputs may be, what runs it and where its compute times go.
/// Requests hold it while they use it: a version unloaded (evicted, retired
/// by a reload) lives on until the last of them is done.
pub struct ServedModel {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub backend: BackendKind,
    /// Its inputs and outputs, with the input dimensions `model.toml` pins.
    pub interface: ModelInterface,
    pub bounds: InputBounds,
    /// Triton's `max_batch_size`: the largest batch when the first dimension
    /// of every input and output is a batch, else 0 (see
    /// [`InputBounds::max_batch_size`]).
    pub max_batch_size: u64,
    /// Counted where `compute` meets it (see [`stats`]).
    pub stats: Arc<InferenceStats>,
    runner: Arc<dyn Runner>,
    pub compute_seconds: Histogram,
    pub config: ModelConfig,
    pub load_time: Duration,
    /// Its resident memory, charged to the store's budget while it lives.
    charge: Charge,
}

impl ServedModel {
    fn new(
        model: LoadedModel,
        charge: Charge,
        stats: Arc<InferenceStats>,
        defaults: BoundDefaults,
        metrics: &Metrics,
    ) -> Self {
        let bounds = model.bounds(defaults);
        let interface = model
            .interface()
            .with_pins(&model.config.inputs, &model.config.outputs);
        Self {
            max_batch_size: bounds.max_batch_size(&interface.outputs),
            stats,
            compute_seconds: metrics.compute(&model.name, &model.backend.to_string()),
            name: model.name,
            version: model.config.version.clone(),
            description: model.config.description.clone(),
            backend: model.backend,
            interface,
            bounds,
            runner: model.runner,
            config: model.config,
            load_time: model.load_time,
            charge,
        }
    }

    /// Its inputs and outputs as the model itself states them (dynamic
    /// dimensions left dynamic).
    pub fn own_interface(&self) -> &ModelInterface {
        self.runner.interface()
    }

    /// What loading it grew the process's resident memory by (at least its
    /// files' size).
    pub fn resident_bytes(&self) -> u64 {
        self.charge.bytes()
    }
}

/// Which models a component may load: those of its `ai_models`, or, for
/// the built-in application, every model of the repository.
#[derive(Clone, Debug)]
pub enum AllowedModels {
    Named(Arc<BTreeSet<String>>),
    Any,
}

impl AllowedModels {
    pub fn named<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        Self::Named(Arc::new(names.into_iter().cloned().collect()))
    }

    pub fn allows(&self, name: &str) -> bool {
        match self {
            Self::Named(names) => names.contains(name),
            Self::Any => true,
        }
    }
}

/// A model name as `load-by-name` takes it: `NAME`, or `NAME@VERSION` for
/// one version (`@` is in no model name: see [`repository::is_model_name`]).
pub fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (name, None),
    }
}

/// The models one component may load by name, and the threads that run
/// them. Shared by all of the component's instances.
#[derive(Clone)]
pub struct ComponentModels {
    store: Arc<ModelStore>,
    allowed: AllowedModels,
    threads: Arc<InferenceThreads>,
}

impl ComponentModels {
    pub fn new(
        store: Arc<ModelStore>,
        allowed: AllowedModels,
        threads: Arc<InferenceThreads>,
    ) -> Self {
        Self {
            store,
            allowed,
            threads,
        }
    }

    /// The models it may load, in name order.
    pub fn names(&self) -> Vec<String> {
        match &self.allowed {
            AllowedModels::Named(names) => names
                .iter()
                .filter(|n| self.store.contains(n))
                .cloned()
                .collect(),
            AllowedModels::Any => self.store.names(),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        self.allowed.allows(name)
    }

    pub fn store(&self) -> &Arc<ModelStore> {
        &self.store
    }

    /// The model `name` (`NAME` or `NAME@VERSION`), loaded, if the
    /// component may load it.
    pub async fn acquire(&self, name: &str) -> Result<Arc<ServedModel>, Unavailable> {
        let (model, version) = split_version(name);
        if !self.allowed.allows(model) {
            return Err(Unavailable::NoModel(model.to_string()));
        }
        self.store.acquire(model, version).await
    }

    /// Runs one inference of `model` on an inference thread (see
    /// [`threads`]), within its input bounds; `stop` (or dropping the
    /// future) cancels it. Says how long it waited for a thread and ran.
    pub async fn run(
        &self,
        model: &ServedModel,
        inputs: Vec<NamedTensor>,
        stop: &Cancel,
    ) -> threads::Timed {
        if let Err(refused) = model.bounds.check(&inputs) {
            return threads::Timed::unrun(refused);
        }
        let started = Instant::now();
        let timed = self.threads.run(model.runner.clone(), inputs, stop).await;
        model
            .compute_seconds
            .observe(started.elapsed().as_secs_f64());
        timed
    }
}
