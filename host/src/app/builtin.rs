//! The built-in application: what `serve --models DIR` serves when no
//! manifest is given, the way a model server is handed a model folder
//! (KServe's storage initializer mounts one at `/mnt/models`).
//!
//! Every model is served by the Open Inference Protocol (`/v2/...`), and by
//! `/classify/<model>`, `/embed/<model>`, `/vad/<model>` or `/ocr/<model>`
//! when its `model.toml` declares the `task` those functions perform. The functions are the ones this repository
//! builds, carried inside the binary (see `host/build.rs`), so a model folder
//! and the `wasi-infer` binary are all a machine needs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::manifest::routing::RoutePattern;
use crate::manifest::{
    Application, ComponentSpec, FileMount, HttpRoute, Manifest, MountKind, Route, RouteTarget,
};
use crate::nn::ModelRepository;
use crate::nn::model_config::Task;
use crate::nn::store::scan;

use super::AppError;

/// A function of the built-in application: its component id, the route it
/// serves, and its bytes as the build included them.
struct Function {
    id: &'static str,
    route: &'static str,
    description: &'static str,
    wasm: &'static [u8],
}

const IMAGE_CLASSIFY: Function = Function {
    id: "image-classify",
    route: "/classify/...",
    description: "Decodes and preprocesses an image, runs an image classifier through wasi-nn",
    wasm: include_bytes!(concat!(
        env!("WASI_INFER_BUILTIN_DIR"),
        "/image_classify.wasm"
    )),
};

const TEXT_EMBED: Function = Function {
    id: "text-embed",
    route: "/embed/...",
    description: "Tokenises texts and embeds them with a sentence-transformer through wasi-nn",
    wasm: include_bytes!(concat!(env!("WASI_INFER_BUILTIN_DIR"), "/text_embed.wasm")),
};

const VAD: Function = Function {
    id: "vad",
    route: "/vad/...",
    description: "Reads a WAV recording and finds its speech with a voice activity model through wasi-nn",
    wasm: include_bytes!(concat!(env!("WASI_INFER_BUILTIN_DIR"), "/vad.wasm")),
};

const OCR: Function = Function {
    id: "ocr",
    route: "/ocr/...",
    description: "Reads the text lines of an image with a detector, a direction classifier and a recogniser through wasi-nn",
    wasm: include_bytes!(concat!(env!("WASI_INFER_BUILTIN_DIR"), "/ocr.wasm")),
};

const OPEN_INFERENCE: Function = Function {
    id: "open-inference",
    route: "/v2/...",
    description: "Serves the Open Inference Protocol (KServe v2) for every model, through wasi-nn",
    wasm: include_bytes!(concat!(
        env!("WASI_INFER_BUILTIN_DIR"),
        "/open_inference.wasm"
    )),
};

/// Where a built-in component's manifest entry says it comes from (for
/// messages; its bytes are in the binary).
fn source(function: &Function) -> PathBuf {
    PathBuf::from(format!("<built-in {}>", function.id))
}

/// The built-in application for a repository: its manifest, and the bytes of
/// each component by id.
pub struct BuiltinApp {
    pub manifest: Manifest,
    pub components: BTreeMap<String, &'static [u8]>,
}

/// The built-in component that may load any model of the repository, those
/// added while it serves included (the protocol serves every model).
pub const ANY_MODEL: &str = OPEN_INFERENCE.id;

impl BuiltinApp {
    pub fn new(repository: &ModelRepository) -> Result<Self, AppError> {
        let names = repository.names()?;
        if names.is_empty() {
            return Err(AppError::Builtin(format!(
                "no models in {}: a model folder holds a model.toml, or one .onnx file",
                repository.path().display()
            )));
        }
        let mut classifiers = Vec::new();
        let mut embedders = Vec::new();
        let mut voice_detectors = Vec::new();
        // OCR detectors, and the models their pipelines also run.
        let mut text_readers = Vec::new();
        for name in &names {
            let dir = repository
                .model_dir(name)
                .expect("the repository lists only the models it holds");
            // Its newest version's task (a model whose configuration is
            // broken is served by the protocol alone, which says why).
            let config = scan::scan(&dir)
                .ok()
                .and_then(|model| model.versions.into_iter().next_back())
                .and_then(|version| version.config.ok());
            let task = config.as_ref().and_then(|config| config.task);
            if task == Some(Task::Ocr) {
                text_readers.extend(config.as_ref().map(pipeline_stages).unwrap_or_default());
            }
            match task {
                Some(Task::ImageClassification) => classifiers.push(name.clone()),
                Some(Task::TextEmbedding) => embedders.push(name.clone()),
                Some(Task::VoiceActivityDetection) => voice_detectors.push(name.clone()),
                Some(Task::Ocr) => text_readers.push(name.clone()),
                None => {}
            }
        }
        let (host, guest) = repository.mount();
        // The functions read each model's model.toml (preprocessing, labels,
        // tokenizer) from /models/<name>, read-only.
        let model_files = vec![FileMount {
            host,
            guest,
            kind: MountKind::Directory,
        }];
        let mut manifest = Manifest {
            path: PathBuf::from(format!(
                "<built-in application for {}>",
                repository.path().display()
            )),
            base_dir: repository.path().to_path_buf(),
            version: 2,
            base: "/".into(),
            application: Application {
                name: "wasi-infer-models".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
                description: Some(format!(
                    "The models in {}, by the Open Inference Protocol",
                    repository.path().display()
                )),
                authors: Vec::new(),
            },
            variables: BTreeMap::new(),
            routes: Vec::new(),
            components: BTreeMap::new(),
        };
        let mut components = BTreeMap::new();
        for (function, models, files) in [
            (&IMAGE_CLASSIFY, classifiers, model_files.clone()),
            (&TEXT_EMBED, embedders, model_files.clone()),
            // It learns the model's inputs from the host's metadata.
            (&VAD, voice_detectors, Vec::new()),
            // It reads the pipeline's settings and the recogniser's
            // characters from their model folders.
            (&OCR, dedup(text_readers), model_files.clone()),
            // The protocol learns everything from the host's metadata.
            (&OPEN_INFERENCE, names, Vec::new()),
        ] {
            if models.is_empty() {
                continue;
            }
            if function.wasm.is_empty() {
                return Err(AppError::Builtin(
                    "this wasi-infer was built without its functions (WASI_INFER_SKIP_FUNCTIONS): \
                     serve a manifest (--manifest) instead, or build it again without that variable"
                        .into(),
                ));
            }
            let pattern = RoutePattern::parse(function.route)
                .expect("the built-in routes are valid patterns");
            manifest.routes.push(HttpRoute {
                route: Route::Path(pattern),
                target: RouteTarget::Component(function.id.into()),
            });
            manifest.components.insert(
                function.id.into(),
                ComponentSpec {
                    id: function.id.into(),
                    description: Some(function.description.into()),
                    source: source(function),
                    files,
                    environment: BTreeMap::new(),
                    variables: BTreeMap::new(),
                    ai_models: models,
                    allowed_outbound_hosts: Vec::new(),
                },
            );
            components.insert(function.id.to_string(), function.wasm);
        }
        Ok(Self {
            manifest,
            components,
        })
    }

    /// The built-in components' bytes, for `wasi-infer compile`; empty when
    /// the binary was built without them.
    pub fn functions() -> impl Iterator<Item = (&'static str, &'static [u8])> {
        [IMAGE_CLASSIFY, TEXT_EMBED, VAD, OCR, OPEN_INFERENCE]
            .into_iter()
            .filter(|f| !f.wasm.is_empty())
            .map(|f| (f.id, f.wasm))
    }
}

/// The other models an OCR detector's pipeline runs: its `[preprocess]`
/// names them (`recogniser`, `direction_classifier`).
fn pipeline_stages(config: &crate::nn::model_config::ModelConfig) -> Vec<String> {
    let Some(preprocess) = config.preprocess.as_ref() else {
        return Vec::new();
    };
    ["recogniser", "direction_classifier"]
        .iter()
        .filter_map(|key| preprocess.get(*key)?.as_str())
        .map(str::to_string)
        .collect()
}

/// Names sorted, each once.
fn dedup(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}
