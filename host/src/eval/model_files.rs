//! What a local model repository (`--models DIR`, laid out as `models/`)
//! tells of a deployed model: its `model.toml` (how to prepare its input),
//! its labels file, and its model file's size. All of it is optional: a
//! deployment is evaluated by what its server says; these fill the gaps.

use std::path::{Path, PathBuf};

use super::Error;

#[derive(Debug, Clone, Default)]
pub struct ModelFiles {
    /// `DIR/NAME/model.toml`: its path (as text, for messages) and its text.
    pub toml: Option<(String, String)>,
    /// The labels file its model.toml names, else `labels.txt` beside it.
    pub labels: Option<PathBuf>,
    /// The model file's size: the file its model.toml names, else the one
    /// `.onnx` file of the folder.
    pub model_bytes: Option<u64>,
}

impl ModelFiles {
    /// Looks `model` up in `repository`; nothing there is no error, but a
    /// model.toml that cannot be read is.
    pub fn find(repository: Option<&Path>, model: &str) -> Result<Self, Error> {
        let Some(dir) = repository.map(|r| r.join(model)).filter(|d| d.is_dir()) else {
            return Ok(Self::default());
        };
        let toml_path = dir.join("model.toml");
        let toml = match std::fs::read_to_string(&toml_path) {
            Ok(text) => Some((toml_path.display().to_string(), text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::Model {
                    model: model.to_string(),
                    problem: format!("cannot read {}: {e}", toml_path.display()),
                });
            }
        };
        let table = toml
            .as_ref()
            .and_then(|(_, text)| text.parse::<toml::Table>().ok());
        let key = |name: &str| {
            table
                .as_ref()
                .and_then(|t| t.get(name))
                .and_then(|v| v.as_str())
                .map(|file| dir.join(file))
        };
        let labels = key("labels")
            .or_else(|| Some(dir.join("labels.txt")))
            .filter(|p| p.is_file());
        let model_file = key("file").or_else(|| only_onnx(&dir));
        let model_bytes = model_file
            .and_then(|f| std::fs::metadata(f).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len());
        Ok(Self {
            toml,
            labels,
            model_bytes,
        })
    }

    /// The model.toml as [`super::Client::check`] takes it.
    pub fn toml(&self) -> Option<(&str, &str)> {
        self.toml.as_ref().map(|(p, t)| (p.as_str(), t.as_str()))
    }
}

fn only_onnx(dir: &Path) -> Option<PathBuf> {
    let mut onnx = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"));
    match (onnx.next(), onnx.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_of_this_project() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let files = ModelFiles::find(Some(&models), "fashion-mnist-cnn").unwrap();
        assert!(files.toml.is_some());
        assert!(
            files
                .labels
                .as_ref()
                .is_some_and(|l| l.ends_with("labels.txt"))
        );
        let size = std::fs::metadata(models.join("fashion-mnist-cnn/model.onnx"))
            .unwrap()
            .len();
        assert_eq!(files.model_bytes, Some(size));
        let none = ModelFiles::find(Some(&models), "no-such-model").unwrap();
        assert!(none.toml.is_none() && none.labels.is_none() && none.model_bytes.is_none());
        assert!(
            ModelFiles::find(None, "fashion-mnist-cnn")
                .unwrap()
                .toml
                .is_none()
        );
    }

    #[test]
    fn a_bare_onnx_folder_has_a_size() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        std::fs::write(dir.path().join("m/x.onnx"), [0u8; 10]).unwrap();
        let files = ModelFiles::find(Some(dir.path()), "m").unwrap();
        assert_eq!(files.model_bytes, Some(10));
        assert!(files.toml.is_none() && files.labels.is_none());
    }
}
