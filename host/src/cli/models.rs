//! `wasi-infer models list|inspect`: what is in a model repository, and what a
//! model's inputs and outputs are, as the model itself states them.

use std::path::Path;

use anyhow::Context;
use wasi_infer::nn::interface::TensorInfo;
use wasi_infer::nn::repository;
use wasi_infer::nn::{BackendKind, LoadedModel, ModelRepository};

/// Lists the models of a repository (from their `model.toml`, or what a bare
/// ONNX file says of itself, without loading them).
pub fn list(dir: &Path) -> anyhow::Result<()> {
    let repository = ModelRepository::open(dir, None)
        .with_context(|| format!("cannot read the model repository {}", dir.display()))?;
    let names = repository.names()?;
    println!(
        "{:<26} {:<8} {:<9} {:>9}  {:<8} DESCRIPTION",
        "NAME", "VERSION", "FORMAT", "SIZE", "BACKEND"
    );
    for name in names {
        let Some(model_dir) = repository.model_dir(&name) else {
            continue;
        };
        match repository::load_config(&model_dir) {
            Ok(config) => {
                let size = std::fs::metadata(model_dir.join(&config.file))
                    .map(|m| format!("{:.1} MB", m.len() as f64 / 1e6))
                    .unwrap_or_else(|_| "missing".into());
                println!(
                    "{name:<26} {:<8} {:<9} {size:>9}  {:<8} {}",
                    config.version,
                    config.format.to_string(),
                    format!("{:?}", config.backend).to_lowercase(),
                    config.description.as_deref().unwrap_or("")
                );
            }
            Err(e) => println!("{name:<26} error: {e}"),
        }
    }
    Ok(())
}

/// Loads one model and prints its interface (or JSON with `json`).
pub fn inspect(
    dir: &Path,
    name: &str,
    backend: Option<BackendKind>,
    json: bool,
) -> anyhow::Result<()> {
    let repository = ModelRepository::open(dir, None)?;
    let model_dir = repository
        .model_dir(name)
        .with_context(|| format!("no model named {name:?} in {}", dir.display()))?;
    let model = LoadedModel::load(name, &model_dir, backend)?;
    if json {
        let out = serde_json::json!({
            "name": model.name,
            "version": model.config.version,
            "description": model.config.description,
            "backend": model.backend.to_string(),
            "load_ms": model.load_time.as_secs_f64() * 1e3,
            "inputs": model.interface().inputs,
            "outputs": model.interface().outputs,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "model:    {} (version {})",
        model.name, model.config.version
    );
    if let Some(description) = &model.config.description {
        println!("about:    {description}");
    }
    println!("file:     {}", model.dir.join(&model.config.file).display());
    println!(
        "backend:  {} (loaded in {:.0} ms)",
        model.backend,
        model.load_time.as_secs_f64() * 1e3
    );
    let print = |what: &str, list: &[TensorInfo]| {
        println!("{what}:");
        for t in list {
            println!("  {t}");
        }
    };
    print("inputs", &model.interface().inputs);
    print("outputs", &model.interface().outputs);
    println!("as model.toml declares them (what functions send):");
    for spec in model.config.inputs.iter().chain(&model.config.outputs) {
        println!("  {spec}");
    }
    Ok(())
}
