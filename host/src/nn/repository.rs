//! The model repository: which models there are, where each one's folder is,
//! and what a model folder must hold.
//!
//! A folder is a model when it holds a `model.toml`, or, without one, exactly
//! one ONNX file: the model's interface is then read from the graph itself
//! and it runs on the fastest backend, which is what a model folder handed
//! over by a model store (KServe's storage initializer, a `model.onnx`
//! exported from a framework) looks like.
//!
//! `--models DIR` names either a repository of such folders (`DIR/<name>/`,
//! as `models/` in this repository is) or one model folder, served under a
//! name given to it (KServe mounts one model at `/mnt/models`).

use std::path::{Path, PathBuf};

use super::ModelError;
use super::interface::DataType;
use super::model_config::{
    BackendChoice, InputLimits, ModelConfig, ModelFormat, OnnxRuntimeSettings, OpenVinoSettings,
    TensorSpec, is_url_segment,
};
use super::onnx_graph;

/// The file that describes a model.
pub const MODEL_TOML: &str = "model.toml";

/// Where models are found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRepository {
    /// A directory of model folders, each named by its folder.
    Dir(PathBuf),
    /// One model folder, served under `name`.
    Single { name: String, dir: PathBuf },
}

impl ModelRepository {
    /// `dir` as an operator gives it: a single model folder when it is one
    /// (named `name`, or by the folder itself), else a repository. A name
    /// for a repository is refused: it names one model, and a repository
    /// holds many. A repository that does not exist holds no models, which
    /// is fine for an application that loads none; listing it is an error.
    pub fn open(dir: &Path, name: Option<&str>) -> Result<Self, ModelError> {
        let invalid = |problem: String| ModelError::Config {
            path: dir.to_path_buf(),
            problem,
        };
        if is_model_folder(dir) {
            let name = match name {
                Some(name) => name.to_string(),
                None => dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name()?.to_str().map(str::to_string))
                    .ok_or_else(|| {
                        invalid(
                            "this model folder has no name of its own: give --model-name".into(),
                        )
                    })?,
            };
            if !is_model_name(&name) {
                return Err(invalid(format!(
                    "model name {name:?}: use letters, digits, '.', '_' and '-' (it is a URL path segment)"
                )));
            }
            return Ok(Self::Single {
                name,
                dir: dir.to_path_buf(),
            });
        }
        if let Some(name) = name {
            return Err(invalid(format!(
                "--model-name {name:?} names the model of a single model folder, but this is a \
                 repository of folders (no {MODEL_TOML} or .onnx file directly inside)"
            )));
        }
        Ok(Self::Dir(dir.to_path_buf()))
    }

    /// The folder of the model `name`, if the repository holds one.
    pub fn model_dir(&self, name: &str) -> Option<PathBuf> {
        match self {
            Self::Single { name: own, dir } => (own == name).then(|| dir.clone()),
            Self::Dir(root) => {
                if !is_model_name(name) {
                    return None;
                }
                let dir = root.join(name);
                is_model_folder(&dir).then_some(dir)
            }
        }
    }

    /// Every model's name, sorted.
    pub fn names(&self) -> Result<Vec<String>, ModelError> {
        match self {
            Self::Single { name, .. } => Ok(vec![name.clone()]),
            Self::Dir(root) => {
                let entries = std::fs::read_dir(root).map_err(|source| ModelError::Io {
                    path: root.clone(),
                    source,
                })?;
                let mut names: Vec<String> = entries
                    .filter_map(|entry| entry.ok())
                    .filter(|entry| is_model_folder(&entry.path()))
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .filter(|name| is_model_name(name))
                    .collect();
                names.sort();
                Ok(names)
            }
        }
    }

    /// The directory a function sees the models' files in, and where: the
    /// repository as `/models`, or the one folder as `/models/<name>`.
    pub fn mount(&self) -> (PathBuf, String) {
        match self {
            Self::Dir(root) => (root.clone(), "/models".into()),
            Self::Single { name, dir } => (dir.clone(), format!("/models/{name}")),
        }
    }

    /// Where the repository is, for messages.
    pub fn path(&self) -> &Path {
        match self {
            Self::Dir(root) => root,
            Self::Single { dir, .. } => dir,
        }
    }
}

/// A model's name: a folder name and a URL path segment at once.
/// (Not hidden: `.` and `..` are no models.)
pub fn is_model_name(name: &str) -> bool {
    is_url_segment(name) && !name.starts_with('.')
}

/// Whether `dir` holds a model: a `model.toml`, one ONNX file, or version
/// folders (`1/`, `2/`, ...).
pub fn is_model_folder(dir: &Path) -> bool {
    dir.join(MODEL_TOML).is_file()
        || matches!(onnx_files(dir).as_deref(), Ok([_]))
        || version_folders(dir).is_ok_and(|v| !v.is_empty())
}

/// The version folders of a model folder, as Triton's repository lays them
/// out (`<model>/1/`, `<model>/2/`, ...: positive numbers without leading
/// zeros), ascending. None: the folder is the model's one version.
pub fn version_folders(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut versions: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('0'))
        .filter_map(|name| name.parse::<u64>().ok())
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// The configuration of version `version` of the model in `model_dir`: the
/// version folder's own `model.toml`, else the model folder's (its files
/// then named relative to the version folder), else what the version's ONNX
/// file says of itself. Its `version` is the folder's name.
pub fn load_version_config(model_dir: &Path, version: u64) -> Result<ModelConfig, ModelError> {
    let version_dir = model_dir.join(version.to_string());
    let mut config = if version_dir.join(MODEL_TOML).is_file() {
        ModelConfig::load(&version_dir)?
    } else if model_dir.join(MODEL_TOML).is_file() {
        ModelConfig::load(model_dir)?
    } else {
        load_config(&version_dir)?
    };
    config.version = version.to_string();
    Ok(config)
}

/// The model in `dir`: its `model.toml`, or, without one, what its ONNX file
/// says of itself.
pub fn load_config(dir: &Path) -> Result<ModelConfig, ModelError> {
    if dir.join(MODEL_TOML).is_file() {
        return ModelConfig::load(dir);
    }
    let invalid = |problem: String| ModelError::Config {
        path: dir.to_path_buf(),
        problem,
    };
    let files = onnx_files(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let file = match files.as_slice() {
        [file] => file.clone(),
        [] => {
            return Err(invalid(format!(
                "no {MODEL_TOML} and no .onnx file: a model folder holds one of them \
                 (an OpenVINO IR needs a {MODEL_TOML} naming its .xml)"
            )));
        }
        _ => {
            return Err(invalid(format!(
                "no {MODEL_TOML}, and {} .onnx files: write a {MODEL_TOML} that names the model's file",
                files.len()
            )));
        }
    };
    let interface = onnx_graph::read_interface(&dir.join(&file)).map_err(invalid)?;
    let specs = |tensors: &[super::interface::TensorInfo]| {
        tensors
            .iter()
            .map(|t| {
                let ty = match &t.ty {
                    DataType::Known(ty) => *ty,
                    DataType::Other(other) => {
                        return Err(format!(
                            "tensor {:?} is {other}, which wasi-nn cannot carry",
                            t.name
                        ));
                    }
                };
                let shape = t.shape.clone().ok_or_else(|| {
                    format!(
                        "tensor {:?} has no shape in the graph: write a {MODEL_TOML} that gives it",
                        t.name
                    )
                })?;
                Ok(TensorSpec {
                    name: t.name.clone(),
                    ty,
                    shape,
                    max_shape: None,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let config = ModelConfig {
        description: Some(format!(
            "{}: the interface read from the model (no {MODEL_TOML})",
            file.display()
        )),
        version: "1".into(),
        format: ModelFormat::Onnx,
        file,
        backend: BackendChoice::Auto,
        labels: None,
        task: None,
        inputs: specs(&interface.inputs).map_err(&invalid)?,
        outputs: specs(&interface.outputs).map_err(&invalid)?,
        preprocess: None,
        onnxruntime: OnnxRuntimeSettings::default(),
        openvino: OpenVinoSettings::default(),
        limits: InputLimits::default(),
        load: None,
        version_policy: None,
    };
    config.check().map_err(invalid)?;
    Ok(config)
}

/// The `.onnx` files directly in `dir`, by name.
fn onnx_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .map(|entry| PathBuf::from(entry.file_name()))
        .filter(|name| {
            name.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
    }

    #[test]
    fn a_repository_lists_its_model_folders() {
        let repo = ModelRepository::open(&root(), None).unwrap();
        assert!(matches!(repo, ModelRepository::Dir(_)));
        let names = repo.names().unwrap();
        assert!(
            names.contains(&"efficientnet-lite0".to_string()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n == "README.md"), "{names:?}");
        assert!(repo.model_dir("efficientnet-lite0").is_some());
        for not_served in ["README.md", "nope", "..", "", &"a".repeat(5000)] {
            assert_eq!(repo.model_dir(not_served), None, "{not_served}");
        }
        let named = ModelRepository::open(&root(), Some("x")).unwrap_err();
        assert!(named.to_string().contains("--model-name"), "{named}");
    }

    #[test]
    fn a_single_folder_is_served_under_its_name_or_the_one_given() {
        let dir = root().join("fashion-mnist-cnn");
        let own = ModelRepository::open(&dir, None).unwrap();
        assert_eq!(own.names().unwrap(), ["fashion-mnist-cnn"]);
        let named = ModelRepository::open(&dir, Some("clothes")).unwrap();
        assert_eq!(named.model_dir("clothes"), Some(dir.clone()));
        assert_eq!(named.model_dir("fashion-mnist-cnn"), None);
        assert_eq!(named.mount().1, "/models/clothes");
        let bad = ModelRepository::open(&dir, Some("a/b")).unwrap_err();
        assert!(bad.to_string().contains("letters, digits"), "{bad}");
    }

    #[test]
    fn a_bare_onnx_file_describes_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            root().join("fashion-mnist-cnn/model.onnx"),
            dir.path().join("clothes.onnx"),
        )
        .unwrap();
        assert!(is_model_folder(dir.path()));
        let config = load_config(dir.path()).unwrap();
        assert_eq!(config.file, Path::new("clothes.onnx"));
        assert_eq!(config.inputs.len(), 1);
        // The graph's own shape, with its dynamic batch.
        assert_eq!(config.inputs[0].shape, [-1, 1, 28, 28]);
        assert_eq!(config.outputs[0].shape, [-1, 10]);

        std::fs::copy(
            root().join("fashion-mnist-cnn/model.onnx"),
            dir.path().join("other.onnx"),
        )
        .unwrap();
        assert!(!is_model_folder(dir.path()));
        let two = load_config(dir.path()).unwrap_err();
        assert!(two.to_string().contains("2 .onnx files"), "{two}");
    }
}
