//! `wasi-infer compile`: compiles every component of a manifest into the
//! compile cache, so the next `serve` starts without compiling.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use wasi_infer::Limits;
use wasi_infer::manifest::Manifest;
use wasi_infer::runtime::{CompileCache, Compiled, Runtime};

pub fn compile(manifest: &Path, cache: Option<CompileCache>) -> anyhow::Result<()> {
    let Some(cache) = cache else {
        bail!("there is no cache to compile into (--no-cache, or no HOME): give --cache-dir");
    };
    // Refused before anything is compiled: entries stored there could not
    // be loaded by `serve` either.
    cache.check_trusted()?;
    let manifest = Manifest::load(manifest)?;
    // The same engine settings as `serve`, so the entries fit it.
    let runtime = Runtime::new(&Limits::default())
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("cannot set up the WebAssembly runtime")?;
    for spec in manifest.components.values() {
        let started = Instant::now();
        let (_, compiled) = wasi_infer::app::compile(&runtime, &spec.source, Some(&cache))
            .map_err(|message| {
                anyhow::anyhow!(
                    "component {} ({}): {message}",
                    spec.id,
                    spec.source.display()
                )
            })?;
        let how = match compiled {
            Compiled::Cached => "already in the cache",
            Compiled::Fresh => "compiled",
        };
        println!("{}: {how} ({} ms)", spec.id, started.elapsed().as_millis());
    }
    println!("cache: {}", cache.dir().display());
    Ok(())
}
