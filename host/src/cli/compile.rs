//! `wasi-infer compile`: compiles every component of a manifest, and the
//! built-in application's functions, into the compile cache, so the next
//! `serve` starts without compiling (e.g. in a container image).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use wasi_infer::Limits;
use wasi_infer::app::builtin::BuiltinApp;
use wasi_infer::manifest::Manifest;
use wasi_infer::runtime::{CompileCache, Compiled, Runtime};

pub fn compile(manifest: Option<&Path>, cache: Option<CompileCache>) -> anyhow::Result<()> {
    let Some(cache) = cache else {
        bail!("there is no cache to compile into (--no-cache, or no HOME): give --cache-dir");
    };
    // Refused before anything is compiled: entries stored there could not
    // be loaded by `serve` either.
    cache.check_trusted()?;
    // The same engine settings as `serve`, so the entries fit it.
    let runtime = Runtime::new(&Limits::default())
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("cannot set up the WebAssembly runtime")?;
    let mut components: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(manifest) = manifest {
        let manifest = Manifest::load(manifest)?;
        for spec in manifest.components.values() {
            let bytes = std::fs::read(&spec.source).with_context(|| {
                format!(
                    "component {}: cannot read {}",
                    spec.id,
                    spec.source.display()
                )
            })?;
            components.push((spec.id.clone(), bytes));
        }
    }
    // What `serve --models DIR` runs; the same bytes as the example
    // application's, so usually already cached by then.
    for (id, bytes) in BuiltinApp::functions() {
        components.push((format!("{id} (built-in)"), bytes.to_vec()));
    }
    for (id, bytes) in components {
        let started = Instant::now();
        let (_, compiled) = wasi_infer::app::compile(&runtime, &bytes, Some(&cache))
            .map_err(|message| anyhow::anyhow!("component {id}: {message}"))?;
        let how = match compiled {
            Compiled::Cached => "already in the cache",
            Compiled::Fresh | Compiled::Bundled => "compiled",
        };
        println!("{id}: {how} ({} ms)", started.elapsed().as_millis());
    }
    println!("cache: {}", cache.dir().display());
    Ok(())
}
