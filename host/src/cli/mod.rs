//! The commands of the `wasi-infer` binary, one file each, and the flags
//! they share. The library (`wasi_infer`) does the work; these read flags
//! and environment variables, and print.

pub mod bundle;
pub mod check;
pub mod compile;
pub mod eval;
pub mod models;
pub mod new;
pub mod preinit;
pub mod progress;
pub mod serve;
pub mod units;

use std::path::PathBuf;
use std::sync::Arc;

use wasi_infer::edge::bundle::OpenedBundle;
use wasi_infer::runtime::CompileCache;
use wasi_infer::{AppOptions, BackendKind};

/// Where an application comes from: a manifest, or a model folder served by
/// the built-in application; and the backend choice.
#[derive(clap::Args)]
pub struct AppArgs {
    /// The application manifest [default: spin.toml, unless --models or --bundle is given].
    #[arg(long, env = "WASI_INFER_MANIFEST")]
    manifest: Option<PathBuf>,
    /// Serve the application in this bundle (`wasi-infer bundle`: an OCI
    /// image layout, a tar or a folder), checked against its digests first.
    /// Its precompiled code, if any, runs natively: serve bundles you trust
    /// as you would a binary.
    #[arg(long, env = "WASI_INFER_BUNDLE", conflicts_with_all = ["manifest", "models"])]
    bundle: Option<PathBuf>,
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
    /// The application to load; a bundle is checked and laid out as files
    /// first, which last as long as the returned bundle does.
    pub fn options(self) -> anyhow::Result<(AppOptions, Option<OpenedBundle>)> {
        let mut bundle = match &self.bundle {
            Some(path) => Some(bundle::open(path)?),
            None => None,
        };
        let mut options = match (&bundle, self.manifest, &self.models) {
            (Some(bundle), _, _) => AppOptions::new(&bundle.manifest),
            (None, Some(manifest), _) => AppOptions::new(manifest),
            (None, None, Some(models)) => AppOptions::for_models(models),
            (None, None, None) => AppOptions::new("spin.toml"),
        };
        options.models_dir = self.models;
        options.model_name = self.model_name;
        options.backend = self.backend;
        options.compile_cache = self.cache.cache();
        if let Some(bundle) = &mut bundle {
            options.precompiled = Arc::new(std::mem::take(&mut bundle.precompiled));
        }
        Ok((options, bundle))
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
