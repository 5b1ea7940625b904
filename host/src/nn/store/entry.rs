//! What the store keeps of each model and version, and which version a
//! request gets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::Unavailable;
use super::scan::{self, ScannedModel, ScannedVersion};
use crate::nn::ServedModel;
use crate::nn::model_config::{LoadPolicy, ModelConfig};
use crate::nn::stats::InferenceStats;

#[derive(Default)]
pub(super) struct State {
    pub(super) models: BTreeMap<String, ModelEntry>,
}

pub(super) struct ModelEntry {
    pub(super) dir: PathBuf,
    pub(super) load: LoadPolicy,
    /// The versions served, ascending.
    pub(super) versions: Vec<VersionEntry>,
    /// Unloaded through the repository API: refused until loaded again.
    pub(super) unloaded: bool,
    /// Why the model's folder could not be read, at the last look.
    pub(super) problem: Option<String>,
    /// Of its folder's files when it was last read (see [`watch`]).
    pub(super) fingerprint: u64,
}

pub(super) struct VersionEntry {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) config: Result<Arc<ModelConfig>, String>,
    pub(super) fingerprint: u64,
    pub(super) file_bytes: u64,
    /// What it cost when it was last loaded: the estimate for the next load.
    pub(super) measured: Option<u64>,
    pub(super) last_used: u64,
    pub(super) state: VersionState,
    /// Its inference statistics: kept while its files stay the same, so an
    /// eviction does not reset them.
    pub(super) stats: Arc<InferenceStats>,
}

pub(super) type LoadOutcome = Result<Arc<ServedModel>, Unavailable>;
pub(super) type LoadSender = tokio::sync::watch::Sender<Option<LoadOutcome>>;

/// How versions sort: by number (a flat model's one version is alone).
pub(super) fn version_order(name: &str) -> (u64, String) {
    (name.parse().unwrap_or(0), name.to_string())
}

pub(super) enum VersionState {
    /// Not loaded; the reason is for the index.
    Idle(&'static str),
    Loading(tokio::sync::watch::Receiver<Option<LoadOutcome>>),
    Ready(Arc<ServedModel>),
    Failed(String),
}

/// A version to load, as read from its entry.
pub(super) struct LoadPlan {
    pub(super) model: String,
    pub(super) version: String,
    pub(super) dir: PathBuf,
    pub(super) config: Arc<ModelConfig>,
    pub(super) estimate: u64,
    pub(super) file_bytes: u64,
    pub(super) stats: Arc<InferenceStats>,
}

impl VersionEntry {
    pub(super) fn new(scanned: ScannedVersion) -> Self {
        Self {
            name: scanned.name,
            dir: scanned.dir,
            config: scanned.config.map(Arc::new),
            fingerprint: scanned.fingerprint,
            file_bytes: scanned.file_bytes,
            measured: None,
            last_used: 0,
            state: VersionState::Idle(NOT_LOADED),
            stats: Arc::default(),
        }
    }

    pub(super) fn ready(&self) -> Option<&Arc<ServedModel>> {
        match &self.state {
            VersionState::Ready(model) => Some(model),
            _ => None,
        }
    }

    pub(super) fn plan(&self, model: &str) -> Result<LoadPlan, Unavailable> {
        let config = self.config.clone().map_err(|reason| Unavailable::Failed {
            model: model.to_string(),
            version: self.name.clone(),
            reason,
        })?;
        Ok(LoadPlan {
            model: model.to_string(),
            version: self.name.clone(),
            dir: self.dir.clone(),
            config,
            estimate: self.measured.unwrap_or(self.file_bytes),
            file_bytes: self.file_bytes,
            stats: self.stats.clone(),
        })
    }
}

pub(super) const NOT_LOADED: &str = "not loaded yet: it loads on its first request";
pub(super) const EVICTED: &str =
    "unloaded to make room under the memory budget: it loads again on its next request";
pub(super) const NO_ROOM_AT_START: &str =
    "did not fit the memory budget at start-up: it loads on its first request";
pub(super) const UNLOADED: &str = "unloaded through the repository API";

impl ModelEntry {
    pub(super) fn open(
        dir: PathBuf,
        scanned: Result<ScannedModel, String>,
        default: LoadPolicy,
    ) -> Self {
        match scanned {
            Ok(model) => Self {
                dir,
                fingerprint: model.fingerprint,
                load: model.load.unwrap_or(default),
                versions: model.versions.into_iter().map(VersionEntry::new).collect(),
                unloaded: false,
                problem: None,
            },
            Err(problem) => Self {
                fingerprint: scan::folder_fingerprint(&dir),
                dir,
                load: default,
                versions: Vec::new(),
                unloaded: false,
                problem: Some(problem),
            },
        }
    }

    pub(super) fn served(&self) -> String {
        let names: Vec<String> = self
            .versions
            .iter()
            .map(|v| format!("{:?}", v.name))
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// The version a request for `version` gets: that one; or, for none,
    /// the newest ready, else the newest that has not failed.
    pub(super) fn pick(&self, model: &str, version: Option<&str>) -> Result<usize, Unavailable> {
        if let Some(version) = version {
            return self
                .versions
                .iter()
                .position(|v| v.name == version)
                .ok_or_else(|| Unavailable::NoVersion {
                    model: model.to_string(),
                    version: version.to_string(),
                    served: self.served(),
                });
        }
        let newest_ready = self.versions.iter().rposition(|v| v.ready().is_some());
        let newest_loadable = self
            .versions
            .iter()
            .rposition(|v| !matches!(v.state, VersionState::Failed(_)));
        newest_ready
            .or(newest_loadable)
            .or(self.versions.len().checked_sub(1))
            .ok_or_else(|| Unavailable::Unservable {
                model: model.to_string(),
                reason: self
                    .problem
                    .clone()
                    .unwrap_or_else(|| "it has no version to serve".into()),
            })
    }
}
