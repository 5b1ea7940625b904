//! `wasi-infer eval`: evaluates a deployed image classifier over HTTP, as a
//! user checks a deployment: a labelled dataset is sent item by item to the
//! server, and what comes back is scored.
//!
//! - [`evaluate`]: the whole of it, from the options to the reports;
//! - [`dataset`]: the labelled items (IDX files, an ImageFolder tree, a CSV);
//! - [`labels`]: class names, and label text to class indices;
//! - [`model_files`]: what a local model repository says of a model;
//! - [`input`]: an item as a request body (an encoded image, or the
//!   preprocessed tensor, made by the classifier's own `image-prep`);
//! - [`client`]: the two protocols (`/classify/<model>`, the Open Inference
//!   Protocol with binary tensors) and the checks before a run;
//! - [`run`]: the requests, `concurrency` at a time, timed;
//! - [`metrics`]: confusion matrix, scikit-learn's classification report,
//!   percentiles;
//! - [`report`]: what a run adds up to, and its forms (terminal table, JSON,
//!   HTML, PNG heatmap, a model card's section).

pub mod client;
pub mod dataset;
pub mod evaluate;
pub mod input;
pub mod labels;
pub mod metrics;
pub mod model_files;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};

pub use client::{Client, ModelInfo, Protocol};
pub use dataset::Dataset;
pub use evaluate::{Notes, Options, evaluate};
pub use report::{Comparison, DeploymentReport, Evaluation};
pub use run::{Progress, RunOutcome};

/// What stops an evaluation before or after its run; each names what it is
/// about (the file, the server, the model) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dataset that cannot be read.
    #[error("dataset {}: {problem}", path.display())]
    Dataset { path: PathBuf, problem: String },
    /// A labels file that cannot be read.
    #[error("labels file {}: {problem}", path.display())]
    Labels { path: PathBuf, problem: String },
    /// No HTTP answer at all: nothing listens, a wrong host, a timeout.
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The server answers, but does not serve the model.
    #[error("the server at {url} has no model {model:?}: {detail}")]
    NoModel {
        url: String,
        model: String,
        detail: String,
    },
    /// The server serves the model, but not as this evaluation needs.
    #[error("{url}, model {model:?}: {problem}")]
    Server {
        url: String,
        model: String,
        problem: String,
    },
    /// The model's description (its model.toml, its input) does not allow
    /// preparing its input.
    #[error("model {model:?}: {problem}")]
    Model { model: String, problem: String },
    /// An output that cannot be written.
    #[error("cannot write {}: {problem}", path.display())]
    Write { path: PathBuf, problem: String },
}

impl Error {
    pub(crate) fn dataset(path: &Path, problem: impl Into<String>) -> Self {
        Self::Dataset {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn write(path: &Path, problem: impl std::fmt::Display) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            problem: problem.to_string(),
        }
    }
}
