//! `backend = "auto"` remembered: the backend the trials chose for a model,
//! kept in the cache directory so that a restart (or a model loaded again on
//! demand) loads only that backend instead of timing them all again.
//!
//! A choice holds for the same model files, the same machine (its CPU model
//! and features, its core count), the same native libraries and the same
//! host: it is keyed by a digest of all of them, so any change means new
//! trials. The file names only a backend, never code: a stale or planted
//! one can make a model slower, not run anything else, and a backend it
//! names that cannot load the model is tried no further than the trials.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BackendKind;
use super::model_config::ModelConfig;
use super::{onnxruntime, openvino};

/// The folder of remembered choices.
#[derive(Debug, Clone)]
pub struct AutoChoices {
    dir: PathBuf,
}

impl AutoChoices {
    /// Choices kept in `dir` (created when the first is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// What the choice for the model in `dir` depends on, as a file name;
    /// `None` when a file cannot be read (then nothing is remembered).
    pub fn key(&self, dir: &Path, config: &ModelConfig) -> Option<String> {
        let mut digest = Sha256::new();
        digest.update(env!("CARGO_PKG_VERSION"));
        // The model: its files, and how model.toml asks the backends to run it.
        for file in [Some(&config.file), config.openvino.file.as_ref()]
            .into_iter()
            .flatten()
        {
            digest.update(std::fs::read(dir.join(file)).ok()?);
            // An OpenVINO IR's weights are beside its graph.
            let weights = dir.join(file).with_extension("bin");
            if file.extension().is_some_and(|e| e == "xml") && weights.is_file() {
                digest.update(std::fs::read(weights).ok()?);
            }
        }
        digest.update(format!("{:?}{:?}", config.onnxruntime, config.openvino));
        // The machine.
        digest.update(cpu_identity());
        // The native libraries, by where they are, their size and age.
        for path in [onnxruntime::library(), openvino::library()]
            .into_iter()
            .flatten()
        {
            digest.update(path.as_os_str().as_encoded_bytes());
            if let Ok(meta) = std::fs::metadata(path) {
                digest.update(meta.len().to_le_bytes());
                if let Ok(modified) = meta.modified() {
                    digest.update(format!("{modified:?}"));
                }
            }
        }
        let hash = digest.finalize();
        Some(hash.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }

    /// The backend chosen before under `key`, if any.
    pub fn get(&self, key: &str) -> Option<BackendKind> {
        let text = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let name = text.lines().next()?.trim();
        BackendKind::ALL.into_iter().find(|k| k.to_string() == name)
    }

    /// Remembers `kind` under `key`, with the trials that chose it (for a
    /// person reading the file). Failing to write costs the next start its
    /// trials, nothing more: it is logged.
    pub fn put(&self, key: &str, kind: BackendKind, trials: &str) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(key);
            let staging = self.dir.join(format!(".{key}.{}", std::process::id()));
            std::fs::write(&staging, format!("{kind}\n{trials}\n"))?;
            // Whole or not at all, for a server starting beside this one.
            std::fs::rename(&staging, &path)
        };
        if let Err(e) = write() {
            tracing::warn!(dir = %self.dir.display(), "cannot remember backend auto's choice: {e}");
        }
    }
}

/// The CPU as far as speed goes: its model, features and core count.
fn cpu_identity() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let first = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .to_string()
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{}|{}|{cores}", first("model name"), first("flags"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_is_kept_by_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let choices = AutoChoices::new(dir.path().join("choices"));
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fashion-mnist-cnn");
        let config = ModelConfig::load(&model).unwrap();
        let key = choices.key(&model, &config).unwrap();
        assert_eq!(choices.key(&model, &config).unwrap(), key, "stable");
        assert_eq!(choices.get(&key), None);
        choices.put(
            &key,
            BackendKind::OpenVino,
            "openvino 1.00 ms, onnxruntime 2.00 ms",
        );
        assert_eq!(choices.get(&key), Some(BackendKind::OpenVino));
        // Other settings: another key.
        let mut other = config.clone();
        other.onnxruntime.sessions = Some(3);
        assert_ne!(choices.key(&model, &other).unwrap(), key);
        // A file that names no backend is no choice.
        std::fs::write(dir.path().join("choices").join(&key), "cuda\n").unwrap();
        assert_eq!(choices.get(&key), None);
    }
}
