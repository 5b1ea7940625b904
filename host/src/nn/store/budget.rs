//! Loading a model within the memory budget: one load at a time, measured,
//! after unloading the least recently used models no request holds.

use std::sync::Arc;

use super::entry::{EVICTED, LoadPlan, VersionState};
use super::memory::resident_bytes;
use super::{ModelStore, Unavailable};
use crate::nn::runner::release_freed_memory;
use crate::nn::{LoadedModel, ModelError, ServedModel};

/// Why a load did not happen.
pub(super) enum LoadError {
    NoRoom(Unavailable),
    Model(ModelError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::NoRoom(e) => e.fmt(f),
            LoadError::Model(e) => e.fmt(f),
        }
    }
}

impl ModelStore {
    /// Loads one version, one load at a time, within the budget: making
    /// room first by unloading idle models (when `evict`), measuring what it
    /// costs, and making room again if it cost more than its estimate.
    pub(super) fn load(&self, plan: &LoadPlan, evict: bool) -> Result<Arc<ServedModel>, LoadError> {
        let _one_at_a_time = self.load_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.make_room(&plan.model, plan.estimate, evict, None)?;
        let before = resident_bytes();
        let loaded = LoadedModel::load_with(
            &plan.model,
            &plan.dir,
            (*plan.config).clone(),
            self.options.force,
            self.options.choices.as_ref(),
        )
        .map_err(|error| {
            self.metrics.model_load_failed(&plan.model);
            LoadError::Model(error)
        })?;
        // ONNX Runtime builds its extra sessions after loading: they count.
        loaded.settle();
        let grown = match (before, resident_bytes()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => 0,
        };
        // Memory freed earlier and reused is not growth, but the model holds
        // at least its weights.
        let cost = grown.max(plan.file_bytes);
        let served = Arc::new(ServedModel::new(
            loaded,
            self.charges.charge(cost),
            plan.stats.clone(),
            self.options.bounds,
            &self.metrics,
        ));
        self.metrics.model_load(
            &served.name,
            &served.version,
            &served.backend.to_string(),
            served.load_time,
            cost,
        );
        tracing::info!(
            model = %served.name,
            backend = %served.backend,
            version = %served.version,
            load_ms = served.load_time.as_millis() as u64,
            resident_mib = cost >> 20,
            "model loaded"
        );
        if evict && let Err(error) = self.make_room(&plan.model, 0, true, Some(&served)) {
            tracing::warn!(model = %plan.model, "loaded past the memory budget: {error}");
        }
        Ok(served)
    }

    /// Unloads the least recently used idle models (never `keep`, never one
    /// a request holds) until `need` more bytes fit the budget.
    fn make_room(
        &self,
        model: &str,
        need: u64,
        evict: bool,
        keep: Option<&Arc<ServedModel>>,
    ) -> Result<(), LoadError> {
        let Some(budget) = self.options.budget else {
            return Ok(());
        };
        loop {
            let used = self.charges.total();
            if used.saturating_add(need) <= budget {
                return Ok(());
            }
            let no_room = || {
                LoadError::NoRoom(Unavailable::NoRoom {
                    model: model.to_string(),
                    need,
                    used,
                    budget,
                })
            };
            if !evict {
                return Err(no_room());
            }
            let victim = {
                let mut state = self.state();
                let oldest = state
                    .models
                    .values_mut()
                    .flat_map(|m| m.versions.iter_mut())
                    .filter(|v| match (&v.state, keep) {
                        // Only the store holds it: no request does.
                        (VersionState::Ready(m), keep) => {
                            Arc::strong_count(m) == 1 && !keep.is_some_and(|k| Arc::ptr_eq(k, m))
                        }
                        _ => false,
                    })
                    .min_by_key(|v| v.last_used);
                oldest.map(|v| std::mem::replace(&mut v.state, VersionState::Idle(EVICTED)))
            };
            let Some(VersionState::Ready(victim)) = victim else {
                return Err(no_room());
            };
            tracing::info!(
                model = %victim.name,
                version = %victim.version,
                resident_mib = victim.resident_bytes() >> 20,
                "evicted: least recently used, to make room for {model}"
            );
            self.metrics
                .model_unload(&victim.name, &victim.version, "evicted");
            drop(victim);
            release_freed_memory();
        }
    }
}
