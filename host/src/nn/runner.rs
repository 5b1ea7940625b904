//! What every backend is to the host, and what backends share: a loaded
//! model is a [`Runner`]; [`order_inputs`] checks a guest's inputs against
//! the model before a backend sees them.

use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::cancel::Cancel;
use super::interface::{DataType, ModelInterface, format_shape};
use super::tensor::{ElementType, checked_shape, invalid_input};

/// A model loaded by a backend: runs named inputs to named outputs.
pub trait Runner: Send + Sync + 'static {
    /// The model's inputs and outputs, as the model states them.
    fn interface(&self) -> &ModelInterface;
    /// Runs the model, blocking the calling thread. Every input must be given
    /// once, by name; all outputs are returned, in the model's order. When
    /// `cancel` fires, the backend stops as soon as it can and returns an error.
    fn run(
        &self,
        inputs: Vec<NamedTensor>,
        cancel: &Cancel,
    ) -> Result<Vec<NamedTensor>, BackendError>;
    /// Waits for work the backend still does after loading (ONNX Runtime builds
    /// its extra sessions while the model already serves), e.g. so that timing
    /// trials do not share the cores with it.
    fn settle(&self) {}
}

/// Hands memory freed after a large request back to the system: glibc keeps
/// freed heap memory for reuse, so what a backend releases (ONNX Runtime's
/// arena after it shrinks, OpenVINO's buffers) would otherwise stay resident.
/// Costs a walk of the heap: only after a large request.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A native library named by an environment variable (`ORT_DYLIB_PATH`,
/// `OPENVINO_DYLIB_PATH`): `None` when it is not set, an error when it names
/// no file.
pub fn library_from_env(variable: &str) -> Option<Result<std::path::PathBuf, String>> {
    let path = std::path::PathBuf::from(std::env::var_os(variable)?);
    Some(if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{variable}={} does not exist", path.display()))
    })
}

/// The names of a model's inputs, in the model's order.
pub fn input_names(interface: &ModelInterface) -> Vec<String> {
    interface.inputs.iter().map(|t| t.name.clone()).collect()
}

/// A guest's input, checked against the model: its dimensions as `usize`.
pub struct CheckedInput {
    pub name: String,
    pub tensor: Tensor,
    pub dims: Vec<usize>,
}

/// Checks that the guest named each of the model's inputs exactly once and
/// nothing else, each with the model's element type, a shape the model takes
/// and as many bytes as that shape needs; returns them in the model's order.
pub fn order_inputs(
    interface: &ModelInterface,
    mut given: Vec<NamedTensor>,
) -> Result<Vec<CheckedInput>, BackendError> {
    let expected = &interface.inputs;
    if let Some(extra) = given
        .iter()
        .find(|t| !expected.iter().any(|e| e.name == t.name))
    {
        return Err(invalid_input(format!(
            "the model has no input named {:?}; its inputs are {:?}",
            extra.name,
            input_names(interface)
        )));
    }
    let mut ordered = Vec::with_capacity(expected.len());
    for info in expected {
        let name = &info.name;
        let position = given
            .iter()
            .position(|t| &t.name == name)
            .ok_or_else(|| invalid_input(format!("input {name:?} is missing")))?;
        let NamedTensor { name, tensor } = given.swap_remove(position);
        if given.iter().any(|t| t.name == name) {
            return Err(invalid_input(format!("input {name:?} is given twice")));
        }
        let ty = ElementType::from_wasi(tensor.ty);
        if info.ty != DataType::Known(ty) {
            return Err(invalid_input(format!(
                "input {name:?} is {ty}, but the model takes {}",
                info.ty
            )));
        }
        let dims = checked_shape(&name, &tensor)?;
        if let Some(shape) = &info.shape {
            let fits = dims.len() == shape.len()
                && dims
                    .iter()
                    .zip(shape)
                    .all(|(&d, &want)| want < 0 || d as i64 == want);
            if !fits {
                return Err(invalid_input(format!(
                    "input {name:?} has shape {dims:?}, but the model takes {}",
                    format_shape(shape)
                )));
            }
        }
        if dims.contains(&0) {
            return Err(invalid_input(format!(
                "input {name:?} has an empty dimension: {dims:?}"
            )));
        }
        ordered.push(CheckedInput { name, tensor, dims });
    }
    Ok(ordered)
}
