//! The models a server serves, and their lives: which versions of each are
//! served ([`scan`]), when each is loaded (at start-up, or on its first
//! request), what each costs in memory and the budget that bounds them all
//! ([`memory`]), and reloading a model while it serves (a new or changed
//! version loads beside the one serving, requests switch to it at one
//! moment, and the old one is dropped when its last request is done).
//!
//! - A request names a model (the newest version ready, else the newest
//!   served) or a model at a version. One that finds it loading waits for
//!   that load; one that finds it not loaded starts the load, and every
//!   request that comes meanwhile waits for the same one.
//! - Loads happen one at a time: the process's resident memory before and
//!   after one is what that model costs, and what is charged to the budget
//!   (`--model-memory-budget`) for as long as the model lives.
//! - When a load would go over the budget, the least recently used model
//!   that no request holds is unloaded first; when every model is held, the
//!   request gets [`Unavailable::NoRoom`] (a 503) and nothing is unloaded.

mod budget;
mod describe;
mod entry;
pub mod memory;
mod reload;
pub mod scan;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::auto_choice::AutoChoices;
use super::bounds::BoundDefaults;
use super::model_config::LoadPolicy;
use super::repository::ModelRepository;
use super::{BackendKind, ModelError, ModelInterface, ServedModel};
use crate::metrics::Metrics;
use budget::LoadError;
use entry::{
    LoadOutcome, LoadPlan, ModelEntry, NO_ROOM_AT_START, NOT_LOADED, State, UNLOADED, VersionState,
};
use memory::{Charges, mib};

/// How the store loads models.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Run every model on this backend instead of the one its `model.toml`
    /// asks for.
    pub force: Option<BackendKind>,
    /// When a model whose `model.toml` does not say is loaded (`--load`).
    pub default_load: LoadPolicy,
    /// Resident bytes all loaded models may hold together
    /// (`--model-memory-budget`); `None`: no bound.
    pub budget: Option<u64>,
    /// The server's bounds on inputs, for models that set none.
    pub bounds: BoundDefaults,
    /// Load every model at start-up, those that say `load = "on-demand"`
    /// too (`wasi-infer check`).
    pub everything_at_start: bool,
    /// Where `backend = "auto"`'s choices are remembered (the cache
    /// directory); `None`: the trials run at every load.
    pub choices: Option<AutoChoices>,
}

/// Why a request cannot have the model it asks for.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("no model named {0:?}")]
    NoModel(String),
    #[error("model {model:?} has no version {version:?} served: its versions are {served}")]
    NoVersion {
        model: String,
        version: String,
        served: String,
    },
    #[error("model {0:?} was unloaded through the repository API; load it again to serve it")]
    Unloaded(String),
    #[error("model {model:?} version {version} cannot be loaded: {reason}")]
    Failed {
        model: String,
        version: String,
        reason: String,
    },
    /// No version to name: its folder holds none that can be read, or a
    /// load of its newest went away without a word.
    #[error("model {model:?} cannot be served: {reason}")]
    Unservable { model: String, reason: String },
    #[error(
        "model {model:?} needs about {} but the model memory budget ({}) is held by models \
         with requests running ({} in use); try again shortly",
        mib(*need), mib(*budget), mib(*used)
    )]
    NoRoom {
        model: String,
        need: u64,
        used: u64,
        budget: u64,
    },
}

impl Unavailable {
    /// Whether the model or version does not exist (a 404), rather than
    /// existing but not being servable now (a 503).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NoModel(_) | Self::NoVersion { .. })
    }
}

/// A model as the repository index reports it: one row per version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    /// `READY`, `LOADING` or `UNAVAILABLE`, as Triton names them.
    pub state: &'static str,
    /// Why it is not ready; empty when it is.
    pub reason: String,
}

/// What the store says of a model without loading it.
pub struct ModelDescription {
    pub name: String,
    /// The versions served, ascending.
    pub versions: Vec<String>,
    /// The backend running its newest loaded version; else what its
    /// `model.toml` asks for ("auto" included).
    pub platform: String,
    pub description: Option<String>,
    /// Read from the newest loaded version; else as its `model.toml` (or its
    /// ONNX graph) declares it.
    pub interface: ModelInterface,
    /// Triton's `max_batch_size` (see [`crate::nn::InputBounds::max_batch_size`]).
    pub max_batch_size: u64,
    /// Its `model.toml`'s `labels` file, by its name in the model's folder.
    pub labels_file: Option<String>,
    /// Its `model.toml`'s `[preprocess] layout` ("nchw", "nhwc"), if any.
    pub layout: Option<String>,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Versions loaded (new or changed).
    pub loaded: Vec<String>,
    /// Versions no longer served.
    pub retired: Vec<String>,
}

pub struct ModelStore {
    repository: ModelRepository,
    options: StoreOptions,
    state: Mutex<State>,
    /// One load at a time: what the resident memory grows by during a load
    /// is that model's, and a small machine loads one model faster than two.
    load_lock: Mutex<()>,
    /// One reload at a time (repository API calls, the watcher).
    reload_lock: Mutex<()>,
    charges: Charges,
    /// Ticks for least-recently-used order.
    clock: AtomicU64,
    metrics: Arc<Metrics>,
}

impl ModelStore {
    /// The models of `repository`, none loaded yet.
    pub fn open(
        repository: ModelRepository,
        options: StoreOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ModelError> {
        let mut models = BTreeMap::new();
        // A repository that does not exist holds no models: fine for an
        // application that loads none.
        let names = match &repository {
            ModelRepository::Dir(root) if !root.exists() => Vec::new(),
            _ => repository.names()?,
        };
        for name in names {
            let Some(dir) = repository.model_dir(&name) else {
                continue;
            };
            let scanned = scan::scan(&dir);
            models.insert(name, ModelEntry::open(dir, scanned, options.default_load));
        }
        Ok(Arc::new(Self {
            repository,
            options,
            state: Mutex::new(State { models }),
            load_lock: Mutex::new(()),
            reload_lock: Mutex::new(()),
            charges: Charges::default(),
            clock: AtomicU64::new(1),
            metrics,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change to the state is complete before its lock is let go:
        // a panic elsewhere while it was held leaves it consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn repository(&self) -> &ModelRepository {
        &self.repository
    }

    /// Every model's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.state().models.keys().cloned().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.state().models.contains_key(name)
    }

    /// Whether `name` loads at start-up.
    pub fn loads_at_start(&self, name: &str) -> bool {
        self.state()
            .models
            .get(name)
            .is_some_and(|m| m.load == LoadPolicy::Startup || self.options.everything_at_start)
    }

    /// The versions loaded now, by model and version.
    pub fn loaded(&self) -> Vec<Arc<ServedModel>> {
        let state = self.state();
        state
            .models
            .values()
            .flat_map(|m| m.versions.iter().filter_map(|v| v.ready().cloned()))
            .collect()
    }

    /// Loads, one after the other, the served versions of those of `names`
    /// that load at start-up, telling `progress` of each. A model that fails
    /// is an error; with a budget, one that does not fit is left to load on
    /// demand.
    pub fn load_at_start<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        mut progress: impl FnMut(StartStep<'_>),
    ) -> Result<(), ModelError> {
        for name in names {
            let plans: Vec<LoadPlan> = {
                let state = self.state();
                let Some(entry) = state.models.get(name) else {
                    continue;
                };
                if entry.load != LoadPolicy::Startup && !self.options.everything_at_start {
                    continue;
                }
                if let Some(problem) = &entry.problem {
                    return Err(ModelError::Config {
                        path: entry.dir.clone(),
                        problem: problem.clone(),
                    });
                }
                entry
                    .versions
                    .iter()
                    .map(|v| {
                        v.plan(name).map_err(|e| ModelError::Config {
                            path: v.dir.clone(),
                            problem: match e {
                                Unavailable::Failed { reason, .. } => reason,
                                other => other.to_string(),
                            },
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            for plan in plans {
                progress(StartStep::Loading(name));
                match self.load(&plan, false) {
                    Ok(model) => {
                        progress(StartStep::Loaded(&model));
                        self.settle(name, &plan.version, Ok(model));
                    }
                    Err(LoadError::NoRoom(unavailable)) => {
                        tracing::info!(model = name, version = %plan.version, "{unavailable}: left to load on demand");
                        self.set_idle(name, &plan.version, NO_ROOM_AT_START);
                    }
                    Err(LoadError::Model(error)) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// The model `name` at `version` (or its newest, see [`ModelEntry::pick`]),
    /// loaded: now if it is, else when the load this request starts or joins
    /// is done.
    pub async fn acquire(
        self: &Arc<Self>,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<ServedModel>, Unavailable> {
        let mut waiting = {
            let mut state = self.state();
            let entry = state
                .models
                .get_mut(name)
                .ok_or_else(|| Unavailable::NoModel(name.to_string()))?;
            if entry.unloaded {
                return Err(Unavailable::Unloaded(name.to_string()));
            }
            let index = entry.pick(name, version)?;
            let tick = self.clock.fetch_add(1, Ordering::Relaxed);
            let entry_version = &mut entry.versions[index];
            match &entry_version.state {
                VersionState::Ready(model) => {
                    entry_version.last_used = tick;
                    return Ok(model.clone());
                }
                VersionState::Failed(reason) => {
                    return Err(Unavailable::Failed {
                        model: name.to_string(),
                        version: entry_version.name.clone(),
                        reason: reason.clone(),
                    });
                }
                VersionState::Loading(receiver) => receiver.clone(),
                VersionState::Idle(_) => {
                    let plan = entry_version.plan(name)?;
                    let (sender, receiver) = tokio::sync::watch::channel(None);
                    entry_version.state = VersionState::Loading(receiver.clone());
                    let store = self.clone();
                    // Not this request's: the load goes on if it gives up
                    // (its deadline, its client gone), for the next one.
                    tokio::task::spawn_blocking(move || {
                        let outcome = store.load_on_demand(&plan);
                        let _ = sender.send(Some(outcome));
                    });
                    receiver
                }
            }
        };
        let started = Instant::now();
        let outcome = match waiting.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            // The loader went away without a word: it panicked.
            Err(_) => None,
        };
        self.metrics
            .model_load_waited(name, started.elapsed().as_secs_f64());
        outcome.unwrap_or_else(|| {
            let reason = "its load failed unexpectedly (the server log has the details)".into();
            Err(match version {
                Some(version) => Unavailable::Failed {
                    model: name.to_string(),
                    version: version.to_string(),
                    reason,
                },
                None => Unavailable::Unservable {
                    model: name.to_string(),
                    reason,
                },
            })
        })
    }

    /// Loads a version a request asked for, and records the outcome.
    fn load_on_demand(&self, plan: &LoadPlan) -> LoadOutcome {
        let outcome = match self.load(plan, true) {
            Ok(model) => Ok(model),
            Err(LoadError::NoRoom(unavailable)) => Err(unavailable),
            Err(LoadError::Model(error)) => Err(Unavailable::Failed {
                model: plan.model.clone(),
                version: plan.version.clone(),
                reason: error.to_string(),
            }),
        };
        match &outcome {
            Err(unavailable @ Unavailable::NoRoom { .. }) => {
                tracing::warn!(model = %plan.model, version = %plan.version, "{unavailable}");
                self.set_idle(&plan.model, &plan.version, NOT_LOADED);
            }
            _ => self.settle(&plan.model, &plan.version, outcome.clone()),
        }
        outcome
    }

    /// Records a load's outcome in the version's entry (if it is still
    /// served: a reload may have retired it meanwhile).
    fn settle(&self, model: &str, version: &str, outcome: LoadOutcome) {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        let Some(entry) = state
            .models
            .get_mut(model)
            .and_then(|m| m.versions.iter_mut().find(|v| v.name == version))
        else {
            return;
        };
        let new = match outcome {
            Ok(loaded) => {
                entry.measured = Some(loaded.resident_bytes());
                entry.last_used = tick;
                VersionState::Ready(loaded)
            }
            Err(error) => {
                let reason = match error {
                    Unavailable::Failed { reason, .. } => reason,
                    other => other.to_string(),
                };
                VersionState::Failed(reason)
            }
        };
        let replaced = std::mem::replace(&mut entry.state, new);
        // A load this one replaces (a changed version's) is dropped outside
        // the lock: freeing a model takes a while.
        drop(state);
        if let VersionState::Ready(_) = &replaced {
            // The same version, loaded anew: its gauges are the new load's.
            self.metrics.model_replaced(model);
        }
        drop(replaced);
    }

    fn set_idle(&self, model: &str, version: &str, reason: &'static str) {
        let mut state = self.state();
        if let Some(entry) = state
            .models
            .get_mut(model)
            .and_then(|m| m.versions.iter_mut().find(|v| v.name == version))
        {
            entry.state = VersionState::Idle(reason);
        }
    }

    /// The models of the repository as the index reports them.
    pub fn index(&self) -> Vec<IndexEntry> {
        let state = self.state();
        let mut rows = Vec::new();
        for (name, entry) in &state.models {
            if let Some(problem) = &entry.problem {
                rows.push(IndexEntry {
                    name: name.clone(),
                    version: String::new(),
                    state: "UNAVAILABLE",
                    reason: problem.clone(),
                });
                continue;
            }
            for version in &entry.versions {
                let (state, reason) = match &version.state {
                    _ if entry.unloaded => ("UNAVAILABLE", UNLOADED.to_string()),
                    VersionState::Ready(_) => ("READY", String::new()),
                    VersionState::Loading(_) => ("LOADING", String::new()),
                    VersionState::Idle(reason) => ("UNAVAILABLE", reason.to_string()),
                    VersionState::Failed(reason) => ("UNAVAILABLE", reason.clone()),
                };
                rows.push(IndexEntry {
                    name: name.clone(),
                    version: version.name.clone(),
                    state,
                    reason,
                });
            }
        }
        rows
    }

    /// Whether `name` (at `version`, or any version) serves a request now,
    /// or would load for it: not unloaded, not failed.
    pub fn is_ready(&self, name: &str, version: Option<&str>) -> bool {
        let state = self.state();
        let Some(entry) = state.models.get(name) else {
            return false;
        };
        if entry.unloaded {
            return false;
        }
        entry
            .versions
            .iter()
            .filter(|v| version.is_none_or(|wanted| v.name == wanted))
            .any(|v| !matches!(v.state, VersionState::Failed(_)))
    }
}

/// A step of [`ModelStore::load_at_start`].
pub enum StartStep<'a> {
    Loading(&'a str),
    Loaded(&'a ServedModel),
}

/// Why a repository API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no model named {0:?} in the repository")]
    NoModel(String),
    #[error("model {model:?}: {}", problems.join("; "))]
    Failed {
        model: String,
        problems: Vec<String>,
    },
}
