//! `wasi-infer-train prune`: gradual magnitude pruning. From the trained
//! network's checkpoint, the smallest weights of each pruned layer are set
//! to zero, a larger share at each step, and the network is fine-tuned
//! after each step with those weights held at zero. The sparsity is chosen
//! by measuring: the last step whose validation accuracy stays within
//! `--max-drop` of the unpruned network's.
//!
//! The first convolution (9 weights a filter) and the logits layer are left
//! dense, as is usual: they are a sliver of the weights, and pruning them
//! costs the most accuracy.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::module::Param;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::export::{self, Folder};
use crate::fit::{self, AfterStep, Schedule};
use crate::model::{Net, Widths};
use crate::train::{CHECKPOINT, Record, load_checkpoint, prepare};
use crate::{Paths, check};

#[derive(clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    paths: Paths,
    /// The trained model folder (with its training.json and checkpoint.bpk).
    #[arg(long, default_value = "models/fashion-mnist-cnn")]
    from: PathBuf,
    /// The model folder to write.
    #[arg(long, default_value = "models/fashion-mnist-cnn-pruned")]
    out: PathBuf,
    /// The sparsities to try, in order: the share of weights set to zero in
    /// each pruned layer.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.7,0.8,0.9,0.95")]
    steps: Vec<f64>,
    /// Fine-tuning epochs after each step.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// The learning rate of fine-tuning (cosine decay over each step's epochs).
    #[arg(long, default_value_t = 0.01)]
    learning_rate: f64,
    /// The most validation accuracy a step may lose against the unpruned
    /// network, in percentage points.
    #[arg(long, default_value_t = 0.5)]
    max_drop: f64,
}

/// The masks of the pruned layers: 1 keeps a weight, 0 holds it at zero.
struct Masks {
    convs: Vec<Option<Tensor<4>>>,
    hidden: Tensor<2>,
}

impl Masks {
    /// Zeroes the `sparsity` smallest-magnitude weights of each pruned layer.
    fn new(net: &Net, sparsity: f64) -> Self {
        let convs = net
            .convs
            .iter()
            .enumerate()
            .map(|(i, conv)| (i > 0).then(|| mask(conv.weight.val(), sparsity)))
            .collect();
        Masks {
            convs,
            hidden: mask(net.hidden.weight.val(), sparsity),
        }
    }
}

/// 1 where `|w|` is above the `sparsity` quantile of the layer, 0 elsewhere.
fn mask<const D: usize>(weights: Tensor<D>, sparsity: f64) -> Tensor<D> {
    let mut magnitudes: Vec<f32> = weights.clone().abs().into_data().iter::<f32>().collect();
    magnitudes.sort_by(f32::total_cmp);
    let cut = ((magnitudes.len() as f64 * sparsity) as usize).min(magnitudes.len() - 1);
    let threshold = magnitudes[cut];
    weights.abs().greater_elem(threshold).float().detach()
}

fn masked<const D: usize>(param: Param<Tensor<D>>, mask: &Tensor<D>) -> Param<Tensor<D>> {
    // A fresh leaf: the zeros are data, not a step of the graph.
    param.map(|w| (w * mask.clone()).detach().require_grad())
}

impl AfterStep for Masks {
    fn apply(&self, mut net: Net) -> Net {
        for (conv, mask) in net.convs.iter_mut().zip(&self.convs) {
            if let Some(mask) = mask {
                conv.weight = masked(conv.weight.clone(), mask);
            }
        }
        net.hidden.weight = masked(net.hidden.weight.clone(), &self.hidden);
        net
    }
}

/// The share of all weights (convolutions and dense layers) that are zero.
fn overall_sparsity(net: &Net) -> f64 {
    let mut weights: Vec<f32> = Vec::new();
    for conv in &net.convs {
        weights.extend(conv.weight.val().into_data().iter::<f32>());
    }
    for dense in [&net.hidden, &net.logits] {
        weights.extend(dense.weight.val().into_data().iter::<f32>());
    }
    weights.iter().filter(|&&w| w == 0.0).count() as f64 / weights.len().max(1) as f64
}

struct Step {
    sparsity: f64,
    overall: f64,
    validation_accuracy: f64,
}

pub fn run(args: PruneArgs) -> anyhow::Result<()> {
    let record = Record::read(&args.from)?;
    // The same seed and limit give the same split as training had.
    let mut rng = ChaCha8Rng::seed_from_u64(record.seed);
    let data = prepare(&args.paths.data, record.limit, &mut rng)?;
    let device = Device::flex().autodiff();
    device.seed(record.seed);
    let widths = Widths {
        block1: record.widths[0],
        block2: record.widths[1],
        hidden: record.widths[2],
    };
    let mut net = load_checkpoint(widths, &args.from.join(CHECKPOINT), &device)?;
    let (_, baseline) = fit::score(&net.valid(), &data.validation, &device);
    eprintln!("unpruned: validation accuracy {:.2}%", 100.0 * baseline);
    let schedule = Schedule {
        max_epochs: args.epochs,
        patience: args.epochs,
        learning_rate: args.learning_rate,
        ..serde_json::from_value(record.schedule.clone())
            .context("the training record's schedule")?
    };

    let mut steps: Vec<Step> = Vec::new();
    let mut chosen: Option<(Net, f64)> = None;
    for &sparsity in &args.steps {
        if !(0.0..1.0).contains(&sparsity) {
            bail!("a sparsity is a share from 0 to 1 (excluded), not {sparsity}");
        }
        let masks = Masks::new(&net, sparsity);
        let pruned = masks.apply(net.clone());
        let tuned = fit::train(
            pruned,
            &data.train,
            &data.validation,
            &schedule,
            &masks,
            &mut rng,
            &device,
        )?;
        let (_, accuracy) = fit::score(&tuned.net.valid(), &data.validation, &device);
        let overall = overall_sparsity(&tuned.net);
        eprintln!(
            "sparsity {:.0}% of the pruned layers ({:.1}% of all weights): validation accuracy {:.2}%",
            100.0 * sparsity,
            100.0 * overall,
            100.0 * accuracy
        );
        steps.push(Step {
            sparsity,
            overall,
            validation_accuracy: accuracy,
        });
        if 100.0 * (baseline - accuracy) > args.max_drop {
            eprintln!("more than {} points lost: stopping", args.max_drop);
            break;
        }
        // A copy of its own (see fit::train): the next step's fine-tuning
        // must not move this one's running statistics.
        chosen = Some((tuned.net.valid(), sparsity));
        net = tuned.net;
    }
    let Some((net, sparsity)) = chosen else {
        bail!(
            "even the first step loses more than {} points of validation accuracy",
            args.max_drop
        );
    };
    let net = net.valid();
    let reference = fit::logits(&net, &data.test, &device);
    let (_, test_accuracy) = fit::score(&net, &data.test, &device);
    eprintln!(
        "kept sparsity {:.0}%: test accuracy {:.2}%",
        100.0 * sparsity,
        100.0 * test_accuracy
    );

    let model = export::onnx(
        &net,
        &[
            (
                "pruning",
                format!("wasi-infer-train prune: sparsity {sparsity}"),
            ),
            ("test_accuracy", format!("{test_accuracy:.4}")),
        ],
    );
    let folder = Folder {
        description: "Fashion-MNIST CNN, 10 clothing classes (fp32, magnitude-pruned)",
        readme: readme(
            &args,
            &record,
            baseline,
            &steps,
            sparsity,
            overall_sparsity(&net),
            test_accuracy,
        ),
    };
    export::write_folder(&args.out, &model, &folder)?;
    eprintln!("wrote {}", args.out.display());
    check::backends(&args.out, &data.test, &reference, false, &check::FP32)?;
    Ok(())
}

fn readme(
    args: &PruneArgs,
    record: &Record,
    baseline: f64,
    steps: &[Step],
    sparsity: f64,
    overall: f64,
    test_accuracy: f64,
) -> String {
    let mut text = format!(
        r#"# fashion-mnist-cnn-pruned

`fashion-mnist-cnn` ({from}) with {percent:.0}% of the weights of its pruned layers set to zero
({overall:.1}% of all its weights), made by this repository's `wasi-infer-train prune`.

- **Licence:** MIT (the Fashion-MNIST data, Zalando Research).
- **How:** gradual magnitude pruning from the trained network's checkpoint: at each step the
  smallest-magnitude weights of convolutions 2-4 and the hidden dense layer are zeroed (the
  first convolution and the logits layer stay dense), then the network is fine-tuned for
  {epochs} epoch(s) (SGD as in training, learning rate {lr} with cosine decay, the same
  augmentation and split, seed {seed}) with those weights held at zero. The sparsity kept is
  the last step within {max_drop} points of the unpruned network's validation accuracy
  ({baseline:.2}%).
- **Interface:** the same as `fashion-mnist-cnn`. The ONNX file is dense (zeros are stored):
  the backends here run unstructured sparsity as dense, so it is as large and as fast as the
  unpruned model; it compresses better (gzip) and shows what the weights can lose.
- **Test accuracy** (the independent test split): {test:.2}%.

| sparsity of pruned layers | of all weights | validation accuracy |
|---|---|---|
"#,
        from = args.from.display(),
        percent = 100.0 * sparsity,
        overall = 100.0 * overall,
        epochs = args.epochs,
        lr = args.learning_rate,
        seed = record.seed,
        max_drop = args.max_drop,
        baseline = 100.0 * baseline,
        test = 100.0 * test_accuracy,
    );
    for step in steps {
        let _ = writeln!(
            text,
            "| {:.0}% | {:.1}% | {:.2}% |",
            100.0 * step.sparsity,
            100.0 * step.overall,
            100.0 * step.validation_accuracy
        );
    }
    text
}
