//! `wasi-infer-train train`: the whole lifecycle of one training run, from
//! the IDX files to a checked model folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{self, Cleaning, Images};
use crate::export::{self, Folder};
use crate::fit::{self, Epoch, Nothing, Schedule};
use crate::model::{Net, Widths};
use crate::{Paths, check};

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    paths: Paths,
    /// The model folder to write.
    #[arg(long, default_value = "models/fashion-mnist-cnn")]
    out: PathBuf,
    /// The most epochs; early stopping usually ends sooner.
    #[arg(long, default_value_t = 8)]
    max_epochs: usize,
    /// Epochs without a better validation accuracy before stopping.
    #[arg(long, default_value_t = 3)]
    patience: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// The initial learning rate (cosine decay to 0 over --max-epochs).
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f32,
    /// Channels of the first block's convolutions.
    #[arg(long, default_value_t = 16)]
    block1: usize,
    /// Channels of the second block's convolutions.
    #[arg(long, default_value_t = 32)]
    block2: usize,
    /// Units of the hidden dense layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Train without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// The seed of every random choice (split, order, augmentation, weights).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images and N/3 test images (a short
    /// run, e.g. in CI, with --max-epochs 1).
    #[arg(long)]
    limit: Option<usize>,
    /// Fail unless all three backends are there to check the export on.
    #[arg(long)]
    require_all_backends: bool,
}

/// What a model folder's `training.json` records: enough to repeat the run
/// and to see how it went.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub command: String,
    pub seed: u64,
    pub widths: [usize; 3],
    pub limit: Option<usize>,
    pub validation_fraction: f64,
    pub schedule: serde_json::Value,
    pub cleaning: serde_json::Value,
    pub best_epoch: usize,
    pub epochs: serde_json::Value,
    pub test_accuracy: f64,
    pub seconds: f64,
}

impl Record {
    /// The record in the model folder `dir`, which `quantize` and `prune`
    /// start from (its seed and limit give them the same split).
    pub fn read(dir: &Path) -> anyhow::Result<Record> {
        let path = dir.join(RECORD);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The share of the cleaned training images held out for validation.
pub const VALIDATION_FRACTION: f64 = 0.1;
/// The burn checkpoint in a model folder, which pruning continues from.
pub const CHECKPOINT: &str = "checkpoint.bpk";
/// The training record in a model folder.
pub const RECORD: &str = "training.json";

/// The data as training sees it: cleaned, limited, split.
pub struct Prepared {
    pub train: Images,
    pub validation: Images,
    pub test: Images,
    pub cleaning: Cleaning,
}

/// Reads, cleans and splits the dataset; the same `seed` and `limit` give
/// the same split (pruning relies on it to fine-tune on the same images).
pub fn prepare(dir: &Path, limit: Option<usize>, rng: &mut ChaCha8Rng) -> anyhow::Result<Prepared> {
    let dataset = data::read(dir)?;
    let (clean, cleaning) = data::clean(&dataset.train, &dataset.test);
    eprintln!(
        "data: {} training images kept; dropped {} corrupt, {} duplicates, {} labelled two ways, {} also in the test set",
        cleaning.kept,
        cleaning.corrupt,
        cleaning.duplicates,
        cleaning.conflicting,
        cleaning.in_test_set
    );
    let (clean, test) = match limit {
        Some(n) => (
            data::first(&clean, n),
            data::first(&dataset.test, n.div_ceil(3)),
        ),
        None => (clean, dataset.test),
    };
    let (train, validation) = data::split(&clean, VALIDATION_FRACTION, rng);
    eprintln!(
        "data: {} to train on, {} to validate on, {} to test on",
        train.len(),
        validation.len(),
        test.len()
    );
    Ok(Prepared {
        train,
        validation,
        test,
        cleaning,
    })
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let data = prepare(&args.paths.data, args.limit, &mut rng)?;
    let device = Device::flex().autodiff();
    device.seed(args.seed);
    let widths = Widths {
        block1: args.block1,
        block2: args.block2,
        hidden: args.hidden,
    };
    let schedule = Schedule {
        max_epochs: args.max_epochs,
        patience: args.patience,
        batch: args.batch,
        learning_rate: args.learning_rate,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        augment: !args.no_augment,
    };
    let net = Net::new(widths, &device);
    let trained = fit::train(
        net,
        &data.train,
        &data.validation,
        &schedule,
        &Nothing,
        &mut rng,
        &device,
    )?;
    let net = trained.net.valid();
    let reference = fit::logits(&net, &data.test, &device);
    let (_, test_accuracy) = fit::score(&net, &data.test, &device);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "test accuracy {:.2}% on {} images; {:.0} s in all",
        100.0 * test_accuracy,
        data.test.len(),
        seconds
    );

    let record = Record {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        seed: args.seed,
        widths: [widths.block1, widths.block2, widths.hidden],
        limit: args.limit,
        validation_fraction: VALIDATION_FRACTION,
        schedule: serde_json::to_value(&schedule)?,
        cleaning: serde_json::to_value(&data.cleaning)?,
        best_epoch: trained.best_epoch,
        epochs: serde_json::to_value(&trained.epochs)?,
        test_accuracy,
        seconds,
    };
    let model = export::onnx(
        &net,
        &[
            (
                "training",
                "wasi-infer-train train (see training.json)".into(),
            ),
            ("test_accuracy", format!("{test_accuracy:.4}")),
        ],
    );
    let folder = Folder {
        description: "Fashion-MNIST CNN, 10 clothing classes (fp32)",
        readme: readme(&record, &trained.epochs, &data),
    };
    export::write_folder(&args.out, &model, &folder)?;
    std::fs::write(
        args.out.join(RECORD),
        serde_json::to_string_pretty(&record)? + "\n",
    )
    .with_context(|| format!("writing {}", args.out.join(RECORD).display()))?;
    save_checkpoint(&net, &args.out.join(CHECKPOINT))?;
    eprintln!("wrote {}", args.out.display());

    check::backends(
        &args.out,
        &data.test,
        &reference,
        args.require_all_backends,
        &check::FP32,
    )?;
    Ok(())
}

pub fn save_checkpoint(net: &Net, path: &Path) -> anyhow::Result<()> {
    let mut store = BurnpackStore::from_file(path)
        .overwrite(true)
        .auto_extension(false);
    net.save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

pub fn load_checkpoint(widths: Widths, path: &Path, device: &Device) -> anyhow::Result<Net> {
    let mut net = Net::new(widths, device);
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    net.load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(net)
}

/// The model card's body: what the model is and how it was made.
fn readme(record: &Record, epochs: &[Epoch], data: &Prepared) -> String {
    let mut text = String::new();
    let c = &data.cleaning;
    let _ = write!(
        text,
        r#"# fashion-mnist-cnn

A small VGG-style convolutional network for Fashion-MNIST (28x28 grayscale photos of clothing,
10 classes: {labels}), trained by this repository's `wasi-infer-train train`.

- **Licence:** MIT (the Fashion-MNIST data, Zalando Research; the model is trained on it here).
- **Data:** the 60,000-image training split of Debian's `dataset-fashion-mnist` package, cleaned:
  {kept} kept; dropped {corrupt} corrupt, {duplicates} duplicates, {conflicting} labelled two
  ways and {in_test} also in the test set. {validation:.0}% held out for validation.
- **Network:** conv3x3({b1})-BN-ReLU, conv3x3({b1})-BN-ReLU, max-pool, conv3x3({b2})-BN-ReLU,
  conv3x3({b2})-BN-ReLU, max-pool, dense({hidden})-ReLU-dropout(0.2), dense(10). He
  initialisation. Batch normalisation is folded into the convolutions in the ONNX file.
- **Training:** SGD, momentum {momentum}, weight decay {wd}, mini-batches of {batch}, learning
  rate {lr} decaying along a cosine; augmentation (random horizontal flip, random crop with
  2 pixels of padding, rotation up to 10 degrees); early stopping on validation accuracy
  (patience {patience}): epoch {best} of {ran} kept. Seed {seed}; {seconds:.0} s on this
  machine. `training.json` holds every figure; `checkpoint.bpk` the weights before folding
  (`wasi-infer-train prune` continues from it).
- **Command:** `{command}`
- **Interface:** input `input` f32 `[batch, 1, 28, 28]` = pixel / 255; output `logits` f32
  `[batch, 10]` (no softmax).
- **Test accuracy** (the {tests} images of the independent test split, as trained):
  {accuracy:.2}%.

| epoch | learning rate | training loss | training accuracy | validation loss | validation accuracy | seconds |
|---|---|---|---|---|---|---|
"#,
        labels = export::LABELS.join(", "),
        kept = c.kept,
        corrupt = c.corrupt,
        duplicates = c.duplicates,
        conflicting = c.conflicting,
        in_test = c.in_test_set,
        validation = 100.0 * VALIDATION_FRACTION,
        b1 = record.widths[0],
        b2 = record.widths[1],
        hidden = record.widths[2],
        momentum = record.schedule["momentum"],
        wd = record.schedule["weight_decay"],
        batch = record.schedule["batch"],
        lr = record.schedule["learning_rate"],
        patience = record.schedule["patience"],
        best = record.best_epoch,
        ran = epochs.len(),
        seed = record.seed,
        seconds = record.seconds,
        command = record.command,
        tests = data.test.len(),
        accuracy = 100.0 * record.test_accuracy,
    );
    for e in epochs {
        let _ = writeln!(
            text,
            "| {} | {:.4} | {:.4} | {:.2}% | {:.4} | {:.2}% | {:.0} |",
            e.epoch,
            e.learning_rate,
            e.train_loss,
            100.0 * e.train_accuracy,
            e.validation_loss,
            100.0 * e.validation_accuracy,
            e.seconds
        );
    }
    text
}
