//! Changing what the store serves while it serves: reloading a model (new
//! and changed versions loaded beside those serving, retired ones dropped
//! when their last request is done), unloading one, forgetting one.

use super::budget::LoadError;
use super::entry::{LoadSender, ModelEntry, UNLOADED, VersionEntry, VersionState, version_order};
use super::scan;
use super::{ModelStore, ReloadError, Reloaded, Unavailable};
use crate::nn::ServedModel;
use crate::nn::runner::release_freed_memory;
use std::sync::Arc;

impl ModelStore {
    /// Loads `name` now, as the repository API's `load` asks: reads its
    /// folder again, loads each served version that is new or changed
    /// beside the one serving and switches requests to it, loads the others
    /// that are not loaded, and retires the versions no longer served (each
    /// dropped when its last request is done). A version that fails to load
    /// leaves the one serving in place; the error says why.
    pub fn reload(&self, name: &str) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self
            .repository
            .model_dir(name)
            .ok_or_else(|| ReloadError::NoModel(name.to_string()))?;
        let scanned = scan::scan(&dir).map_err(|problem| ReloadError::Failed {
            model: name.to_string(),
            problems: vec![problem],
        })?;
        let served: Vec<String> = scanned.versions.iter().map(|v| v.name.clone()).collect();
        // The versions to load, each with the channel of the requests that
        // wait for it (none for a changed version whose old load serves
        // meanwhile).
        let mut to_load: Vec<(String, Option<LoadSender>)> = Vec::new();
        {
            let mut state = self.state();
            let entry = state.models.entry(name.to_string()).or_insert_with(|| {
                ModelEntry::open(dir.clone(), Err(String::new()), self.options.default_load)
            });
            entry.problem = None;
            entry.fingerprint = scanned.fingerprint;
            entry.load = scanned.load.unwrap_or(self.options.default_load);
            entry.unloaded = false;
            for found in scanned.versions {
                let existing = entry.versions.iter().position(|v| v.name == found.name);
                let unchanged = existing.is_some_and(|i| {
                    entry.versions[i].fingerprint == found.fingerprint
                        && !matches!(entry.versions[i].state, VersionState::Failed(_))
                });
                match existing {
                    Some(i) if unchanged => {
                        let version = &mut entry.versions[i];
                        if matches!(version.state, VersionState::Idle(_)) {
                            let (sender, receiver) = tokio::sync::watch::channel(None);
                            version.state = VersionState::Loading(receiver);
                            to_load.push((version.name.clone(), Some(sender)));
                        }
                    }
                    Some(i) => {
                        // Changed: loaded beside the load that serves, which
                        // serves until the new one is ready.
                        let old =
                            std::mem::replace(&mut entry.versions[i], VersionEntry::new(found));
                        let version = &mut entry.versions[i];
                        match old.state {
                            VersionState::Ready(model) => {
                                version.state = VersionState::Ready(model);
                                to_load.push((version.name.clone(), None));
                            }
                            _ => {
                                let (sender, receiver) = tokio::sync::watch::channel(None);
                                version.state = VersionState::Loading(receiver);
                                to_load.push((version.name.clone(), Some(sender)));
                            }
                        }
                    }
                    None => {
                        let mut version = VersionEntry::new(found);
                        let (sender, receiver) = tokio::sync::watch::channel(None);
                        version.state = VersionState::Loading(receiver);
                        to_load.push((version.name.clone(), Some(sender)));
                        entry.versions.push(version);
                    }
                }
            }
            entry.versions.sort_by_key(|v| version_order(&v.name));
        }
        let mut report = Reloaded::default();
        let mut problems = Vec::new();
        for (version, sender) in to_load {
            let plan = {
                let state = self.state();
                state
                    .models
                    .get(name)
                    .and_then(|m| m.versions.iter().find(|v| v.name == version))
                    .map(|v| v.plan(name))
            };
            let outcome = match plan {
                None => continue,
                Some(Err(unavailable)) => Err(unavailable.to_string()),
                Some(Ok(plan)) => match self.load(&plan, true) {
                    Ok(model) => Ok(model),
                    Err(LoadError::NoRoom(e)) => Err(e.to_string()),
                    Err(LoadError::Model(e)) => Err(e.to_string()),
                },
            };
            match outcome {
                Ok(model) => {
                    self.settle(name, &version, Ok(model.clone()));
                    if let Some(sender) = sender {
                        let _ = sender.send(Some(Ok(model)));
                    }
                    report.loaded.push(version);
                }
                Err(message) => {
                    tracing::warn!(model = name, %version, "load failed: {message}");
                    let failure = Unavailable::Failed {
                        model: name.to_string(),
                        version: version.clone(),
                        reason: message.clone(),
                    };
                    self.fail_unless_serving(name, &version, message.clone());
                    if let Some(sender) = sender {
                        let _ = sender.send(Some(Err(failure)));
                    }
                    problems.push(format!("version {version}: {message}"));
                }
            }
        }
        // The versions no longer served go once the new ones are ready: when
        // one failed, those serving stay, so the model goes on answering.
        if problems.is_empty() {
            let retired: Vec<VersionEntry> = {
                let mut state = self.state();
                match state.models.get_mut(name) {
                    Some(entry) => {
                        let (kept, retired) = std::mem::take(&mut entry.versions)
                            .into_iter()
                            .partition(|v| served.contains(&v.name));
                        entry.versions = kept;
                        retired
                    }
                    None => Vec::new(),
                }
            };
            for version in retired {
                if version.ready().is_some() {
                    self.metrics.model_unload(name, &version.name, "retired");
                }
                report.retired.push(version.name);
            }
        }
        release_freed_memory();
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(ReloadError::Failed {
                model: name.to_string(),
                problems,
            })
        }
    }

    /// A version that failed to load: failed, unless an older load of it
    /// still serves (which goes on serving).
    fn fail_unless_serving(&self, model: &str, version: &str, reason: String) {
        let mut state = self.state();
        if let Some(entry) = state
            .models
            .get_mut(model)
            .and_then(|m| m.versions.iter_mut().find(|v| v.name == version))
        {
            if entry.ready().is_none() {
                entry.state = VersionState::Failed(reason);
            } else {
                // The new files failed; the old load serves. The next
                // reload tries the files again.
                entry.fingerprint = 0;
            }
        }
    }

    /// Unloads every version of `name`, as the repository API's `unload`
    /// asks: requests are refused until it is loaded again; those running
    /// finish on it, and it is dropped when the last is done.
    pub fn unload(&self, name: &str) -> Result<(), ReloadError> {
        let dropped: Vec<Arc<ServedModel>> = {
            let mut state = self.state();
            let entry = state
                .models
                .get_mut(name)
                .ok_or_else(|| ReloadError::NoModel(name.to_string()))?;
            entry.unloaded = true;
            entry
                .versions
                .iter_mut()
                .filter_map(|v| {
                    match std::mem::replace(&mut v.state, VersionState::Idle(UNLOADED)) {
                        VersionState::Ready(model) => Some(model),
                        other => {
                            v.state = other;
                            None
                        }
                    }
                })
                .collect()
        };
        for model in &dropped {
            self.metrics.model_unload(name, &model.version, "unloaded");
        }
        drop(dropped);
        release_freed_memory();
        Ok(())
    }

    /// The fingerprint of `name`'s folder when it was last read; `None`
    /// for a model the store does not have.
    pub fn fingerprint(&self, name: &str) -> Option<u64> {
        self.state().models.get(name).map(|m| m.fingerprint)
    }

    /// Forgets a model whose folder is gone: unloaded, and no longer listed.
    pub fn remove(&self, name: &str) {
        let removed = self.state().models.remove(name);
        if let Some(entry) = removed {
            for version in &entry.versions {
                if version.ready().is_some() {
                    self.metrics.model_unload(name, &version.name, "removed");
                }
            }
            drop(entry);
            release_freed_memory();
        }
    }
}
