//! The commands of the `wasi-infer` binary, one file each, and the flags
//! they share. The library (`wasi_infer`) does the work; these read flags
//! and environment variables, and print.

pub mod check;
pub mod compile;
pub mod models;
pub mod progress;
pub mod serve;
pub mod units;

use std::path::PathBuf;

use wasi_infer::runtime::CompileCache;
use wasi_infer::{AppOptions, BackendKind};

/// Where an application comes from: a manifest, or a model folder served by
/// the built-in application; and the backend choice.
#[derive(clap::Args)]
pub struct AppArgs {
    /// The application manifest [default: spin.toml, unless --models alone is given].
    #[arg(long, env = "WASI_INFER_MANIFEST")]
    manifest: Option<PathBuf>,
    /// The model repository (a folder of model folders), or one model folder.
    /// With --manifest: where its models are [default: models/ beside it].
    /// Alone: serves every model in it through the built-in application (the
    /// Open Inference Protocol for all, /classify and /embed where a model's
    /// model.toml declares that task).
    #[arg(long, env = "WASI_INFER_MODELS")]
    models: Option<PathBuf>,
    /// The model's name when --models is one model folder (as KServe mounts
    /// one at /mnt/models) [default: the folder's name].
    #[arg(long, env = "WASI_INFER_MODEL_NAME", requires = "models")]
    model_name: Option<String>,
    /// Run every model on this backend, whatever its model.toml asks for.
    #[arg(long, env = "WASI_INFER_BACKEND", value_enum)]
    backend: Option<BackendKind>,
    #[command(flatten)]
    cache: CacheArgs,
}

impl AppArgs {
    pub fn options(self) -> AppOptions {
        let mut options = match (self.manifest, &self.models) {
            (Some(manifest), _) => AppOptions::new(manifest),
            (None, Some(models)) => AppOptions::for_models(models),
            (None, None) => AppOptions::new("spin.toml"),
        };
        options.models_dir = self.models;
        options.model_name = self.model_name;
        options.backend = self.backend;
        options.compile_cache = self.cache.cache();
        options
    }
}

/// Where compiled components are kept between runs.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// Directory of compiled components [default: $XDG_CACHE_HOME/wasi-infer or
    /// ~/.cache/wasi-infer].
    #[arg(long, env = "WASI_INFER_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component at start-up, without reading or writing the
    /// cache; wins over --cache-dir (which an image may set in its environment).
    #[arg(long, env = "WASI_INFER_NO_CACHE")]
    no_cache: bool,
}

impl CacheArgs {
    pub fn cache(self) -> Option<CompileCache> {
        if self.no_cache {
            return None;
        }
        let dir = self.cache_dir.or_else(CompileCache::default_dir);
        if dir.is_none() {
            tracing::warn!(
                "no cache directory (neither HOME nor XDG_CACHE_HOME is set): compiling every time"
            );
        }
        dir.map(CompileCache::new)
    }
}
