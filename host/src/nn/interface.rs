//! A model's interface as the model itself states it (names, element types,
//! shapes), read by each backend at load, and its check against `model.toml`.

use std::fmt;

use serde::Serialize;

use super::model_config::TensorSpec;
use super::tensor::ElementType;

/// The element type of a tensor in a model: one wasi-nn names, or another
/// (say int8 or bool) that a guest cannot exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    Known(ElementType),
    Other(String),
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Known(ty) => ty.fmt(f),
            DataType::Other(name) => f.write_str(name),
        }
    }
}

impl Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: DataType,
    /// Dimensions, `-1` for a dynamic one; `None` when the rank itself is unknown.
    pub shape: Option<Vec<i64>>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.name, self.ty)?;
        match &self.shape {
            Some(shape) => f.write_str(&format_shape(shape)),
            None => f.write_str("[...]"),
        }
    }
}

/// `[1, ?, 384]`: dynamic dimensions as `?`.
pub fn format_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The inputs and outputs of a loaded model, in the model's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelInterface {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

impl ModelInterface {
    /// The interface with the dimensions `model.toml` pins where the model
    /// leaves them dynamic: what requests must send, and get back.
    pub fn with_pins(&self, inputs: &[TensorSpec], outputs: &[TensorSpec]) -> ModelInterface {
        let pin = |tensors: &[TensorInfo], specs: &[TensorSpec]| -> Vec<TensorInfo> {
            tensors
                .iter()
                .map(|info| {
                    let spec = specs.iter().find(|s| s.name == info.name);
                    let shape = match (&info.shape, spec) {
                        (Some(model), Some(spec)) if model.len() == spec.shape.len() => Some(
                            model
                                .iter()
                                .zip(&spec.shape)
                                .map(|(&m, &pin)| if m >= 0 { m } else { pin })
                                .collect(),
                        ),
                        (None, Some(spec)) => Some(spec.shape.clone()),
                        (shape, _) => shape.clone(),
                    };
                    TensorInfo {
                        shape,
                        ..info.clone()
                    }
                })
                .collect()
        };
        ModelInterface {
            inputs: pin(&self.inputs, inputs),
            outputs: pin(&self.outputs, outputs),
        }
    }

    /// Checks what `model.toml` declares against the model. `model.toml` may
    /// pin a dimension the model leaves dynamic (what the function sends), but
    /// not leave dynamic or change one the model fixes.
    pub fn check(&self, inputs: &[TensorSpec], outputs: &[TensorSpec]) -> Result<(), String> {
        check_tensors(inputs, &self.inputs, "input")?;
        check_tensors(outputs, &self.outputs, "output")
    }
}

fn check_tensors(declared: &[TensorSpec], actual: &[TensorInfo], what: &str) -> Result<(), String> {
    let names = || actual.iter().map(|t| t.name.as_str()).collect::<Vec<_>>();
    for spec in declared {
        let Some(found) = actual.iter().find(|t| t.name == spec.name) else {
            return Err(format!(
                "model.toml declares {what} {:?}, but the model's {what}s are {:?}",
                spec.name,
                names()
            ));
        };
        if found.ty != DataType::Known(spec.ty) {
            return Err(format!(
                "model.toml declares {what} {:?} as {}, but the model has {}",
                spec.name, spec.ty, found.ty
            ));
        }
        if let Some(shape) = &found.shape {
            let fits = shape.len() == spec.shape.len()
                && shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&model, &toml)| model < 0 || model == toml);
            if !fits {
                return Err(format!(
                    "model.toml declares {what} {:?} with shape {}, but the model has {}",
                    spec.name,
                    format_shape(&spec.shape),
                    format_shape(shape)
                ));
            }
        }
    }
    if declared.len() != actual.len() {
        return Err(format!(
            "model.toml declares {} {what}s, but the model has {}: {:?}",
            declared.len(),
            actual.len(),
            names()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            ty: ElementType::F32,
            shape: shape.to_vec(),
            max_shape: None,
        }
    }

    fn info(name: &str, shape: &[i64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            ty: DataType::Known(ElementType::F32),
            shape: Some(shape.to_vec()),
        }
    }

    #[test]
    fn declared_shapes_may_pin_dynamic_dimensions_only() {
        let model = ModelInterface {
            inputs: vec![info("x", &[-1, 3])],
            outputs: vec![info("y", &[-1, 10])],
        };
        assert!(
            model
                .check(&[spec("x", &[1, 3])], &[spec("y", &[-1, 10])])
                .is_ok()
        );
        let err = model
            .check(&[spec("x", &[1, 4])], &[spec("y", &[-1, 10])])
            .unwrap_err();
        assert!(err.contains("[1, 4]") && err.contains("[?, 3]"), "{err}");
        assert!(
            model
                .check(&[spec("x", &[1, 3, 1])], &[spec("y", &[1, 10])])
                .is_err()
        );
        assert!(
            model
                .check(&[spec("z", &[1, 3])], &[spec("y", &[1, 10])])
                .is_err()
        );
        assert!(model.check(&[spec("x", &[1, 3])], &[]).is_err());
    }
}
