//! `wasi-infer:models/metadata` (`wit/wasi-infer/models.wit`): what a function
//! may learn of the models it may load, read from the loaded models
//! themselves, and whether the server is ready. The Open Inference Protocol
//! function describes any model through it.

use wasmtime::component::HasData;

use super::ComponentModels;
use super::interface::{DataType, TensorInfo};
use super::store::ModelDescription;
use super::tensor::ElementType;
use super::wit::InstanceNn;
use crate::health::Health;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/wasi-infer",
        world: "wasi-infer:models/model-aware",
    });
}

use generated::wasi_infer::models::metadata::{
    self, DurationStat, ModelMetadata, ServerMetadata, TensorMetadata, VersionStats,
};

/// What the interface reads, borrowed from the instance's state.
pub struct MetadataView<'a> {
    pub models: &'a ComponentModels,
    /// The instance's wasi-nn state: which versions its loads got.
    pub nn: &'a InstanceNn,
    pub health: &'a Health,
    /// `--max-body-size`, for the server's metadata.
    pub max_body_bytes: usize,
}

struct HasMetadataView;

impl HasData for HasMetadataView {
    type Data<'a> = MetadataView<'a>;
}

/// Adds `wasi-infer:models/metadata` to `linker`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> MetadataView<'_>,
) -> wasmtime::Result<()> {
    metadata::add_to_linker::<_, HasMetadataView>(linker, view)
}

impl metadata::Host for MetadataView<'_> {
    fn list_models(&mut self) -> Vec<ModelMetadata> {
        let store = self.models.store();
        self.models
            .names()
            .iter()
            .filter_map(|name| store.describe(name, None))
            .map(|model| describe(&model))
            .collect()
    }

    fn get_model(&mut self, name: String, version: Option<String>) -> Option<ModelMetadata> {
        if !self.models.allows(&name) {
            return None;
        }
        let store = self.models.store();
        store
            .describe(&name, version.as_deref())
            .map(|m| describe(&m))
    }

    fn statistics(&mut self, name: String, version: Option<String>) -> Option<Vec<VersionStats>> {
        if !self.models.allows(&name) {
            return None;
        }
        let versions = self.models.store().statistics(&name, version.as_deref())?;
        Some(
            versions
                .into_iter()
                .map(|(version, s)| VersionStats {
                    version,
                    last_inference: s.last_inference_ms,
                    inference_count: s.inference_count,
                    execution_count: s.execution_count,
                    success: stat(s.success),
                    fail: stat(s.fail),
                    queue: stat(s.queue),
                    compute_input: stat(s.compute_input),
                    compute_infer: stat(s.compute_infer),
                    compute_output: stat(s.compute_output),
                })
                .collect(),
        )
    }

    fn labels(
        &mut self,
        name: String,
        version: Option<String>,
    ) -> Option<Result<Option<Vec<String>>, String>> {
        if !self.models.allows(&name) {
            return None;
        }
        self.models.store().labels(&name, version.as_deref())
    }

    fn model_ready(&mut self, name: String, version: Option<String>) -> bool {
        self.health.is_ready()
            && self.models.allows(&name)
            && self.models.store().is_ready(&name, version.as_deref())
    }

    fn ready(&mut self) -> bool {
        self.health.is_ready()
    }

    fn loaded_version(&mut self, name: String) -> Option<String> {
        self.nn.loaded_version(&name).map(str::to_string)
    }

    fn server(&mut self) -> ServerMetadata {
        ServerMetadata {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_body_bytes: self.max_body_bytes as u64,
        }
    }
}

fn describe(model: &ModelDescription) -> ModelMetadata {
    let tensors = |tensors: &[TensorInfo]| {
        tensors
            .iter()
            .map(|t| TensorMetadata {
                name: t.name.clone(),
                datatype: oip_datatype(&t.ty),
                shape: t.shape.clone(),
            })
            .collect()
    };
    ModelMetadata {
        name: model.name.clone(),
        versions: model.versions.clone(),
        platform: model.platform.clone(),
        description: model.description.clone(),
        inputs: tensors(&model.interface.inputs),
        outputs: tensors(&model.interface.outputs),
        max_batch_size: model.max_batch_size,
        labels_file: model.labels_file.clone(),
        layout: model.layout.clone(),
    }
}

fn stat(s: crate::nn::stats::DurationStat) -> DurationStat {
    DurationStat {
        count: s.count,
        ns: s.nanos,
    }
}

/// A tensor type as the Open Inference Protocol names it. Types wasi-nn
/// cannot carry come from each backend in its own spelling (ONNX Runtime's
/// `int8`, OpenVINO's `i8`, tract's `bool`), which is why they are matched
/// by several names.
pub fn oip_datatype(ty: &DataType) -> String {
    let name = match ty {
        DataType::Known(ty) => match ty {
            ElementType::F16 => "FP16",
            ElementType::Bf16 => "BF16",
            ElementType::F32 => "FP32",
            ElementType::F64 => "FP64",
            ElementType::U8 => "UINT8",
            ElementType::I32 => "INT32",
            ElementType::I64 => "INT64",
        },
        DataType::Other(other) => match other.as_str() {
            "bool" | "boolean" => "BOOL",
            "i8" | "int8" => "INT8",
            "i16" | "int16" => "INT16",
            "u16" | "uint16" => "UINT16",
            "u32" | "uint32" => "UINT32",
            "u64" | "uint64" => "UINT64",
            "string" => "BYTES",
            other => return other.to_lowercase(),
        },
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatypes_have_their_protocol_names() {
        assert_eq!(oip_datatype(&DataType::Known(ElementType::F32)), "FP32");
        assert_eq!(oip_datatype(&DataType::Known(ElementType::I64)), "INT64");
        assert_eq!(oip_datatype(&DataType::Other("int8".into())), "INT8");
        assert_eq!(oip_datatype(&DataType::Other("i8".into())), "INT8");
        assert_eq!(oip_datatype(&DataType::Other("bool".into())), "BOOL");
        assert_eq!(
            oip_datatype(&DataType::Other("Complex64".into())),
            "complex64"
        );
    }
}
