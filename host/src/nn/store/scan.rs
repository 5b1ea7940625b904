//! What a model folder holds now: its versions and their configurations,
//! what each costs on disk, and a fingerprint of its files, by which a
//! reload (or `--watch`) tells a changed version from an unchanged one.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::nn::model_config::{LoadPolicy, ModelConfig, VersionPolicy};
use crate::nn::repository::{self, MODEL_TOML};

/// A model folder as it is on disk.
pub struct ScannedModel {
    /// `load` of its `model.toml`, if it says.
    pub load: Option<LoadPolicy>,
    /// The versions its policy serves, ascending.
    pub versions: Vec<ScannedVersion>,
    /// Of every file in the model's folder: what `--watch` compares.
    pub fingerprint: u64,
}

/// One version of a model, as it is on disk.
pub struct ScannedVersion {
    /// Its name: the version folder's, or the `version` of a flat model's
    /// `model.toml` ("1" when it says none).
    pub name: String,
    /// Its folder: the files its `model.toml` names are in it.
    pub dir: PathBuf,
    /// Its configuration, or why it has none that can be served.
    pub config: Result<ModelConfig, String>,
    /// Changes when any of its files (or the model folder's `model.toml` it
    /// shares) changes: size, modification time, or name.
    pub fingerprint: u64,
    /// Bytes of its files: the least a loaded model holds in memory, before
    /// it is loaded and measured.
    pub file_bytes: u64,
}

/// Reads the model folder `dir`.
pub fn scan(dir: &Path) -> Result<ScannedModel, String> {
    let numbers = repository::version_folders(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if numbers.is_empty() {
        // The flat layout: the folder is the model's one version.
        let config = repository::load_config(dir).map_err(|e| e.to_string());
        let name = config
            .as_ref()
            .map_or_else(|_| "1".to_string(), |c| c.version.clone());
        let load = config.as_ref().ok().and_then(|c| c.load);
        let (fingerprint, file_bytes) = fingerprint(&[dir]);
        return Ok(ScannedModel {
            fingerprint,
            load,
            versions: vec![ScannedVersion {
                name,
                dir: dir.to_path_buf(),
                config,
                fingerprint,
                file_bytes,
            }],
        });
    }
    // The model's own settings: the model folder's model.toml, or else the
    // newest version's.
    let newest = numbers[numbers.len() - 1];
    let settings = repository::load_version_config(dir, newest).ok();
    let policy = settings
        .as_ref()
        .and_then(|c| c.version_policy.clone())
        .unwrap_or_default();
    let shared = dir.join(MODEL_TOML);
    let versions = policy
        .select(&numbers)
        .into_iter()
        .map(|number| {
            let version_dir = dir.join(number.to_string());
            let config = repository::load_version_config(dir, number).map_err(|e| e.to_string());
            let (fingerprint, file_bytes) = fingerprint(&[&version_dir, &shared]);
            ScannedVersion {
                name: number.to_string(),
                dir: version_dir,
                config,
                fingerprint,
                file_bytes,
            }
        })
        .collect();
    Ok(ScannedModel {
        load: settings.and_then(|c| c.load),
        versions,
        fingerprint: folder_fingerprint(dir),
    })
}

/// Which versions of those on disk a policy serves (for messages).
pub fn describe_policy(policy: &VersionPolicy) -> String {
    match policy {
        VersionPolicy::All => "all".into(),
        VersionPolicy::Latest(n) => format!("the latest {n}"),
        VersionPolicy::Specific(v) => format!("{v:?}"),
    }
}

/// The fingerprint of every file in a model's folder.
pub fn folder_fingerprint(dir: &Path) -> u64 {
    fingerprint(&[dir]).0
}

/// The fingerprint of the files under `paths` (folders are walked; a path
/// that does not exist counts as nothing), and their bytes. A folder of a
/// flat model holds only that model, so everything in it counts.
fn fingerprint(paths: &[&Path]) -> (u64, u64) {
    let mut hasher = DefaultHasher::new();
    let mut bytes = 0u64;
    for path in paths {
        for entry in walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|entry| entry.ok())
        {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            entry.path().hash(&mut hasher);
            metadata.len().hash(&mut hasher);
            let modified = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos());
            modified.hash(&mut hasher);
            bytes = bytes.saturating_add(metadata.len());
        }
    }
    (hasher.finish(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnn() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fashion-mnist-cnn")
    }

    fn write_version(dir: &Path, number: u64) {
        let version = dir.join(number.to_string());
        std::fs::create_dir_all(&version).unwrap();
        std::fs::copy(cnn().join("model.onnx"), version.join("model.onnx")).unwrap();
    }

    #[test]
    fn a_flat_folder_is_one_version_named_by_its_model_toml() {
        let model = scan(&cnn()).unwrap();
        assert_eq!(model.versions.len(), 1);
        let version = &model.versions[0];
        assert_eq!(version.name, "1");
        assert!(version.config.is_ok());
        assert!(version.file_bytes > 100_000, "{}", version.file_bytes);
    }

    #[test]
    fn version_folders_follow_the_policy_and_fingerprints_follow_the_files() {
        let dir = tempfile::tempdir().unwrap();
        for number in [1, 2, 10] {
            write_version(dir.path(), number);
        }
        // Not versions: a leading zero, a name, a file.
        std::fs::create_dir(dir.path().join("03")).unwrap();
        std::fs::create_dir(dir.path().join("old")).unwrap();
        std::fs::write(dir.path().join("4"), "").unwrap();
        let latest = scan(dir.path()).unwrap();
        let names: Vec<&str> = latest.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["10"], "the latest one by default");
        assert_eq!(latest.versions[0].config.as_ref().unwrap().version, "10");

        let text = std::fs::read_to_string(cnn().join("model.toml")).unwrap();
        std::fs::write(
            dir.path().join(MODEL_TOML),
            format!("version_policy = {{ latest = 2 }}\nload = \"on-demand\"\n{text}"),
        )
        .unwrap();
        let two = scan(dir.path()).unwrap();
        let names: Vec<&str> = two.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["2", "10"]);
        assert_eq!(two.load, Some(LoadPolicy::OnDemand));

        let before = two.versions[0].fingerprint;
        assert_eq!(scan(dir.path()).unwrap().versions[0].fingerprint, before);
        std::fs::write(dir.path().join("2/notes.txt"), "changed").unwrap();
        assert_ne!(scan(dir.path()).unwrap().versions[0].fingerprint, before);
    }

    #[test]
    fn a_broken_version_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        write_version(dir.path(), 1);
        std::fs::create_dir(dir.path().join("2")).unwrap();
        std::fs::write(dir.path().join("2/model.onnx"), "not a model").unwrap();
        let text = std::fs::read_to_string(cnn().join("model.toml")).unwrap();
        std::fs::write(
            dir.path().join(MODEL_TOML),
            format!("version_policy = \"all\"\n{text}"),
        )
        .unwrap();
        let model = scan(dir.path()).unwrap();
        assert_eq!(model.versions.len(), 2);
        // The configuration is the model folder's: fine for both; the bytes
        // of version 2 fail when they are loaded, not here.
        assert!(model.versions.iter().all(|v| v.config.is_ok()));
    }
}
