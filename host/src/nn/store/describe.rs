//! What the store tells functions about a model without loading it: its
//! description (for the Open Inference Protocol's metadata and model
//! configuration), its versions' inference statistics, and its labels.

use std::io::Read;
use std::sync::Arc;

use super::entry::{ModelEntry, VersionEntry};
use super::{ModelDescription, ModelStore};
use crate::nn::InputBounds;
use crate::nn::model_config::ModelConfig;
use crate::nn::stats::StatsSnapshot;

/// A labels file larger than this is refused rather than read whole into
/// a request's answer: ImageNet's 1000 labels are 21 kB.
const MAX_LABELS_BYTES: u64 = 4 << 20;

impl ModelStore {
    /// What `name` is (at `version`, else its newest ready version, else its
    /// newest), without loading it. `None` for no such model or version.
    pub fn describe(&self, name: &str, version: Option<&str>) -> Option<ModelDescription> {
        let state = self.state();
        let entry = state.models.get(name)?;
        let versions = entry.versions.iter().map(|v| v.name.clone()).collect();
        let chosen = match version {
            Some(wanted) => Some(entry.versions.iter().find(|v| v.name == wanted)?),
            None => None,
        };
        let ready = match chosen {
            Some(v) => v.ready(),
            None => entry.versions.iter().rev().find_map(VersionEntry::ready),
        };
        if let Some(model) = ready {
            return Some(ModelDescription {
                name: name.to_string(),
                versions,
                platform: model.backend.to_string(),
                description: model.description.clone(),
                interface: model.interface.clone(),
                max_batch_size: model.max_batch_size,
                labels_file: labels_file(&model.config),
                layout: layout(&model.config),
            });
        }
        let config = match chosen {
            Some(v) => v.config.as_ref().ok(),
            None => newest_config(entry),
        };
        let platform = match (self.options.force, config) {
            (Some(kind), _) => kind.to_string(),
            (None, Some(config)) => config.backend.to_string(),
            (None, None) => "auto".into(),
        };
        let interface = config.map(|c| c.declared_interface()).unwrap_or_default();
        let max_batch_size = config.map_or(0, |config| {
            InputBounds::new(name, &interface, config, self.options.bounds)
                .max_batch_size(&interface.outputs)
        });
        Some(ModelDescription {
            name: name.to_string(),
            versions,
            platform,
            description: config.and_then(|c| c.description.clone()),
            max_batch_size,
            labels_file: config.and_then(|c| labels_file(c)),
            layout: config.and_then(|c| layout(c)),
            interface,
        })
    }

    /// The inference statistics of `name`'s versions (all of them, or
    /// `version`), ascending; `None` for no such model or version.
    pub fn statistics(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Option<Vec<(String, StatsSnapshot)>> {
        let state = self.state();
        let entry = state.models.get(name)?;
        let stats: Vec<_> = entry
            .versions
            .iter()
            .filter(|v| version.is_none_or(|wanted| v.name == wanted))
            .map(|v| (v.name.clone(), v.stats.snapshot()))
            .collect();
        (version.is_none() || !stats.is_empty()).then_some(stats)
    }

    /// The class labels of `name` (at `version`, else its newest), one per
    /// line of its `model.toml`'s `labels` file: `Ok(None)` when it names
    /// none, an error naming the file when it cannot be read. `None` for no
    /// such model or version.
    pub fn labels(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Option<Result<Option<Vec<String>>, String>> {
        // The path is taken under the lock, the file read outside it.
        let path = {
            let state = self.state();
            let entry = state.models.get(name)?;
            let (dir, config) = match version {
                Some(wanted) => {
                    let v = entry.versions.iter().find(|v| v.name == wanted)?;
                    (v.dir.clone(), v.config.as_ref().ok().cloned())
                }
                None => match entry.versions.iter().rev().find(|v| v.config.is_ok()) {
                    Some(v) => (v.dir.clone(), v.config.as_ref().ok().cloned()),
                    None => return Some(Ok(None)),
                },
            };
            match config.and_then(|c| c.labels.clone()) {
                Some(file) => dir.join(file),
                None => return Some(Ok(None)),
            }
        };
        Some(read_labels(&path).map(Some))
    }
}

fn newest_config(entry: &ModelEntry) -> Option<&Arc<ModelConfig>> {
    entry
        .versions
        .iter()
        .rev()
        .find_map(|v| v.config.as_ref().ok())
}

fn labels_file(config: &ModelConfig) -> Option<String> {
    let file = config.labels.as_ref()?;
    Some(file.file_name()?.to_string_lossy().into_owned())
}

fn layout(config: &ModelConfig) -> Option<String> {
    let layout = config.preprocess.as_ref()?.get("layout")?.as_str()?;
    Some(layout.to_string())
}

fn read_labels(path: &std::path::Path) -> Result<Vec<String>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_LABELS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if text.len() as u64 > MAX_LABELS_BYTES {
        return Err(format!(
            "{shown} is larger than {} MiB",
            MAX_LABELS_BYTES >> 20
        ));
    }
    Ok(text.lines().map(|l| l.trim_end().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_lines_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "cat\r\ndog  \nbig bird\n").unwrap();
        assert_eq!(read_labels(&path).unwrap(), ["cat", "dog", "big bird"]);
        let missing = dir.path().join("nope.txt");
        let e = read_labels(&missing).unwrap_err();
        assert!(e.contains("nope.txt"), "{e}");
    }
}
