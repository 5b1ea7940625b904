//! How large one inference's inputs may be, checked before a model runs.
//!
//! A request chooses a model's dynamic dimensions, and a model's work and
//! memory grow with them: all-MiniLM-L6-v2 given three INT64 inputs of
//! [512, 256] (3 MiB) took 22 s of CPU and 5.7 GB on ONNX Runtime, as its
//! attention grows with batch x heads x sequence². So every input is held to:
//! - the dimensions `model.toml` pins (where the model itself leaves them
//!   dynamic): what the function was written for, and what tract optimised;
//! - a bound on each dynamic dimension: `max_shape` in `[[inputs]]`, and for
//!   the first dimension of an input of rank 2 or more (the batch) also
//!   `[limits] max_batch`, else the server's `--max-batch`;
//! - a bound on its elements: `[limits] max_elements`, else the product of
//!   the per-dimension bounds when every dimension has one, else the
//!   server's `--max-input-elements`.
//!
//! A dimension that does not fit what the model takes is `invalid-argument`;
//! one past a bound is `too-large`, whose message names the bound and where it
//! is set, so that the client (or the model's author) knows what to change.

use std::fmt;

use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::interface::{ModelInterface, TensorInfo, format_shape};
use super::model_config::ModelConfig;
use super::runner::CheckedInput;
use super::tensor::{invalid_input, too_large_input};

/// The server's bounds for models whose `model.toml` sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundDefaults {
    /// The largest batch (`--max-batch`).
    pub max_batch: u64,
    /// Elements of one input tensor (`--max-input-elements`).
    pub max_input_elements: u64,
}

impl Default for BoundDefaults {
    fn default() -> Self {
        Self {
            max_batch: 64,
            // 16 Mi elements: 64 MiB of f32, the default --max-tensor-size.
            max_input_elements: 16 << 20,
        }
    }
}

/// Where a bound comes from, for the message that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    MaxShape,
    MaxBatch,
    ServerMaxBatch,
    MaxElements,
    Derived,
    ServerMaxElements,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::MaxShape => "max_shape in its model.toml",
            Source::MaxBatch => "[limits] max_batch in its model.toml",
            Source::ServerMaxBatch => "the server's --max-batch",
            Source::MaxElements => "[limits] max_elements in its model.toml",
            Source::Derived => "the bounds on its dimensions",
            Source::ServerMaxElements => "the server's --max-input-elements",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    max: u64,
    source: Source,
}

/// One input's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InputBound {
    name: String,
    /// The shape the model takes, with `model.toml`'s pins; `-1` is dynamic.
    /// `None` when neither the model nor `model.toml` states a rank.
    shape: Option<Vec<i64>>,
    /// A bound for each dynamic dimension, where there is one.
    dims: Vec<Option<Bound>>,
    elements: Bound,
}

/// The bounds of every input of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputBounds {
    model: String,
    inputs: Vec<InputBound>,
}

impl InputBounds {
    /// The bounds of model `model`, from what the model states (`interface`),
    /// its `model.toml` and the server's defaults.
    pub fn new(
        model: &str,
        interface: &ModelInterface,
        config: &ModelConfig,
        defaults: BoundDefaults,
    ) -> Self {
        let pinned = interface.with_pins(&config.inputs, &config.outputs);
        let inputs = pinned
            .inputs
            .into_iter()
            .map(|info| {
                let spec = config.inputs.iter().find(|s| s.name == info.name);
                let shape = info.shape;
                let max_shape = spec.and_then(|s| s.max_shape.as_deref());
                let dims: Vec<Option<Bound>> = shape
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, &d)| {
                        if d >= 0 {
                            return None;
                        }
                        let own = max_shape
                            .and_then(|m| m.get(i))
                            .and_then(|&m| u64::try_from(m).ok())
                            .map(|max| Bound {
                                max,
                                source: Source::MaxShape,
                            });
                        let is_batch = i == 0 && shape.as_ref().is_some_and(|s| s.len() >= 2);
                        let batch = is_batch.then_some(match config.limits.max_batch {
                            Some(max) => Bound {
                                max,
                                source: Source::MaxBatch,
                            },
                            None => Bound {
                                max: defaults.max_batch,
                                source: Source::ServerMaxBatch,
                            },
                        });
                        // The tighter of the two, when both apply.
                        match (own, batch) {
                            (Some(a), Some(b)) => Some(if a.max <= b.max { a } else { b }),
                            (a, b) => a.or(b),
                        }
                    })
                    .collect();
                let derived = shape.as_ref().and_then(|shape| {
                    shape
                        .iter()
                        .zip(&dims)
                        .try_fold(1u64, |product, (&d, bound)| {
                            let most = match bound {
                                Some(bound) => bound.max,
                                None => u64::try_from(d).ok()?,
                            };
                            product.checked_mul(most)
                        })
                });
                let elements = match (config.limits.max_elements, derived) {
                    (Some(max), _) => Bound {
                        max,
                        source: Source::MaxElements,
                    },
                    (None, Some(max)) => Bound {
                        max,
                        source: Source::Derived,
                    },
                    (None, None) => Bound {
                        max: defaults.max_input_elements,
                        source: Source::ServerMaxElements,
                    },
                };
                InputBound {
                    name: info.name,
                    shape,
                    dims,
                    elements,
                }
            })
            .collect();
        Self {
            model: model.to_string(),
            inputs,
        }
    }

    /// Triton's `max_batch_size` for the model: when the first dimension of
    /// every input (of rank 2 or more, as a batch is bounded above) and of
    /// every output is dynamic, that dimension is a batch and this is the
    /// largest one the bounds let through; otherwise 0 (no batch dimension:
    /// a pin such as `shape = [1, 3, 224, 224]` fixes it). The outputs are
    /// the model's, with their pins.
    pub fn max_batch_size(&self, outputs: &[TensorInfo]) -> u64 {
        let dynamic_first = |shape: &Option<Vec<i64>>| {
            shape
                .as_ref()
                .and_then(|s| s.first())
                .is_some_and(|&d| d < 0)
        };
        if self.inputs.is_empty() || !outputs.iter().all(|o| dynamic_first(&o.shape)) {
            return 0;
        }
        self.inputs
            .iter()
            .map(|input| match (&input.shape, input.dims.first()) {
                (Some(shape), Some(Some(bound))) if shape.len() >= 2 && shape[0] < 0 => {
                    Some(bound.max)
                }
                _ => None,
            })
            .try_fold(u64::MAX, |most, bound| Some(most.min(bound?)))
            .unwrap_or(0)
    }

    /// Checks the inputs of one inference. Inputs the model does not have
    /// are left to the backend, which names the model's inputs.
    pub fn check(&self, inputs: &[NamedTensor]) -> Result<(), BackendError> {
        for given in inputs {
            let Some(bound) = self.inputs.iter().find(|b| b.name == given.name) else {
                continue;
            };
            self.check_one(bound, &given.tensor.dimensions)?;
        }
        Ok(())
    }

    fn check_one(&self, bound: &InputBound, dims: &[u32]) -> Result<(), BackendError> {
        let name = &bound.name;
        let model = &self.model;
        let shown = || format!("{dims:?}");
        if let Some(shape) = &bound.shape {
            let fits = dims.len() == shape.len()
                && dims
                    .iter()
                    .zip(shape)
                    .all(|(&d, &want)| want < 0 || i64::from(d) == want);
            if !fits {
                return Err(invalid_input(format!(
                    "input {name:?} has shape {}, but model {model} takes {}",
                    shown(),
                    format_shape(shape)
                )));
            }
        }
        for (i, (&d, limit)) in dims.iter().zip(&bound.dims).enumerate() {
            if let Some(Bound { max, source }) = limit
                && u64::from(d) > *max
            {
                return Err(too_large_input(format!(
                    "input {name:?} has shape {}: dimension {i} may be at most {max} \
                     for model {model} ({source})",
                    shown()
                )));
            }
        }
        // Saturating: a product past u64 is refused all the same.
        let elements = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(u64::from(d)))
            .unwrap_or(u64::MAX);
        let Bound { max, source } = &bound.elements;
        if elements > *max {
            return Err(too_large_input(format!(
                "input {name:?} has shape {} ({elements} elements): at most {max} elements \
                 for model {model} ({source})",
                shown()
            )));
        }
        Ok(())
    }
}

/// Which requests are large for a backend's memory: more input elements (all
/// inputs together) than 64 times the model's trial inputs (a batch of 1, 32
/// elsewhere in a dynamic dimension), e.g. 6144 token ids for a text model
/// of three [batch, sequence] inputs. None is when `model.toml` fixes every
/// dimension: then every request is the same size.
///
/// A backend whose memory keeps the high-water mark of the largest request
/// gives it back after a large one (ONNX Runtime's arena, OpenVINO's
/// compiled model); below this, requests keep what they use, so that
/// ordinary traffic does not pay for allocating it again each time.
#[derive(Debug, Clone, Copy)]
pub struct LargeRequests {
    above: Option<u64>,
}

impl LargeRequests {
    pub fn of(config: &ModelConfig) -> Self {
        const TIMES_TRIAL: u64 = 64;
        if config
            .inputs
            .iter()
            .all(|spec| spec.concrete_shape().is_some())
        {
            return Self { above: None };
        }
        let trial: u64 = config
            .inputs
            .iter()
            .map(|spec| {
                spec.trial_shape()
                    .iter()
                    .fold(1u64, |n, &d| n.saturating_mul(d as u64))
            })
            .fold(0u64, u64::saturating_add);
        Self {
            above: Some(trial.saturating_mul(TIMES_TRIAL)),
        }
    }

    /// Whether these (checked) inputs make a large request.
    pub fn includes(&self, inputs: &[CheckedInput]) -> bool {
        let Some(above) = self.above else {
            return false;
        };
        let elements: u64 = inputs
            .iter()
            .map(|t| t.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64)))
            .fold(0u64, u64::saturating_add);
        elements > above
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::interface::{DataType, TensorInfo};
    use crate::nn::tensor::{ElementType, InvalidInput, TooLargeInput};
    use wasmtime_wasi_nn::Tensor;
    use wasmtime_wasi_nn::wit::TensorType;

    fn config(text: &str) -> ModelConfig {
        toml::from_str(&format!(
            "format = \"onnx\"\nfile = \"m.onnx\"\n{text}\n\
             [[outputs]]\nname = \"y\"\ntype = \"f32\"\nshape = [-1]\n"
        ))
        .unwrap()
    }

    fn model(shapes: &[(&str, &[i64])]) -> ModelInterface {
        ModelInterface {
            inputs: shapes
                .iter()
                .map(|(name, shape)| TensorInfo {
                    name: name.to_string(),
                    ty: DataType::Known(ElementType::I64),
                    shape: Some(shape.to_vec()),
                })
                .collect(),
            outputs: Vec::new(),
        }
    }

    fn input(name: &str, dims: &[u32]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            // The data is not looked at: bounds are checked on dimensions.
            tensor: Tensor::new(dims.to_vec(), TensorType::I64, Vec::new()),
        }
    }

    fn error(result: Result<(), BackendError>) -> (bool, String) {
        let BackendError::BackendAccess(e) = result.unwrap_err() else {
            panic!("not a backend access error")
        };
        let too_large = e.is::<TooLargeInput>();
        assert!(too_large || e.is::<InvalidInput>(), "{e}");
        (too_large, e.to_string())
    }

    const TEXT: &str = "[limits]\nmax_batch = 64\nmax_elements = 16384\n\
        [[inputs]]\nname = \"ids\"\ntype = \"i64\"\nshape = [-1, -1]\nmax_shape = [-1, 512]\n";

    #[test]
    fn a_text_model_bounds_batch_sequence_and_elements() {
        let bounds = InputBounds::new(
            "text",
            &model(&[("ids", &[-1, -1])]),
            &config(TEXT),
            BoundDefaults::default(),
        );
        assert!(bounds.check(&[input("ids", &[64, 256])]).is_ok());
        assert!(bounds.check(&[input("ids", &[32, 512])]).is_ok());
        let (too_large, message) = error(bounds.check(&[input("ids", &[512, 256])]));
        assert!(too_large);
        assert!(
            message.contains("dimension 0 may be at most 64")
                && message.contains("[limits] max_batch"),
            "{message}"
        );
        let (_, message) = error(bounds.check(&[input("ids", &[1, 513])]));
        assert!(
            message.contains("dimension 1 may be at most 512"),
            "{message}"
        );
        assert!(message.contains("max_shape"), "{message}");
        let (_, message) = error(bounds.check(&[input("ids", &[64, 512])]));
        assert!(message.contains("at most 16384 elements"), "{message}");
        // Unknown inputs are the backend's to refuse.
        assert!(bounds.check(&[input("other", &[1 << 30])]).is_ok());
    }

    #[test]
    fn pins_are_checked_and_defaults_derived_from_fixed_dimensions() {
        let text = "[[inputs]]\nname = \"x\"\ntype = \"f32\"\nshape = [1, 3, 224, 224]\n";
        let bounds = InputBounds::new(
            "image",
            &model(&[("x", &[-1, 3, 224, 224])]),
            &config(text),
            BoundDefaults::default(),
        );
        assert!(bounds.check(&[input("x", &[1, 3, 224, 224])]).is_ok());
        let (too_large, message) = error(bounds.check(&[input("x", &[2, 3, 224, 224])]));
        assert!(!too_large, "a pin is what the model takes: {message}");
        assert!(message.contains("takes [1, 3, 224, 224]"), "{message}");

        // Unpinned: the batch takes the server's bound, the elements follow.
        let text = "[[inputs]]\nname = \"x\"\ntype = \"f32\"\nshape = [-1, 3, 224, 224]\n";
        let defaults = BoundDefaults {
            max_batch: 4,
            max_input_elements: 10,
        };
        let bounds = InputBounds::new(
            "image",
            &model(&[("x", &[-1, 3, 224, 224])]),
            &config(text),
            defaults,
        );
        assert!(bounds.check(&[input("x", &[4, 3, 224, 224])]).is_ok());
        let (_, message) = error(bounds.check(&[input("x", &[5, 3, 224, 224])]));
        assert!(message.contains("the server's --max-batch"), "{message}");
    }

    #[test]
    fn a_batch_dimension_is_a_dynamic_first_one_everywhere() {
        let output = |shape: &[i64]| TensorInfo {
            name: "y".into(),
            ty: DataType::Known(ElementType::F32),
            shape: Some(shape.to_vec()),
        };
        let defaults = BoundDefaults {
            max_batch: 8,
            max_input_elements: 1 << 30,
        };
        let unpinned = "[[inputs]]\nname = \"x\"\ntype = \"f32\"\nshape = [-1, 3, 224, 224]\n";
        let model_x = model(&[("x", &[-1, 3, 224, 224])]);
        let bounds = InputBounds::new("m", &model_x, &config(unpinned), defaults);
        assert_eq!(bounds.max_batch_size(&[output(&[-1, 1000])]), 8);
        // An output without the batch: none.
        assert_eq!(bounds.max_batch_size(&[output(&[1000])]), 0);
        // [limits] max_batch is the model's own bound.
        let own = format!("{unpinned}[limits]\nmax_batch = 2\n");
        let bounds = InputBounds::new("m", &model_x, &config(&own), defaults);
        assert_eq!(bounds.max_batch_size(&[output(&[-1, 1000])]), 2);
        // Pinned to 1: no batch dimension.
        let pinned = "[[inputs]]\nname = \"x\"\ntype = \"f32\"\nshape = [1, 3, 224, 224]\n";
        let bounds = InputBounds::new("m", &model_x, &config(pinned), defaults);
        assert_eq!(bounds.max_batch_size(&[output(&[-1, 1000])]), 0);
    }

    #[test]
    fn large_requests_are_64_times_the_trial_inputs_and_never_of_fixed_shapes() {
        let checked = |dims: &[usize]| CheckedInput {
            name: "ids".into(),
            tensor: Tensor::new(Vec::new(), TensorType::I64, Vec::new()),
            dims: dims.to_vec(),
        };
        // Trial: [1, 32] = 32 elements; large above 2048.
        let large = LargeRequests::of(&config(TEXT));
        assert!(!large.includes(&[checked(&[64, 32])]));
        assert!(large.includes(&[checked(&[64, 33])]));
        let text = "[[inputs]]\nname = \"x\"\ntype = \"f32\"\nshape = [1, 3, 224, 224]\n";
        let fixed = LargeRequests::of(&config(text));
        assert!(!fixed.includes(&[checked(&[1, 3, 224, 224])]));
    }

    #[test]
    fn without_bounds_the_server_default_holds_the_elements() {
        let text = "[[inputs]]\nname = \"v\"\ntype = \"f32\"\nshape = [-1]\n";
        let defaults = BoundDefaults {
            max_batch: 4,
            max_input_elements: 1000,
        };
        let bounds = InputBounds::new("audio", &model(&[("v", &[-1])]), &config(text), defaults);
        // A 1-D input has no batch: only the elements are bounded.
        assert!(bounds.check(&[input("v", &[1000])]).is_ok());
        let (_, message) = error(bounds.check(&[input("v", &[1001])]));
        assert!(message.contains("--max-input-elements"), "{message}");
        // A wrong rank is the model's shape, not a bound.
        let (too_large, _) = error(bounds.check(&[input("v", &[2, 2])]));
        assert!(!too_large);
    }
}
