//! The training loop: mini-batch SGD with momentum and weight decay, the
//! learning rate decaying along a cosine, augmentation drawn afresh each
//! epoch, and early stopping: the network is scored on the validation set
//! after every epoch, the best one kept, and training stops once
//! `patience` epochs in a row have not beaten it. The number of epochs is
//! thereby chosen on the validation set, never on the test set.

use std::time::Instant;

use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::augment::augment;
use crate::data::{CLASSES, Images, PIXELS, SIDE, to_unit};
use crate::model::Net;

/// How to train.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// The most epochs to run.
    pub max_epochs: usize,
    /// Epochs without a better validation score before stopping.
    pub patience: usize,
    pub batch: usize,
    /// The learning rate at the start; it decays to 0 over `max_epochs`.
    pub learning_rate: f64,
    pub momentum: f64,
    pub weight_decay: f32,
    pub augment: bool,
}

/// One epoch, as the curve shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub seconds: f64,
}

/// What training made: the best network and every epoch's figures.
pub struct Trained {
    pub net: Net,
    pub best_epoch: usize,
    pub epochs: Vec<Epoch>,
}

/// Something to apply after every optimiser step (pruning keeps its zeros so).
pub trait AfterStep {
    fn apply(&self, net: Net) -> Net;
}

/// Nothing after a step.
pub struct Nothing;

impl AfterStep for Nothing {
    fn apply(&self, net: Net) -> Net {
        net
    }
}

pub fn train(
    mut net: Net,
    train: &Images,
    validation: &Images,
    schedule: &Schedule,
    after_step: &dyn AfterStep,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> anyhow::Result<Trained> {
    let steps_per_epoch = train.len().div_ceil(schedule.batch);
    let mut optimiser = SgdConfig::new()
        .with_momentum(Some(
            // PyTorch's SGD: no dampening.
            MomentumConfig::new()
                .with_momentum(schedule.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(schedule.weight_decay)))
        .init();
    let mut learning_rate = CosineAnnealingLrSchedulerConfig::new(
        schedule.learning_rate,
        schedule.max_epochs * steps_per_epoch,
    )
    .init()
    .map_err(anyhow::Error::msg)?;
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut best: Option<(f64, usize, Net)> = None;
    let mut epochs = Vec::new();
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut batch_pixels = vec![0f32; schedule.batch * PIXELS];

    for epoch in 1..=schedule.max_epochs {
        let started = Instant::now();
        order.shuffle(rng);
        let bar = progress(steps_per_epoch as u64, &format!("epoch {epoch}"));
        let (mut loss_sum, mut correct, mut lr) = (0.0, 0usize, 0.0);
        for chunk in order.chunks(schedule.batch) {
            let n = chunk.len();
            for (slot, &i) in chunk.iter().enumerate() {
                let out = &mut batch_pixels[slot * PIXELS..(slot + 1) * PIXELS];
                if schedule.augment {
                    augment(train.image(i), out, rng);
                } else {
                    out.copy_from_slice(&to_unit(train.image(i)));
                }
            }
            let labels: Vec<i64> = chunk.iter().map(|&i| train.labels[i] as i64).collect();
            let images = Tensor::<4>::from_data(
                TensorData::new(batch_pixels[..n * PIXELS].to_vec(), [n, 1, SIDE, SIDE]),
                device,
            );
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
            let logits = net.forward(images);
            correct += count_correct(logits.clone(), targets.clone());
            let loss = loss_fn.forward(logits, targets);
            loss_sum += loss.clone().into_scalar::<f32>() as f64 * n as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            let rate = learning_rate.step();
            lr = rate.base();
            net = after_step.apply(optimiser.step(rate, net, grads));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (validation_loss, validation_accuracy) = score(&net.valid(), validation, device);
        let figures = Epoch {
            epoch,
            learning_rate: lr,
            train_loss: loss_sum / train.len() as f64,
            train_accuracy: correct as f64 / train.len() as f64,
            validation_loss,
            validation_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        eprintln!(
            "epoch {epoch:>2}: loss {:.4}, train accuracy {:.2}%, validation loss {:.4}, validation accuracy {:.2}% ({:.0} s)",
            figures.train_loss,
            100.0 * figures.train_accuracy,
            figures.validation_loss,
            100.0 * figures.validation_accuracy,
            figures.seconds
        );
        epochs.push(figures);
        if best
            .as_ref()
            .is_none_or(|(score, ..)| validation_accuracy > *score)
        {
            best = Some((validation_accuracy, epoch, net.clone()));
        }
        let best_epoch = best.as_ref().map_or(epoch, |(_, e, _)| *e);
        if epoch - best_epoch >= schedule.patience {
            eprintln!(
                "no better validation accuracy for {} epochs: stopping",
                schedule.patience
            );
            break;
        }
    }
    let (_, best_epoch, net) = best.ok_or_else(|| anyhow::anyhow!("no epoch was run"))?;
    eprintln!("keeping epoch {best_epoch}, the best on the validation set");
    Ok(Trained {
        net: net.train(),
        best_epoch,
        epochs,
    })
}

fn count_correct(logits: Tensor<2>, targets: Tensor<1, Int>) -> usize {
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    predicted.equal(targets).int().sum().into_scalar::<i64>() as usize
}

/// The logits of every image (inference mode: batch normalisation's running
/// statistics, no dropout), `CLASSES` a row.
pub fn logits(net: &Net, images: &Images, device: &Device) -> Vec<f32> {
    let mut out = Vec::with_capacity(images.len() * CLASSES);
    for start in (0..images.len()).step_by(500) {
        let n = (images.len() - start).min(500);
        let pixels = to_unit(&images.pixels[start * PIXELS..(start + n) * PIXELS]);
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, SIDE, SIDE]), device);
        let batch = net.forward(input).into_data();
        out.extend(batch.iter::<f32>());
    }
    out
}

/// Mean cross-entropy and accuracy over `images`, in inference mode.
pub fn score(net: &Net, images: &Images, device: &Device) -> (f64, f64) {
    let logits = logits(net, images, device);
    let (mut loss, mut correct) = (0.0, 0usize);
    for (row, &label) in logits.chunks_exact(CLASSES).zip(&images.labels) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row
            .iter()
            .map(|v| ((v - max) as f64).exp())
            .sum::<f64>()
            .ln()
            + max as f64;
        loss += log_sum - row[label as usize] as f64;
        if argmax(row) == label as usize {
            correct += 1;
        }
    }
    let n = images.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

fn progress(steps: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(steps)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} batches, {per_sec}, ETA {eta}")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}
