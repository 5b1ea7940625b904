//! The image classifier's own logic, free of any host API:
//!
//! - [`spec`]: what a model needs, read from its `model.toml` (tensor names,
//!   how to prepare an image, where the labels are);
//! - [`preprocess`]: encoded bytes to the model's input tensor (decode, resize the
//!   shorter side, centre-crop, normalise, NCHW or NHWC);
//! - [`postprocess`]: logits to the `k` most probable classes.
//!
//! The `image-classify` function runs this inside the sandbox; the benchmark's
//! native baseline (`bench/`) runs the very same code natively, so comparing the
//! two measures what the sandbox costs and nothing else.

pub mod postprocess;
pub mod preprocess;
pub mod spec;

#[cfg(test)]
mod hostile_tests;

pub use postprocess::{Prediction, softmax, top_k};
pub use preprocess::{
    InputTensor, MAX_PIXELS, MAX_SIDE, check_dimensions, decode, decode_for, looks_like_image,
    to_tensor,
};
pub use spec::{ClassifierSpec, Color, Layout, Preprocess, label_of, parse_labels};

/// What went wrong, and whose fault it is: the request's (a bad image) or the
/// model's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The body is not an image we can decode.
    BadImage(String),
    /// The image is larger than we decode (its header says so, before any
    /// pixel is allocated): the request's fault too, but "send a smaller one".
    TooLarge(String),
    /// The model is not an image classifier (its `model.toml` has no `[preprocess]`).
    NotAClassifier(String),
    /// The model's `model.toml` is invalid for this use.
    Config(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadImage(m)
            | Error::TooLarge(m)
            | Error::NotAClassifier(m)
            | Error::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
