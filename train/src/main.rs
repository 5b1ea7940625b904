//! `wasi-infer-train`: the lifecycle of the served Fashion-MNIST CNN, from
//! the labelled dataset to model folders the server serves.
//!
//! - `train`: clean the data, train a VGG-style CNN with augmentation and
//!   early stopping, export it to ONNX, check it on every backend.
//! - `quantize`: its int8 variant, by ONNX Runtime's static quantiser.
//! - `prune`: its pruned variant, by gradual magnitude pruning with
//!   fine-tuning.

mod augment;
mod check;
mod data;
mod export;
mod fit;
mod model;
mod prune;
mod quantize;
mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Train, prune and quantise the Fashion-MNIST CNN that wasi-infer serves"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the CNN from the dataset and write its model folder.
    Train(train::TrainArgs),
    /// Make the int8 variant of a trained model (static post-training
    /// quantisation, per-channel weights, calibrated on training images).
    Quantize(quantize::QuantizeArgs),
    /// Make a pruned variant of a trained model (magnitude pruning, raised
    /// step by step, with fine-tuning after each step).
    Prune(prune::PruneArgs),
}

/// Where the data and the models are, shared by the commands.
#[derive(clap::Args, Clone)]
pub struct Paths {
    /// The folder of Fashion-MNIST's IDX files (Debian's `dataset-fashion-mnist`).
    #[arg(
        long,
        default_value = "/usr/share/datasets/fashion-mnist",
        env = "FASHION_MNIST_DIR"
    )]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Prune(args) => prune::run(args),
    }
}
