//! The ONNX Runtime backend (`ort`, loading the native library at run time).
//!
//! Each model keeps a small pool of sessions, one per core with one intra-op
//! thread each: `ort`'s `Session::run` takes `&mut self`, and on a small machine
//! parallel requests on separate sessions beat one session with more threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::tensor::TensorElementType;
use ort::value::{DynValue, Tensor as OrtTensor, ValueType};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::ModelError;
use super::backend::{BackendKind, Runner, run_blocking};
use super::model_config::ModelConfig;
use super::tensor::{
    ElementType, checked_shape, invalid, tensor_from_values, values_from_bytes, with_element_type,
};

/// Where `host/scripts/fetch-onnxruntime.sh` installs the library.
const RECORDED_LIBRARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../.deps/onnxruntime/libonnxruntime.so"
);

/// The ONNX Runtime library this process uses, or why there is none.
pub fn library() -> Result<&'static Path, String> {
    static LIBRARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let path = locate()?;
            check_library(&path)?;
            // The checks above make `ort`'s own loading (which panics on failure) safe.
            ort::init_from(path.display().to_string())
                .with_name("wasi-infer")
                .commit()
                .map_err(|e| {
                    format!(
                        "cannot initialise ONNX Runtime from {}: {e}",
                        path.display()
                    )
                })?;
            Ok(path)
        })
        .as_deref()
        .map_err(Clone::clone)
}

fn locate() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ORT_DYLIB_PATH={} does not exist", path.display()))
        };
    }
    let recorded = PathBuf::from(RECORDED_LIBRARY);
    if recorded.is_file() {
        return Ok(recorded);
    }
    Err(
        "no ONNX Runtime library: set ORT_DYLIB_PATH, or run host/scripts/fetch-onnxruntime.sh"
            .into(),
    )
}

/// Opens the library and checks that it is an ONNX Runtime `ort` can use.
fn check_library(path: &Path) -> Result<(), String> {
    let fail = |what: String| {
        format!(
            "{} is not a usable ONNX Runtime library: {what}",
            path.display()
        )
    };
    // SAFETY: loading runs the library's initialisers; this is the library the
    // user pointed us at, which `ort` would load all the same.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| fail(e.to_string()))?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let version = unsafe {
        let get_api_base = library
            .get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase")
            .map_err(|e| fail(e.to_string()))?;
        let base = get_api_base();
        if base.is_null() {
            return Err(fail("OrtGetApiBase returned null".into()));
        }
        std::ffi::CStr::from_ptr(((*base).GetVersionString)())
            .to_string_lossy()
            .into_owned()
    };
    let minor: u32 = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| fail(format!("unexpected version {version:?}")))?;
    if minor < ort::MINOR_VERSION {
        return Err(fail(format!(
            "version {version} is too old, 1.{}.x or newer is needed",
            ort::MINOR_VERSION
        )));
    }
    // Keep the library loaded for `ort`, which opens it again.
    std::mem::forget(library);
    Ok(())
}

pub struct OnnxRuntimeModel {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    input_names: Vec<String>,
}

impl OnnxRuntimeModel {
    pub fn load(dir: &Path, config: &ModelConfig) -> Result<Self, ModelError> {
        let model = dir.display().to_string();
        let fail = |message: String| ModelError::Backend {
            model: model.clone(),
            backend: BackendKind::OnnxRuntime,
            message,
        };
        library().map_err(&fail)?;
        let path = dir.join(&config.file);
        let pool = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sessions = (0..pool)
            .map(|_| {
                Session::builder()
                    .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3))
                    .and_then(|b| b.with_intra_threads(1))
                    .and_then(|b| b.with_inter_threads(1))
                    .and_then(|b| b.commit_from_file(&path))
                    .map(Mutex::new)
                    .map_err(|e| fail(format!("cannot load {}: {e}", path.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let session = sessions[0]
            .lock()
            .map_err(|_| fail("session poisoned".into()))?;
        let actual = |list: &mut dyn Iterator<Item = (&str, &ValueType)>| {
            list.map(|(name, ty)| (name.to_string(), element_type(ty)))
                .collect::<Vec<_>>()
        };
        let inputs = actual(
            &mut session
                .inputs
                .iter()
                .map(|i| (i.name.as_str(), &i.input_type)),
        );
        let outputs = actual(
            &mut session
                .outputs
                .iter()
                .map(|o| (o.name.as_str(), &o.output_type)),
        );
        super::check_interface(&config.inputs, &inputs, "input").map_err(&fail)?;
        super::check_interface(&config.outputs, &outputs, "output").map_err(&fail)?;
        let input_names = inputs.into_iter().map(|(name, _)| name).collect();
        drop(session);

        Ok(Self {
            sessions,
            next: AtomicUsize::new(0),
            input_names,
        })
    }

    /// A free session if there is one, else waits for one in turn.
    fn session(&self) -> Result<MutexGuard<'_, Session>, BackendError> {
        for session in &self.sessions {
            if let Ok(guard) = session.try_lock() {
                return Ok(guard);
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        self.sessions[turn]
            .lock()
            .map_err(|_| invalid("an earlier inference panicked"))
    }
}

impl Runner for OnnxRuntimeModel {
    fn input_names(&self) -> &[String] {
        &self.input_names
    }

    fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = super::backend::order_inputs(&self.input_names, inputs)?;
        let values = inputs
            .into_iter()
            .map(|t| Ok((t.name.clone(), to_value(&t.name, &t.tensor)?)))
            .collect::<Result<Vec<(String, DynValue)>, BackendError>>()?;
        run_blocking(|| {
            let mut session = self.session()?;
            let outputs = session
                .run(values)
                .map_err(|e| invalid(format!("ONNX Runtime: {e}")))?;
            outputs
                .iter()
                .map(|(name, value)| {
                    Ok(NamedTensor {
                        name: name.to_string(),
                        tensor: from_value(name, &value)?,
                    })
                })
                .collect()
        })
    }
}

/// The wasi-nn element type of an ONNX value type, if wasi-nn has it.
fn element_type(ty: &ValueType) -> Option<ElementType> {
    match ty {
        ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float32 => Some(ElementType::F32),
            TensorElementType::Float64 => Some(ElementType::F64),
            TensorElementType::Float16 => Some(ElementType::F16),
            TensorElementType::Bfloat16 => Some(ElementType::Bf16),
            TensorElementType::Uint8 => Some(ElementType::U8),
            TensorElementType::Int32 => Some(ElementType::I32),
            TensorElementType::Int64 => Some(ElementType::I64),
            _ => None,
        },
        _ => None,
    }
}

fn to_value(name: &str, tensor: &Tensor) -> Result<DynValue, BackendError> {
    let dims = checked_shape(name, tensor)?;
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    fn make<T: ort::tensor::PrimitiveTensorElementType + bytemuck::Pod + std::fmt::Debug>(
        shape: Vec<i64>,
        bytes: &[u8],
    ) -> Result<DynValue, BackendError> {
        OrtTensor::from_array((shape, values_from_bytes::<T>(bytes)))
            .map(|t| t.into_dyn())
            .map_err(|e| invalid(format!("ONNX Runtime: {e}")))
    }
    let ty = ElementType::from_wasi(tensor.ty);
    with_element_type!(ty, T => make::<T>(shape, &tensor.data), _ => Err(invalid(format!(
        "input {name:?}: {ty} tensors are not supported by the onnxruntime backend yet"
    ))))
}

fn from_value(name: &str, value: &ort::value::ValueRef<'_>) -> Result<Tensor, BackendError> {
    fn take<T: ort::tensor::PrimitiveTensorElementType + bytemuck::NoUninit>(
        value: &ort::value::ValueRef<'_>,
        ty: ElementType,
    ) -> Result<Tensor, BackendError> {
        let (shape, data) = value
            .try_extract_tensor::<T>()
            .map_err(|e| invalid(format!("ONNX Runtime: {e}")))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        tensor_from_values(&dims, ty, data)
    }
    let unsupported = || {
        invalid(format!(
            "output {name:?} has type {:?}, which the onnxruntime backend cannot return yet",
            value.dtype()
        ))
    };
    let ty = element_type(value.dtype()).ok_or_else(unsupported)?;
    with_element_type!(ty, T => take::<T>(value, ty), _ => Err(unsupported()))
}
