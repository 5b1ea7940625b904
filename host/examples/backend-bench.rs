//! Backend benchmark: single-request inference latency of every model in
//! `models/` on every backend available, and throughput at 8 concurrent
//! requests on one model, with ONNX Runtime's session pool against one shared
//! session behind one lock (the design of wasmtime-wasi-nn's built-in backend).
//!
//! Inference only, in-process: no HTTP, no guest. Run it with
//! `cargo run --release --example backend-bench [-- --seconds 5] [--backends onnxruntime,tract]`.
//! `bench/scripts/compare-onnxruntime.sh` runs it on two ONNX Runtime releases.
//! Figures move on a shared machine; compare ratios from one run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasi_infer::nn::model_config::ModelConfig;
use wasi_infer::nn::tensor::copy_named;
use wasi_infer::nn::{BackendKind, LoadedModel, trial_inputs};
use wasmtime_wasi_nn::backend::NamedTensor;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args
            .get(i + 1)
            .context("--seconds needs a value")?
            .parse()?,
        None => 5.0,
    };
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--backends")
        .map(|i| -> anyhow::Result<Vec<String>> {
            let list = args.get(i + 1).context("--backends needs a value")?;
            Ok(list.split(',').map(str::to_string).collect())
        })
        .transpose()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let models_dir = root.join("models");
    let backends: Vec<BackendKind> = BackendKind::ALL
        .into_iter()
        .filter(|b| {
            only.as_ref()
                .is_none_or(|only| only.iter().any(|o| *o == b.to_string()))
        })
        .filter(|b| match b.availability() {
            Ok(()) => true,
            Err(reason) => {
                println!("# {b} not available: {reason}");
                false
            }
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# {cores} cores; medians of repeated single requests, inference only\n");

    println!("| model | {} |", join(&backends, " | "));
    println!("|---|{}", "---|".repeat(backends.len()));
    let mut names: Vec<String> = std::fs::read_dir(&models_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in &names {
        let dir = models_dir.join(name);
        let inputs = trial_inputs(&ModelConfig::load(&dir)?);
        let mut row = Vec::new();
        for &backend in &backends {
            row.push(match LoadedModel::load(name, &dir, Some(backend)) {
                Ok(model) => {
                    let median = latency(&model, &inputs, seconds / 5.0)?;
                    format!("{:.2} ms", median.as_secs_f64() * 1e3)
                }
                Err(e) => {
                    eprintln!("{name} on {backend}: {e}");
                    "cannot load".into()
                }
            });
        }
        println!("| {name} | {} |", row.join(" | "));
    }

    println!("\n# efficientnet-lite0 (fp32), 8 concurrent requests for {seconds} s each\n");
    println!("| backend, configuration | requests/s | vs one locked session |");
    println!("|---|---|---|");
    let model = "efficientnet-lite0";
    let dir = models_dir.join(model);
    let inputs = trial_inputs(&ModelConfig::load(&dir)?);
    let mut baseline = None;
    let mut variants: Vec<(String, BackendKind, Option<String>)> = Vec::new();
    if backends.contains(&BackendKind::OnnxRuntime) {
        variants.push((
            "onnxruntime, one shared session behind a lock (before)".into(),
            BackendKind::OnnxRuntime,
            Some("[onnxruntime]\nsessions = 1\nintra_threads = 1\n".into()),
        ));
        variants.push((
            format!("onnxruntime, one shared session, {cores} intra-op threads"),
            BackendKind::OnnxRuntime,
            Some(format!(
                "[onnxruntime]\nsessions = 1\nintra_threads = {cores}\n"
            )),
        ));
        variants.push((
            format!("onnxruntime, pool of {cores} sessions x 1 thread (after)"),
            BackendKind::OnnxRuntime,
            None,
        ));
    }
    if backends.contains(&BackendKind::OpenVino) {
        variants.push((
            format!("openvino, {cores} streams"),
            BackendKind::OpenVino,
            None,
        ));
    }
    if backends.contains(&BackendKind::Tract) {
        variants.push(("tract".into(), BackendKind::Tract, None));
    }
    for (label, backend, extra) in variants {
        let copy = extra.map(|extra| with_settings(&dir, &extra)).transpose()?;
        let model_dir = copy.as_ref().map_or(dir.clone(), |c| c.path().join(model));
        let loaded = LoadedModel::load(model, &model_dir, Some(backend))?;
        let rate = throughput(&loaded, &inputs, 8, seconds)?;
        let base = *baseline.get_or_insert(rate);
        println!("| {label} | {rate:.1} | {:.2}x |", rate / base);
    }
    Ok(())
}

fn join(backends: &[BackendKind], sep: &str) -> String {
    backends
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// The median time of one inference, run repeatedly for about `seconds`.
fn latency(model: &LoadedModel, inputs: &[NamedTensor], seconds: f64) -> anyhow::Result<Duration> {
    for _ in 0..3 {
        model.run(copy_named(inputs))?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < 10 || (started.elapsed().as_secs_f64() < seconds && times.len() < 2000) {
        let t = Instant::now();
        model.run(copy_named(inputs))?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Inferences per second with `clients` threads calling at once for `seconds`.
fn throughput(
    model: &LoadedModel,
    inputs: &[NamedTensor],
    clients: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    model.run(copy_named(inputs))?;
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if model.run(copy_named(inputs)).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// A copy of a model directory with `extra` appended to its `model.toml`.
fn with_settings(dir: &Path, extra: &str) -> anyhow::Result<tempfile::TempDir> {
    let copy = tempfile::tempdir()?;
    let name: PathBuf = dir.file_name().context("model dir")?.into();
    let target = copy.path().join(name);
    std::fs::create_dir_all(&target)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), target.join(entry.file_name()))?;
        }
    }
    let toml = std::fs::read_to_string(dir.join("model.toml"))?;
    std::fs::write(target.join("model.toml"), format!("{toml}\n{extra}"))?;
    Ok(copy)
}
