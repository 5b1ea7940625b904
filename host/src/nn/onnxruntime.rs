//! The ONNX Runtime backend (`ort`, loading the native library at run time).
//!
//! Each model keeps a small pool of sessions (default one per core, one intra-op
//! thread each) and a request takes whichever is free: `ort`'s `Session::run`
//! takes `&mut self`, so one shared session would serialise every request on a
//! model behind one lock (as wasmtime-wasi-nn's built-in backend does), and on a
//! small machine parallel requests on separate sessions beat one session with
//! more threads. A request that finds the model otherwise idle runs instead on
//! a "solo" session with a thread per core, so light load gets the latency of
//! all cores and heavy load the throughput of one core per request. Building a
//! session is most of a cold start: the model serves as soon as its solo
//! session and one pooled session are built (in parallel), and the rest of the
//! pool is built in the background.
//! `[onnxruntime]` in `model.toml` tunes the pool, the threads, the graph
//! optimisation level and the device (CPU, or CUDA).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use ort::environment::Environment;
use ort::ep::{CUDA, ExecutionProvider, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::bounds::LargeRequests;
use super::cancel::Cancel;
use super::interface::{DataType, ModelInterface, TensorInfo};
use super::model_config::{ModelConfig, OptimizationLevel, OrtDevice};
use super::pool::Pool;
use super::runner::{CheckedInput, Runner, order_inputs, release_freed_memory};
use super::tensor::{
    ElementType, invalid, tensor_from_values, values_from_bytes, with_element_type,
};

/// Where `host/scripts/fetch-onnxruntime.sh` installs the library.
const RECORDED_LIBRARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../.deps/onnxruntime/libonnxruntime.so"
);

/// The ONNX Runtime library this process uses, or why there is none.
pub fn library() -> Result<&'static Path, String> {
    runtime().map(|(path, _)| path.as_path())
}

/// The library and the one environment every session of the process is
/// built in, made at first use.
fn runtime() -> Result<&'static (PathBuf, Environment), String> {
    static RUNTIME: OnceLock<Result<(PathBuf, Environment), String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let path = locate()?;
            check_library(&path)?;
            let cannot = |e: &dyn std::fmt::Display| {
                format!(
                    "cannot initialise ONNX Runtime from {}: {e}",
                    path.display()
                )
            };
            // The checks above make `ort`'s own loading safe.
            let environment = ort::init_from(&path)
                .map_err(|e| cannot(&e))?
                .with_name("wasi-infer")
                .build()
                .map_err(|e| cannot(&e))?;
            Ok((path, environment))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn locate() -> Result<PathBuf, String> {
    if let Some(found) = super::runner::library_from_env("ORT_DYLIB_PATH") {
        return found;
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
    /// One intra-op thread each (by default): requests in parallel.
    sessions: Arc<Pool<Session>>,
    /// Builds the pool's other sessions after loading.
    building: Mutex<Option<JoinHandle<()>>>,
    /// Tells `building` to stop: the model is being dropped.
    stop_building: Arc<AtomicBool>,
    /// A thread per core: a request alone on the model.
    solo: Option<Mutex<Session>>,
    /// Inferences running on this model now.
    in_flight: AtomicUsize,
    /// After a large request the arena shrinks: see [`OnnxRuntimeModel::run`].
    large: LargeRequests,
    interface: ModelInterface,
}

impl OnnxRuntimeModel {
    pub fn load(name: &str, dir: &Path, config: &ModelConfig) -> Result<Self, String> {
        library()?;
        let settings = &config.onnxruntime;
        let path = dir.join(&config.file);
        let cuda = match settings.device {
            OrtDevice::Cpu => None,
            OrtDevice::Gpu => gpu_provider(name, settings.cpu_fallback)?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = settings.sessions.unwrap_or(cores);
        let solo_threads = match (&cuda, settings.solo_threads) {
            (Some(_), _) => 1,
            (None, threads) => threads.unwrap_or(cores),
        };
        let optimization = settings.optimization;
        let level = move || match optimization {
            OptimizationLevel::Disable => GraphOptimizationLevel::Disable,
            OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
            OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
            // Not Level3: since ort rc.15 (and ONNX Runtime 1.23) that is the layout
            // level, below "all".
            OptimizationLevel::All => GraphOptimizationLevel::All,
        };
        let (_, environment) = runtime()?;
        let build = Arc::new(move |threads: usize| {
            let mut builder = Session::builder(environment)?
                .with_optimization_level(level())?
                .with_intra_threads(threads)?
                .with_inter_threads(1)?;
            if threads > 1 {
                // Idle threads sleep rather than spin: the solo session's
                // threads must not take cores from requests on other sessions.
                builder = builder.with_intra_op_spinning(false)?;
            }
            if let Some(cuda) = &cuda {
                builder = builder.with_execution_providers([cuda.clone()])?;
            }
            builder.commit_from_file(&path)
        });
        // Before serving: the solo session and one pooled session, in parallel.
        let pooled_threads = settings.intra_threads.unwrap_or(1);
        let mut now = vec![pooled_threads];
        if solo_threads > 1 {
            now.push(solo_threads);
        }
        let mut built = std::thread::scope(|scope| {
            let build = &*build;
            let handles: Vec<_> = now.iter().map(|&n| scope.spawn(move || build(n))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Result<Vec<_>, ort::Error>>()
        })
        .map_err(|e| format!("cannot load {}: {e}", dir.join(&config.file).display()))?;
        let solo = (solo_threads > 1)
            .then(|| built.pop())
            .flatten()
            .map(Mutex::new);
        let first = built.pop().ok_or("no session was built")?;
        // A session whose run panicked is built anew (see `Pool`).
        let rebuild = {
            let build = build.clone();
            Box::new(move || build(pooled_threads).map_err(|e| e.to_string()))
        };
        let sessions = Arc::new(Pool::starting_with(first, pool).with_rebuild(rebuild));

        // The rest of the pool, while the model serves.
        let stop_building = Arc::new(AtomicBool::new(false));
        let building = (pool > 1).then(|| {
            let (sessions, name) = (sessions.clone(), name.to_string());
            let stop = stop_building.clone();
            std::thread::spawn(move || {
                for _ in 1..pool {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    match build(pooled_threads) {
                        Ok(session) => {
                            let _ = sessions.add(session);
                        }
                        Err(error) => {
                            tracing::warn!(model = name, "cannot build another ONNX Runtime session, serving with fewer: {error}");
                            return;
                        }
                    }
                }
            })
        });

        let session = sessions.get(&Cancel::new()).map_err(|e| e.to_string())?;
        let info = |name: &str, ty: &ValueType| TensorInfo {
            name: name.to_string(),
            ty: data_type(ty),
            shape: match ty {
                ValueType::Tensor { shape, .. } => Some(shape.to_vec()),
                _ => None,
            },
        };
        let interface = ModelInterface {
            inputs: session
                .inputs()
                .iter()
                .map(|i| info(i.name(), i.dtype()))
                .collect(),
            outputs: session
                .outputs()
                .iter()
                .map(|o| info(o.name(), o.dtype()))
                .collect(),
        };
        drop(session);

        Ok(Self {
            sessions,
            building: Mutex::new(building),
            stop_building,
            solo,
            in_flight: AtomicUsize::new(0),
            large: LargeRequests::of(config),
            interface,
        })
    }
}

/// The CUDA execution provider, or the CPU (with a warning) where the library
/// has no CUDA and `cpu_fallback` allows it.
fn gpu_provider(
    model: &str,
    cpu_fallback: bool,
) -> Result<Option<ExecutionProviderDispatch>, String> {
    match CUDA::is_available() {
        Ok(true) => Ok(Some(CUDA::default().build().error_on_failure())),
        Ok(false) | Err(_) if cpu_fallback => {
            tracing::warn!(
                model,
                "device = \"gpu\", but this ONNX Runtime library has no CUDA execution provider: \
                 running on the CPU (cpu_fallback = true)"
            );
            Ok(None)
        }
        Ok(false) => Err(
            "device = \"gpu\", but this ONNX Runtime library has no CUDA \
             execution provider (install the onnxruntime-gpu wheel: \
             ONNXRUNTIME_PACKAGE=onnxruntime-gpu host/scripts/fetch-onnxruntime.sh), \
             or set cpu_fallback = true in [onnxruntime]"
                .into(),
        ),
        Err(e) => Err(format!(
            "cannot query ONNX Runtime's execution providers: {e}"
        )),
    }
}

impl Runner for OnnxRuntimeModel {
    fn interface(&self) -> &ModelInterface {
        &self.interface
    }

    /// Runs on the solo session when the model is otherwise idle, else on a
    /// pooled one. A large request grows ONNX Runtime's memory arena, which
    /// keeps its high-water mark for good (5.3 GB after one 3 MiB request to
    /// a text model): after a large request the arena gives back what it no
    /// longer uses. Small requests keep it, so they do not pay for
    /// allocating it again.
    fn run(
        &self,
        inputs: Vec<NamedTensor>,
        cancel: &Cancel,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = order_inputs(&self.interface, inputs)?;
        let large = self.large.includes(&inputs);
        let values = inputs
            .into_iter()
            .map(|t| Ok((t.name.clone(), to_value(&t)?)))
            .collect::<Result<Vec<(String, DynValue)>, BackendError>>()?;
        let running = InFlight::enter(&self.in_flight);
        let solo = match &self.solo {
            Some(solo) if running.others == 0 => solo.try_lock().ok(),
            _ => None,
        };
        let outputs = match solo {
            Some(mut session) => infer(&mut session, values, cancel, large),
            None => infer(&mut *self.sessions.get(cancel)?, values, cancel, large),
        };
        if large {
            release_freed_memory();
        }
        outputs
    }

    fn settle(&self) {
        let building = self.building.lock().map(|mut b| b.take());
        if let Ok(Some(handle)) = building {
            let _ = handle.join();
        }
    }
}

/// One run, which `cancel` terminates (ONNX Runtime checks between nodes).
fn infer(
    session: &mut Session,
    values: Vec<(String, DynValue)>,
    cancel: &Cancel,
    shrink_arena: bool,
) -> Result<Vec<NamedTensor>, BackendError> {
    let fail = |e: ort::Error| invalid(format!("ONNX Runtime: {e}"));
    let mut options = RunOptions::new().map_err(fail)?;
    if shrink_arena {
        options
            .set("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(fail)?;
    }
    let options = Arc::new(options);
    let _terminate = cancel.on_cancel({
        let options = options.clone();
        move || {
            let _ = options.terminate();
        }
    });
    let outputs = session.run_with_options(values, &options).map_err(|e| {
        if cancel.is_cancelled() {
            invalid("ONNX Runtime: the inference was cancelled")
        } else {
            fail(e)
        }
    })?;
    outputs
        .iter()
        .map(|(name, value)| {
            Ok(NamedTensor {
                name: name.to_string(),
                tensor: from_value(name, &value)?,
            })
        })
        .collect()
}

/// Counts an inference as running on a model while it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// Inferences that were already running when this one began.
    others: usize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let others = count.fetch_add(1, Ordering::AcqRel);
        Self { count, others }
    }
}

/// A model is dropped before the process exits (`models inspect`, a server
/// that shuts down): the thread still building sessions must be done first,
/// since ONNX Runtime's own destructors run at exit and crash a thread that
/// is inside the library (seen with 1.32: a segmentation fault after the
/// answer was printed). It stops after the session it is building.
impl Drop for OnnxRuntimeModel {
    fn drop(&mut self) {
        self.stop_building.store(true, Ordering::Release);
        self.settle();
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

fn data_type(ty: &ValueType) -> DataType {
    match element_type(ty) {
        Some(ty) => DataType::Known(ty),
        None => DataType::Other(match ty {
            ValueType::Tensor { ty, .. } => format!("{ty:?}").to_lowercase(),
            other => format!("{other:?}"),
        }),
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

fn to_value(input: &CheckedInput) -> Result<DynValue, BackendError> {
    let shape: Vec<i64> = input.dims.iter().map(|&d| d as i64).collect();
    fn make<T: ort::value::PrimitiveTensorElementType + bytemuck::Pod + std::fmt::Debug>(
        shape: Vec<i64>,
        bytes: &[u8],
    ) -> Result<DynValue, BackendError> {
        OrtTensor::from_array((shape, values_from_bytes::<T>(bytes)))
            .map(|t| t.into_dyn())
            .map_err(|e| invalid(format!("ONNX Runtime: {e}")))
    }
    let ty = ElementType::from_wasi(input.tensor.ty);
    with_element_type!(ty, T => make::<T>(shape, &input.tensor.data), _ => unreachable!("every wasi-nn type has a Rust type"))
}

fn from_value(name: &str, value: &ort::value::ValueRef<'_>) -> Result<Tensor, BackendError> {
    fn take<T: ort::value::PrimitiveTensorElementType + bytemuck::NoUninit>(
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
            "output {name:?} has type {:?}, which wasi-nn has no type for",
            value.dtype()
        ))
    };
    let ty = element_type(value.dtype()).ok_or_else(unsupported)?;
    with_element_type!(ty, T => take::<T>(value, ty), _ => Err(unsupported()))
}
