//! `wasi-infer-train quantize`: the int8 variant of a trained model, made by
//! ONNX Runtime's static post-training quantiser (the field's reference
//! tool, `train/quantize.py`) from a Python environment of its own,
//! calibrated on training images, per-channel weights; then checked on
//! every backend against the fp32 model.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use wasi_infer::nn::{BackendKind, LoadedModel};

use crate::data::to_unit;
use crate::export::{self, Folder};
use crate::train::{Record, prepare};
use crate::{Paths, check};

const SCRIPT: &str = include_str!("../quantize.py");
const REQUIREMENTS: &str = include_str!("../requirements.txt");

#[derive(clap::Args)]
pub struct QuantizeArgs {
    #[command(flatten)]
    paths: Paths,
    /// The trained model folder (with its training.json).
    #[arg(long, default_value = "models/fashion-mnist-cnn")]
    from: PathBuf,
    /// The model folder to write.
    #[arg(long, default_value = "models/fashion-mnist-cnn-int8")]
    out: PathBuf,
    /// Training images to calibrate activation ranges on.
    #[arg(long, default_value_t = 1000)]
    calibration: usize,
    /// The Python environment with ONNX Runtime's quantiser
    /// (train/requirements.txt), made when it is missing or out of date.
    #[arg(long, default_value = "target/train-venv")]
    venv: PathBuf,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let record = Record::read(&args.from)?;
    let mut rng = ChaCha8Rng::seed_from_u64(record.seed);
    let data = prepare(&args.paths.data, record.limit, &mut rng)?;
    let count = args.calibration.min(data.train.len());
    let chosen = sample(&mut rng, data.train.len(), count).into_vec();
    let calibration: Vec<u8> = to_unit(&data.train.select(&chosen).pixels)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();

    let python = environment(&args.venv)?;
    let work = tempfile::tempdir().context("creating a temporary folder")?;
    let (script, images) = (
        work.path().join("quantize.py"),
        work.path().join("calibration.f32"),
    );
    std::fs::write(&script, SCRIPT)?;
    std::fs::write(&images, calibration)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let status = Command::new(&python)
        .arg(&script)
        .arg(args.from.join("model.onnx"))
        .arg(args.out.join("model.onnx"))
        .arg(&images)
        .arg(count.to_string())
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        bail!("ONNX Runtime's quantiser failed ({status})");
    }

    // The reference is the fp32 model as tract runs it: pure Rust, always there.
    let fp32 = LoadedModel::load("fp32", &args.from, Some(BackendKind::Tract))
        .with_context(|| format!("loading {}", args.from.display()))?;
    let reference = check::run(&fp32, &data.test)?;
    let fp32_accuracy = accuracy(&reference, &data.test.labels);
    let folder = Folder {
        description: "Fashion-MNIST CNN, 10 clothing classes (int8)",
        readme: readme(&args, count, fp32_accuracy),
    };
    export::write_model_files(&args.out, &folder)?;
    eprintln!("wrote {}", args.out.display());
    let results = check::backends(&args.out, &data.test, &reference, false, &check::INT8)?;
    for r in results {
        eprintln!(
            "{}: int8 {:.2}% against fp32 {:.2}% on {} test images",
            r.backend,
            100.0 * r.accuracy,
            100.0 * fp32_accuracy,
            data.test.len()
        );
    }
    Ok(())
}

fn accuracy(logits: &[f32], labels: &[u8]) -> f64 {
    let correct = logits
        .chunks_exact(crate::data::CLASSES)
        .zip(labels)
        .filter(|(row, label)| crate::fit::argmax(row) == **label as usize)
        .count();
    correct as f64 / labels.len().max(1) as f64
}

/// The venv's Python, after making the venv if its requirements changed (a
/// copy of them is kept inside, written last, so a failed install is retried).
fn environment(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(REQUIREMENTS) && python.is_file() {
        return Ok(python);
    }
    eprintln!(
        "making {} with ONNX Runtime's quantiser (pip)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(venv);
    run_command(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    let requirements = venv.with_extension("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS)?;
    run_command(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::rename(&requirements, &stamp)?;
    Ok(python)
}

fn run_command(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn readme(args: &QuantizeArgs, count: usize, fp32_accuracy: f64) -> String {
    format!(
        r#"# fashion-mnist-cnn-int8

`fashion-mnist-cnn` ({from}) quantised to int8 by this repository's `wasi-infer-train quantize`.

- **Licence:** MIT (the Fashion-MNIST data, Zalando Research).
- **How:** ONNX Runtime's static post-training quantiser (`onnxruntime.quantization.quantize_static`,
  onnxruntime 1.32.0 from PyPI, `train/quantize.py`): QDQ format, per-channel int8 weights
  with 7-bit range (ONNX Runtime's int8 kernels on CPUs without VNNI saturate with full-range
  weights: top-1 agreement with fp32 fell from 99% to 91% on an AVX2 machine), uint8 activations whose ranges are calibrated (min-max) on {count} training images drawn at
  random (seed of the training run).
- **Interface:** the same as `fashion-mnist-cnn`: input `input` f32 `[batch, 1, 28, 28]` =
  pixel / 255; output `logits` f32 `[batch, 10]`.
- **fp32 model's test accuracy**, for comparison: {fp32:.2}%.
"#,
        from = args.from.display(),
        fp32 = 100.0 * fp32_accuracy,
    )
}
