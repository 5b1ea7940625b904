//! The OpenVINO backend (`openvino` crate, loading the native library at run
//! time). It reads ONNX files and OpenVINO IR (`model.xml` + `model.bin`).
//!
//! A model is compiled once with `NUM_STREAMS` streams (default one per core)
//! and keeps one infer request per stream; a request takes whichever is free.
//! Precision defaults to f32: on CPUs with AVX-512 BF16 or AMX, OpenVINO would
//! otherwise run bf16 and move logits by up to ~0.3 from the other backends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use openvino::{
    CompiledModel, Core, DeviceType, ElementType as OvType, InferRequest, Model, RwPropertyKey,
    Shape, Tensor as OvTensor,
};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;

use super::bounds::LargeRequests;
use super::cancel::Cancel;
use super::interface::{DataType, ModelInterface, TensorInfo};
use super::model_config::{ModelConfig, ModelFormat};
use super::pool::Pool;
use super::runner::{Runner, order_inputs, release_freed_memory};
use super::tensor::{ElementType, invalid, tensor_from_values};

/// Where `host/scripts/fetch-openvino.sh` installs the library.
const RECORDED_LIBRARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../.deps/openvino/libopenvino_c.so"
);

/// The OpenVINO C library this process uses, or why there is none.
pub fn library() -> Result<&'static Path, String> {
    static LIBRARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let path = locate()?;
            openvino_sys::library::load_from(path.clone())
                .map_err(|e| format!("{} is not a usable OpenVINO library: {e}", path.display()))?;
            Ok(path)
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// `OPENVINO_DYLIB_PATH` (the C library itself, like `ORT_DYLIB_PATH`), then
/// `OPENVINO_INSTALL_DIR`, `INTEL_OPENVINO_DIR`, `LD_LIBRARY_PATH` and the
/// system's locations (the `openvino` crate's finder), then `.deps/openvino`.
fn locate() -> Result<PathBuf, String> {
    if let Some(found) = super::runner::library_from_env("OPENVINO_DYLIB_PATH") {
        return found;
    }
    if let Some(path) = openvino_sys::library::find() {
        return Ok(path);
    }
    let recorded = PathBuf::from(RECORDED_LIBRARY);
    if recorded.is_file() {
        return Ok(recorded);
    }
    Err(
        "no OpenVINO library: set OPENVINO_INSTALL_DIR, or run host/scripts/fetch-openvino.sh"
            .into(),
    )
}

/// How often a running inference looks whether it is still wanted.
const CANCEL_CHECK_MS: i64 = 10;

/// Compiled kernels the CPU plugin keeps per model, one per input shape seen
/// (OpenVINO's default keeps 5000): enough for the shapes of ordinary
/// traffic, and a bound on what many shapes of dynamic inputs can pin.
const RUNTIME_CACHE_CAPACITY: &str = "64";

/// A model on OpenVINO. The CPU plugin keeps the memory of the largest
/// input shape each stream has run for as long as the compiled model lives
/// (measured: 730 MB more after two requests of 16384 tokens to a text
/// model, on two streams), and frees neither it after an infer request is
/// dropped nor on request; its C API has no `release_memory`. So after a
/// large request the model is compiled anew, in the background, and the
/// requests that come next run on the new one; the old one, with its
/// memory, goes when its last request does. At most one compilation runs at
/// a time, and at most one every [`RENEW_EVERY`] (one takes about a second
/// for all-MiniLM-L6-v2 here): a stream of large requests costs a tenth of a
/// core, and memory returns within that time of the last one.
pub struct OpenVinoModel {
    interface: ModelInterface,
    /// After a large request the model is compiled anew.
    large: LargeRequests,
    /// The compiled model requests run on now.
    current: Arc<Mutex<Arc<Compiled>>>,
    compiler: Arc<Mutex<Compiler>>,
    /// A compilation runs, or waits out [`RENEW_EVERY`].
    renewing: Arc<AtomicBool>,
    /// A large request came while it did: compile again after.
    renew_again: Arc<AtomicBool>,
}

/// The least time between two compilations of a model (see [`OpenVinoModel`]).
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A compiled model and its infer requests, one per stream.
struct Compiled {
    requests: Pool<InferRequest>,
    // The compiled model outlives the requests made from it.
    _compiled: Arc<Mutex<CompiledModel>>,
}

/// What compiles the model: the core with its device properties set, and
/// the model as read.
struct Compiler {
    core: Core,
    model: Model,
    device: String,
    streams: usize,
}

impl Compiler {
    fn compile(&mut self) -> Result<Compiled, String> {
        let device = self.device.as_str();
        let mut compiled = self
            .core
            .compile_model(&self.model, DeviceType::from(device))
            .map_err(|e| format!("cannot compile for device {device:?}: {e}"))?;
        let requests = (0..self.streams)
            .map(|_| compiled.create_infer_request())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot create an infer request: {e}"))?;
        let compiled = Arc::new(Mutex::new(compiled));
        // A request lost (its run panicked or was cancelled) is made anew.
        let rebuild = {
            let compiled = compiled.clone();
            Box::new(move || {
                let mut compiled = compiled
                    .lock()
                    .map_err(|_| "the compiled model is poisoned")?;
                compiled
                    .create_infer_request()
                    .map_err(|e| format!("cannot create an infer request: {e}"))
            })
        };
        Ok(Compiled {
            requests: Pool::new(requests)?.with_rebuild(rebuild),
            _compiled: compiled,
        })
    }
}

impl OpenVinoModel {
    pub fn load(name: &str, dir: &Path, config: &ModelConfig) -> Result<Self, String> {
        library()?;
        let settings = &config.openvino;
        let file = settings.file.as_ref().unwrap_or(&config.file);
        let path = dir.join(file);
        let path_str = path
            .to_str()
            .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
        let ov = |what: &str| {
            let what = what.to_string();
            move |e: openvino::InferenceError| format!("{what}: {e}")
        };
        let mut core = Core::new().map_err(|e| format!("cannot start OpenVINO: {e}"))?;

        let is_ir = config.format == ModelFormat::Openvino
            || path.extension().is_some_and(|ext| ext == "xml");
        let weights = if is_ir {
            path.with_extension("bin").display().to_string()
        } else {
            String::new()
        };
        let model = core
            .read_model_from_file(path_str, &weights)
            .map_err(ov(&format!("cannot read {}", path.display())))?;
        let interface = interface(&model)?;

        // Hardware properties go to the hardware devices behind a virtual one
        // (`AUTO:GPU,CPU`), which pass them on when they compile.
        let device = settings.device.as_str();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let streams = settings.streams.unwrap_or(cores);
        let mut properties = vec![
            (
                RwPropertyKey::HintInferencePrecision,
                settings.precision.openvino_name().to_string(),
            ),
            (RwPropertyKey::NumStreams, streams.to_string()),
        ];
        if let Some(threads) = settings.threads {
            properties.push((RwPropertyKey::InferenceNumThreads, threads.to_string()));
        }
        let cpu_only = [(
            RwPropertyKey::Other("CPU_RUNTIME_CACHE_CAPACITY".into()),
            RUNTIME_CACHE_CAPACITY.to_string(),
        )];
        for target in hardware_devices(device) {
            let extra = if target == "CPU" { &cpu_only[..] } else { &[] };
            for (key, value) in properties.iter().chain(extra) {
                core.set_property(&DeviceType::from(target), key, value)
                    .map_err(ov(&format!(
                        "device {target} does not take {}={value}",
                        key.as_ref()
                    )))?;
            }
        }
        let mut compiler = Compiler {
            core,
            model,
            device: device.to_string(),
            streams,
        };
        let compiled = compiler.compile()?;
        tracing::debug!(model = name, device, streams, "OpenVINO model compiled");
        Ok(Self {
            interface,
            large: LargeRequests::of(config),
            current: Arc::new(Mutex::new(Arc::new(compiled))),
            compiler: Arc::new(Mutex::new(compiler)),
            renewing: Arc::new(AtomicBool::new(false)),
            renew_again: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Compiles the model anew in the background, now or, when one ran
    /// less than [`RENEW_EVERY`] ago, once that time is up.
    fn renew(&self) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            self.renew_again.store(true, Ordering::Release);
            return;
        }
        let (current, compiler) = (self.current.clone(), self.compiler.clone());
        let (renewing, again) = (self.renewing.clone(), self.renew_again.clone());
        let spawned = std::thread::Builder::new()
            .name("wasi-infer-openvino-renew".into())
            .spawn(move || {
                loop {
                    let compiled = match compiler.lock() {
                        Ok(mut compiler) => compiler.compile(),
                        Err(_) => Err("the compiler is poisoned".into()),
                    };
                    match compiled {
                        Ok(compiled) => {
                            let old = current.lock().map(|mut current| {
                                std::mem::replace(&mut *current, Arc::new(compiled))
                            });
                            // Its memory goes with its last request.
                            drop(old);
                            release_freed_memory();
                        }
                        Err(error) => tracing::warn!("cannot compile the model anew: {error}"),
                    }
                    std::thread::sleep(RENEW_EVERY);
                    if again.swap(false, Ordering::AcqRel) {
                        continue;
                    }
                    renewing.store(false, Ordering::Release);
                    // One that came between the look and the store.
                    if again.swap(false, Ordering::AcqRel) && !renewing.swap(true, Ordering::AcqRel)
                    {
                        continue;
                    }
                    break;
                }
            });
        if spawned.is_err() {
            self.renewing.store(false, Ordering::Release);
        }
    }
}

impl Runner for OpenVinoModel {
    fn interface(&self) -> &ModelInterface {
        &self.interface
    }

    /// Runs asynchronously on a free infer request, so that `cancel` can
    /// stop it while it computes.
    fn run(
        &self,
        inputs: Vec<NamedTensor>,
        cancel: &Cancel,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let inputs = order_inputs(&self.interface, inputs)?;
        let fail = |e: openvino::InferenceError| invalid(format!("OpenVINO: {e}"));
        let large = self.large.includes(&inputs);
        let tensors = inputs
            .iter()
            .map(|input| {
                if input.tensor.ty == TensorType::I64 {
                    check_fits_i32(&input.name, &input.tensor.data)?;
                }
                let dims: Vec<i64> = input.dims.iter().map(|&d| d as i64).collect();
                let ty = ov_type(ElementType::from_wasi(input.tensor.ty));
                let mut tensor =
                    OvTensor::new(ty, &Shape::new(&dims).map_err(fail)?).map_err(fail)?;
                tensor
                    .get_raw_data_mut()
                    .map_err(fail)?
                    .copy_from_slice(&input.tensor.data);
                Ok((input.name.as_str(), tensor))
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        let compiled = self
            .current
            .lock()
            .map_err(|_| invalid("OpenVINO: the model is poisoned"))?
            .clone();
        let mut request = compiled.requests.get(cancel)?;
        for (name, tensor) in &tensors {
            request.set_tensor(name, tensor).map_err(fail)?;
        }
        request.infer_async().map_err(fail)?;
        if let Err(error) = wait_or_cancel(&mut request, cancel) {
            // Its state after an error or a cancel is not worth trusting.
            request.retire();
            return Err(error);
        }
        let outputs = self
            .interface
            .outputs
            .iter()
            .enumerate()
            .map(|(i, info)| {
                let tensor = request.get_output_tensor_by_index(i).map_err(fail)?;
                Ok(NamedTensor {
                    name: info.name.clone(),
                    tensor: from_tensor(&info.name, &tensor)?,
                })
            })
            .collect();
        if large {
            drop(request);
            drop(compiled);
            self.renew();
        }
        outputs
    }
}

/// Waits for a started inference, cancelling it if `cancel` fires (the CPU
/// plugin stops between nodes). OpenVINO's C API waits with a timeout and
/// answers `RESULT_NOT_READY` when the inference still runs; older releases
/// answer OK either way, and there asking for an output tells: it is
/// `REQUEST_BUSY` while the inference runs. The final wait returns the
/// inference's own error, if it failed.
fn wait_or_cancel(request: &mut InferRequest, cancel: &Cancel) -> Result<(), BackendError> {
    use openvino::InferenceErrorKind as Kind;
    let fail = |e: openvino::InferenceError| invalid(format!("OpenVINO: {e}"));
    let mut cancelled = false;
    loop {
        if !cancelled && cancel.is_cancelled() {
            cancelled = true;
            let _ = request.cancel();
        }
        let waited = request.wait(CANCEL_CHECK_MS);
        let running = match &waited {
            Err(e) => e.kind == Kind::ResultNotReady,
            Ok(()) => matches!(
                request.get_output_tensor_by_index(0),
                Err(e) if e.kind == Kind::RequestBusy
            ),
        };
        if running {
            continue;
        }
        let done = match waited {
            // Finished (or failed) just now: its future has the outcome.
            Ok(()) => request.wait(FINISHING_MS),
            failed => failed,
        };
        return match done {
            Ok(()) if !cancelled => Ok(()),
            Err(e) if !cancelled && e.kind != Kind::InferCancelled => Err(fail(e)),
            _ => Err(invalid("OpenVINO: the inference was cancelled")),
        };
    }
}

/// How long a finished inference may take to hand over its outcome.
const FINISHING_MS: i64 = 60_000;

/// OpenVINO's CPU plugin computes i64 tensors as i32 and would wrap larger
/// values silently: refuse them instead.
fn check_fits_i32(name: &str, data: &[u8]) -> Result<(), BackendError> {
    let values = bytemuck::pod_collect_to_vec::<u8, i64>(data);
    match values.iter().find(|&&v| i32::try_from(v).is_err()) {
        Some(v) => Err(invalid(format!(
            "input {name:?}: OpenVINO computes i64 as i32, and {v} does not fit; \
             run this model on onnxruntime or tract"
        ))),
        None => Ok(()),
    }
}

/// The hardware devices a device name stands for: `CPU` for `CPU`, `GPU.1`
/// for `GPU.1`, the listed ones for `AUTO:GPU,CPU`, and `CPU` for a bare `AUTO`.
fn hardware_devices(device: &str) -> Vec<&str> {
    match device.split_once(':') {
        Some((_, list)) => list.split(',').map(str::trim).collect(),
        None if ["AUTO", "MULTI", "HETERO"].contains(&device) => vec!["CPU"],
        None => vec![device],
    }
}

fn interface(model: &Model) -> Result<ModelInterface, String> {
    let fail = |e: openvino::InferenceError| format!("cannot read the model's interface: {e}");
    let info = |node: openvino::Node| -> Result<TensorInfo, String> {
        let shape = node.get_partial_shape().map_err(fail)?;
        Ok(TensorInfo {
            name: node.get_name().map_err(fail)?,
            ty: data_type(node.get_element_type().map_err(fail)?),
            shape: (!shape.get_rank().is_dynamic()).then(|| {
                shape
                    .get_dimensions()
                    .iter()
                    .map(|d| if d.is_dynamic() { -1 } else { d.get_min() })
                    .collect()
            }),
        })
    };
    let inputs = (0..model.get_inputs_len().map_err(fail)?)
        .map(|i| info(model.get_input_by_index(i).map_err(fail)?))
        .collect::<Result<_, _>>()?;
    let outputs = (0..model.get_outputs_len().map_err(fail)?)
        .map(|i| info(model.get_output_by_index(i).map_err(fail)?))
        .collect::<Result<_, _>>()?;
    Ok(ModelInterface { inputs, outputs })
}

fn ov_type(ty: ElementType) -> OvType {
    match ty {
        ElementType::F16 => OvType::F16,
        ElementType::Bf16 => OvType::Bf16,
        ElementType::F32 => OvType::F32,
        ElementType::F64 => OvType::F64,
        ElementType::U8 => OvType::U8,
        ElementType::I32 => OvType::I32,
        ElementType::I64 => OvType::I64,
    }
}

fn data_type(ty: OvType) -> DataType {
    DataType::Known(match ty {
        OvType::F16 => ElementType::F16,
        OvType::Bf16 => ElementType::Bf16,
        OvType::F32 => ElementType::F32,
        OvType::F64 => ElementType::F64,
        OvType::U8 => ElementType::U8,
        OvType::I32 => ElementType::I32,
        OvType::I64 => ElementType::I64,
        other => return DataType::Other(format!("{other:?}").to_lowercase()),
    })
}

/// A wasi-nn tensor from an output: OpenVINO's buffers are plain
/// little-endian arrays, so the bytes carry over as they are.
fn from_tensor(name: &str, tensor: &OvTensor) -> Result<Tensor, BackendError> {
    let fail = |e: openvino::InferenceError| invalid(format!("OpenVINO: {e}"));
    let ty = match data_type(tensor.get_element_type().map_err(fail)?) {
        DataType::Known(ty) => ty,
        DataType::Other(other) => {
            return Err(invalid(format!(
                "output {name:?} is {other}, which wasi-nn has no type for"
            )));
        }
    };
    let shape = tensor.get_shape().map_err(fail)?;
    let dims: Vec<usize> = shape
        .get_dimensions()
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| invalid(format!("output {name:?}: dimension {d}")))
        })
        .collect::<Result<_, _>>()?;
    tensor_from_values(&dims, ty, tensor.get_raw_data().map_err(fail)?)
}
