//! `models/<name>/model.toml`: what a model is (format, file, inputs and outputs)
//! and which backend should run it. Functions read the same file for their own
//! sections (`[preprocess]`, `labels`), which the host keeps but does not interpret.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ModelError;
use super::interface::{DataType, ModelInterface, TensorInfo};
use super::tensor::ElementType;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub description: Option<String>,
    /// The version served, as the Open Inference Protocol names it.
    #[serde(default = "default_version")]
    pub version: String,
    pub format: ModelFormat,
    /// The weights, relative to the model's directory.
    pub file: PathBuf,
    #[serde(default)]
    pub backend: BackendChoice,
    /// Class labels, one per line (for functions).
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// What the model does, which decides the function that serves it when
    /// a model folder is served without a manifest (`serve --models DIR`).
    #[serde(default)]
    pub task: Option<Task>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// How a function prepares its input; opaque to the host.
    #[serde(default)]
    pub preprocess: Option<toml::Table>,
    /// Settings for the ONNX Runtime backend.
    #[serde(default)]
    pub onnxruntime: OnnxRuntimeSettings,
    /// Settings for the OpenVINO backend.
    #[serde(default)]
    pub openvino: OpenVinoSettings,
    /// Bounds on the inputs of one inference (see [`super::bounds`]).
    #[serde(default)]
    pub limits: InputLimits,
    /// When the model is loaded: at start-up, or on its first request; the
    /// server's `--load` when not said (see [`crate::nn::store`]).
    #[serde(default)]
    pub load: Option<LoadPolicy>,
    /// Which of the version folders (`<model>/1/`, `<model>/2/`, ...) are
    /// served; the newest one when not said. Read from the model folder's
    /// `model.toml`, or else from the newest version's.
    #[serde(default)]
    pub version_policy: Option<VersionPolicy>,
}

/// `load`: when a model is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadPolicy {
    /// Before the server reports ready.
    #[default]
    Startup,
    /// On its first request, which waits for it (and so do the requests that
    /// come while it loads: one load for all of them).
    OnDemand,
}

impl LoadPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadPolicy::Startup => "startup",
            LoadPolicy::OnDemand => "on-demand",
        }
    }
}

/// `version_policy`: which versions of a model are served, as Triton's
/// `version_policy` says it: `"all"`, `{ latest = 2 }` or
/// `{ specific = [1, 3] }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum VersionPolicy {
    All,
    Latest(u32),
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

impl VersionPolicy {
    /// The versions served of those there are (ascending): the newest `n`,
    /// all, or the ones named that exist.
    pub fn select(&self, versions: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::All => versions.to_vec(),
            VersionPolicy::Latest(n) => {
                let skip = versions.len().saturating_sub(*n as usize);
                versions[skip..].to_vec()
            }
            VersionPolicy::Specific(wanted) => versions
                .iter()
                .copied()
                .filter(|v| wanted.contains(v))
                .collect(),
        }
    }

    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        match self {
            VersionPolicy::Latest(0) => {
                Err("version_policy = { latest = 0 } serves nothing: give at least 1".into())
            }
            VersionPolicy::Specific(v) if v.is_empty() => {
                Err("version_policy = { specific = [] } serves nothing: name a version".into())
            }
            _ => Ok(()),
        }
    }
}

/// `[limits]`: how large one inference's inputs may be. Work and memory grow
/// with the dynamic dimensions a request chooses (an attention layer with the
/// square of the sequence length), so these are checked before a model runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputLimits {
    /// The largest batch (a dynamic first dimension); default: the server's
    /// `--max-batch`.
    pub max_batch: Option<u64>,
    /// Elements of one input tensor; default: the batch bound times the
    /// other dimensions when they are all fixed, else the server's
    /// `--max-input-elements`.
    pub max_elements: Option<u64>,
}

/// A model's task, as model hubs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// An image in, class scores out: served at `/classify/<model>` (its
    /// `[preprocess]` says how to prepare the image).
    ImageClassification,
    /// Texts in, one vector each out: served at `/embed/<model>` (its
    /// `[preprocess]` names the tokenizer).
    TextEmbedding,
    /// A recording in, its speech segments out: served at `/vad/<model>`
    /// (a Silero-style recurrent model: a frame and a state in, a speech
    /// probability and the next state out).
    VoiceActivityDetection,
    /// An image in, its text lines out: served at `/ocr/<model>`, the
    /// model being the pipeline's text detector (its `[preprocess]` names
    /// the `recogniser` and the `direction_classifier`).
    Ocr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// An ONNX file (`.onnx`): every backend reads it.
    Onnx,
    /// OpenVINO IR (`model.xml`, with the weights in `model.bin` beside it):
    /// only the OpenVINO backend reads it.
    Openvino,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::Openvino => "openvino",
        })
    }
}

/// `[onnxruntime]`: how ONNX Runtime runs the model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxRuntimeSettings {
    /// Graph optimisation level (default `all`).
    #[serde(default)]
    pub optimization: OptimizationLevel,
    /// Threads inside one operator, per session (default 1: parallel requests
    /// on separate sessions beat one session with more threads on few cores).
    pub intra_threads: Option<usize>,
    /// Sessions that run requests in parallel (default: one per core).
    pub sessions: Option<usize>,
    /// Intra-op threads of one more session, used by a request that finds no
    /// other inference running on the model, so a lone request is not held to
    /// one core (default: one per core; 1 means no such session). On the CPU only.
    pub solo_threads: Option<usize>,
    /// Where to run: `cpu` (default) or `gpu` (the CUDA execution provider).
    #[serde(default)]
    pub device: OrtDevice,
    /// With `device = "gpu"`: run on the CPU when the library has no CUDA
    /// (and say so in the log) instead of refusing to start.
    #[serde(default)]
    pub cpu_fallback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizationLevel {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrtDevice {
    #[default]
    Cpu,
    Gpu,
}

/// `[openvino]`: how OpenVINO runs the model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenVinoSettings {
    /// A file for OpenVINO only (e.g. an IR `model.xml` beside the ONNX file
    /// the other backends read), relative to the model's directory.
    pub file: Option<PathBuf>,
    /// An OpenVINO device name: `CPU` (default), `GPU`, `AUTO`, `AUTO:GPU,CPU`, ...
    #[serde(default = "default_openvino_device")]
    pub device: String,
    /// Inference precision (default `f32`, so results match the other
    /// backends; OpenVINO would otherwise pick bf16 on CPUs that have it).
    #[serde(default)]
    pub precision: Precision,
    /// Parallel streams (default: one per core), each serving one request.
    pub streams: Option<usize>,
    /// Inference threads in all (default: OpenVINO's choice).
    pub threads: Option<usize>,
}

impl Default for OpenVinoSettings {
    fn default() -> Self {
        Self {
            file: None,
            device: default_openvino_device(),
            precision: Precision::default(),
            streams: None,
            threads: None,
        }
    }
}

/// A model without a `version` is version "1", as in Triton and KServe.
fn default_version() -> String {
    "1".into()
}

fn default_openvino_device() -> String {
    "CPU".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
    Bf16,
}

impl Precision {
    /// The value of OpenVINO's `INFERENCE_PRECISION_HINT`.
    pub fn openvino_name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }
}

/// The backend a model asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The fastest backend available on this machine.
    #[default]
    Auto,
    Onnxruntime,
    Openvino,
    Tract,
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Onnxruntime => "onnxruntime",
            BackendChoice::Openvino => "openvino",
            BackendChoice::Tract => "tract",
        })
    }
}

/// A named tensor of the model's interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ElementType,
    /// Dimensions; `-1` marks a dynamic one.
    pub shape: Vec<i64>,
    /// The largest each dimension may be in a request (inputs only), `-1`
    /// for no bound of its own; e.g. `[64, 512]` for batch and sequence.
    #[serde(default)]
    pub max_shape: Option<Vec<i64>>,
}

impl TensorSpec {
    /// The shape of a trial input: a batch of 1 in a dynamic first
    /// dimension, 32 in any other dynamic one (32 tokens, or 32 pixels: a
    /// network that halves an image five times, as text detectors do,
    /// cannot run on less).
    pub fn trial_shape(&self) -> Vec<usize> {
        self.shape
            .iter()
            .enumerate()
            .map(|(i, &d)| match usize::try_from(d) {
                Ok(d) => d,
                Err(_) if i == 0 => 1,
                Err(_) => 32,
            })
            .collect()
    }

    /// The shape with every dimension known, if it has no dynamic one.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect()
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
            .collect();
        write!(f, "{} {} [{}]", self.name, self.ty, dims.join(", "))
    }
}

/// Letters, digits, `.`, `_` and `-`: a name that stands in a URL path (a
/// model's name, its version) and in a file name without escaping.
pub fn is_url_segment(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl ModelConfig {
    /// Reads and checks `dir/model.toml`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let config: ModelConfig = toml::from_str(&text).map_err(|e| ModelError::Config {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        config
            .check()
            .map_err(|problem| ModelError::Config { path, problem })?;
        Ok(config)
    }

    /// The inputs and outputs as declared here, for a model not loaded yet
    /// (once loaded, the model's own, which agree with these).
    pub fn declared_interface(&self) -> ModelInterface {
        let infos = |specs: &[TensorSpec]| {
            specs
                .iter()
                .map(|spec| TensorInfo {
                    name: spec.name.clone(),
                    ty: DataType::Known(spec.ty),
                    shape: Some(spec.shape.clone()),
                })
                .collect()
        };
        ModelInterface {
            inputs: infos(&self.inputs),
            outputs: infos(&self.outputs),
        }
    }

    /// Whether the configuration is one the host can serve.
    pub fn check(&self) -> Result<(), String> {
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err("a model needs at least one [[inputs]] and one [[outputs]]".into());
        }
        if self.format == ModelFormat::Openvino
            && matches!(
                self.backend,
                BackendChoice::Onnxruntime | BackendChoice::Tract
            )
        {
            return Err(format!(
                "format \"openvino\" (IR) runs on the openvino backend only, not {:?}",
                self.backend
            ));
        }
        // It is a path segment of the Open Inference Protocol's URLs.
        if !is_url_segment(&self.version) {
            return Err(format!(
                "version {:?}: use letters, digits, '.', '_' and '-'",
                self.version
            ));
        }
        if let Some(policy) = &self.version_policy {
            policy.check()?;
        }
        if self.onnxruntime.sessions == Some(0) || self.onnxruntime.intra_threads == Some(0) {
            return Err("[onnxruntime] sessions and intra_threads must be at least 1".into());
        }
        if self.openvino.streams == Some(0) || self.openvino.threads == Some(0) {
            return Err("[openvino] streams and threads must be at least 1".into());
        }
        for t in self.inputs.iter().chain(&self.outputs) {
            if t.shape.iter().any(|&d| d == 0 || d < -1) {
                return Err(format!(
                    "tensor {:?}: dimensions must be positive, or -1 for a dynamic one",
                    t.name
                ));
            }
            // wasi-nn's dimensions are u32.
            if t.shape.iter().any(|&d| d > i64::from(u32::MAX)) {
                return Err(format!(
                    "tensor {:?}: a dimension may be at most {}",
                    t.name,
                    u32::MAX
                ));
            }
        }
        for t in &self.outputs {
            if t.max_shape.is_some() {
                return Err(format!("output {:?}: max_shape bounds inputs only", t.name));
            }
        }
        for t in &self.inputs {
            let Some(max) = &t.max_shape else { continue };
            if max.len() != t.shape.len() {
                return Err(format!(
                    "input {:?}: max_shape has {} dimensions, shape has {}",
                    t.name,
                    max.len(),
                    t.shape.len()
                ));
            }
            if max.iter().any(|&d| d == 0 || d < -1) {
                return Err(format!(
                    "input {:?}: max_shape dimensions must be positive, or -1 for no bound",
                    t.name
                ));
            }
        }
        if self.limits.max_batch == Some(0) || self.limits.max_elements == Some(0) {
            return Err("[limits] max_batch and max_elements must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_bad_shapes() {
        let text = r#"
format = "onnx"
file = "model.onnx"
backend = "tract"
[[inputs]]
name = "input"
type = "f32"
shape = [-1, 3, 224, 224]
[[outputs]]
name = "logits"
type = "f32"
shape = [-1, 1000]
[preprocess]
anything = "goes"
"#;
        let c: ModelConfig = toml::from_str(text).unwrap();
        assert_eq!(c.backend, BackendChoice::Tract);
        assert_eq!(c.inputs[0].concrete_shape(), None);
        assert_eq!(c.inputs[0].to_string(), "input f32 [?, 3, 224, 224]");
        let bad: ModelConfig = toml::from_str(&text.replace("[-1, 1000]", "[0, 1000]")).unwrap();
        assert!(bad.check().is_err());
        assert!(toml::from_str::<ModelConfig>(&text.replace("backend", "backnd")).is_err());
        assert_eq!(c.openvino.device, "CPU");
        assert_eq!(c.openvino.precision, Precision::F32);
        assert_eq!(c.onnxruntime.optimization, OptimizationLevel::All);

        let tuned = format!(
            "{text}\n[onnxruntime]\nsessions = 0\n[openvino]\ndevice = \"AUTO\"\nprecision = \"bf16\"\n"
        );
        let tuned: ModelConfig = toml::from_str(&tuned).unwrap();
        assert_eq!(tuned.openvino.precision, Precision::Bf16);
        assert!(tuned.check().unwrap_err().contains("sessions"));
    }
}
