//! The exported model, checked where it will run: loaded on each of the
//! server's backends (ONNX Runtime, OpenVINO, tract) through the host's own
//! loader, and run on the test images in batches. Each backend must agree
//! with the reference logits (burn's, or the first backend's) and score the
//! same accuracy.

use std::path::Path;

use anyhow::{Context, bail};
use wasi_infer::nn::tensor::{ElementType, tensor_from_values, values_from_bytes};
use wasi_infer::nn::{BackendKind, LoadedModel};
use wasmtime_wasi_nn::backend::NamedTensor;

use crate::data::{CLASSES, Images, PIXELS, SIDE, to_unit};
use crate::fit::argmax;

/// How closely a backend must follow the reference.
pub struct Tolerance {
    /// The largest difference of a logit; `None` where it is not the point.
    pub max_logit_difference: Option<f32>,
    /// The least share of images on which the top-1 must agree.
    pub min_top1_agreement: f64,
}

/// An fp32 export against the fp32 network it came from. Both compute in
/// fp32 and differ only in summation order and fused multiply-adds: relative
/// errors of ~1e-6 a step over dot products of at most ~1,600 terms, on
/// logits of magnitude ~10, make ~1e-3 at worst; 1e-2 leaves a tenfold
/// margin and still catches a wrong layer, which moves logits by whole
/// units. Only an image whose two best logits lie within that error of each
/// other can change its top-1: a few in ten thousand at most.
pub const FP32: Tolerance = Tolerance {
    max_logit_difference: Some(1e-2),
    min_top1_agreement: 0.999,
};

/// An int8 variant against the fp32 model it was quantised from. Its
/// activations are rounded to 1/255 of their calibrated range at every
/// layer, which moves logits by tenths: images near a decision boundary
/// change class. Static int8 quantisation of small CNNs is known to keep
/// ~98-99% of top-1 answers (the int8 model served before this one agreed
/// on 99%); 97% allows for backends' different int8 kernels (VNNI or not)
/// and rounding modes.
pub const INT8: Tolerance = Tolerance {
    max_logit_difference: None,
    min_top1_agreement: 0.97,
};

/// One backend's result.
#[derive(Debug, serde::Serialize)]
pub struct BackendCheck {
    pub backend: String,
    pub accuracy: f64,
    pub top1_agreement: f64,
    pub max_logit_difference: f32,
}

/// Runs the model folder `dir` on every backend present, compares with
/// `reference` (logits of `images`, `CLASSES` a row), and fails when one
/// disagrees. A backend whose native library is missing is skipped with a
/// note, unless `require_all`.
pub fn backends(
    dir: &Path,
    images: &Images,
    reference: &[f32],
    require_all: bool,
    tolerance: &Tolerance,
) -> anyhow::Result<Vec<BackendCheck>> {
    let mut results = Vec::new();
    for backend in BackendKind::ALL {
        if let Err(why) = backend.availability() {
            if require_all {
                bail!("{backend} is not available: {why}");
            }
            eprintln!("check: {backend} skipped: {why}");
            continue;
        }
        let model = LoadedModel::load("check", dir, Some(backend))
            .with_context(|| format!("loading {} on {backend}", dir.display()))?;
        let logits = run(&model, images).with_context(|| format!("running on {backend}"))?;
        let check = compare(backend.to_string(), &logits, reference, &images.labels);
        eprintln!(
            "check: {:<12} accuracy {:.2}%, top-1 agrees on {:.2}%, largest logit difference {:.2e}",
            check.backend,
            100.0 * check.accuracy,
            100.0 * check.top1_agreement,
            check.max_logit_difference
        );
        if let Some(max) = tolerance.max_logit_difference
            && check.max_logit_difference > max
        {
            bail!(
                "{backend} disagrees with the reference: logits differ by up to {:.3e} (at most {max:e})",
                check.max_logit_difference
            );
        }
        if check.top1_agreement < tolerance.min_top1_agreement {
            bail!(
                "{backend} disagrees with the reference: top-1 agrees on {:.2}% of images (at least {:.1}%)",
                100.0 * check.top1_agreement,
                100.0 * tolerance.min_top1_agreement
            );
        }
        results.push(check);
    }
    Ok(results)
}

/// The logits of every image on `model`, `CLASSES` a row.
pub fn run(model: &LoadedModel, images: &Images) -> anyhow::Result<Vec<f32>> {
    // The model.toml states one image a request, as the function sends it;
    // the graph itself takes any batch, and runs faster given a few at once.
    const BATCH: usize = 100;
    let mut out = Vec::with_capacity(images.len() * CLASSES);
    for start in (0..images.len()).step_by(BATCH) {
        let n = (images.len() - start).min(BATCH);
        let pixels = to_unit(&images.pixels[start * PIXELS..(start + n) * PIXELS]);
        let tensor = tensor_from_values(&[n, 1, SIDE, SIDE], ElementType::F32, &pixels)?;
        let outputs = model.run(vec![NamedTensor {
            name: "input".into(),
            tensor,
        }])?;
        let logits = outputs
            .iter()
            .find(|t| t.name == "logits")
            .context("the model gave no `logits`")?;
        out.extend(values_from_bytes::<f32>(&logits.tensor.data));
    }
    anyhow::ensure!(
        out.len() == images.len() * CLASSES,
        "{} logits for {} images",
        out.len(),
        images.len()
    );
    Ok(out)
}

fn compare(backend: String, logits: &[f32], reference: &[f32], labels: &[u8]) -> BackendCheck {
    let rows = logits
        .chunks_exact(CLASSES)
        .zip(reference.chunks_exact(CLASSES));
    let (mut agree, mut correct, mut worst) = (0usize, 0usize, 0f32);
    for ((row, expected), &label) in rows.zip(labels) {
        let top = argmax(row);
        agree += usize::from(top == argmax(expected));
        correct += usize::from(top == label as usize);
        for (a, b) in row.iter().zip(expected) {
            worst = worst.max((a - b).abs());
        }
    }
    let n = labels.len().max(1) as f64;
    BackendCheck {
        backend,
        accuracy: correct as f64 / n,
        top1_agreement: agree as f64 / n,
        max_logit_difference: worst,
    }
}
