//! An ONNX file's inputs and outputs as its graph declares them, read from
//! the protobuf alone: no backend is loaded. tract reads them to check a
//! `model.toml`; the repository reads them to serve a model folder that has
//! no `model.toml` at all.

use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use super::interface::{DataType, ModelInterface, TensorInfo};
use super::tensor::ElementType;

/// Reads the interface of the ONNX file at `path`.
pub fn read_interface(path: &Path) -> Result<ModelInterface, String> {
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| format!("cannot read {}: {e:#}", path.display()))?;
    interface(&proto)
}

/// The model's inputs and outputs as its ONNX graph declares them.
pub fn interface(proto: &pb::ModelProto) -> Result<ModelInterface, String> {
    let graph = proto.graph.as_ref().ok_or("the ONNX file has no graph")?;
    // Older ONNX files also list their weights among the graph's inputs.
    let is_weight = |name: &str| graph.initializer.iter().any(|w| w.name == name);
    Ok(ModelInterface {
        inputs: graph
            .input
            .iter()
            .filter(|i| !is_weight(&i.name))
            .map(tensor_info)
            .collect(),
        outputs: graph.output.iter().map(tensor_info).collect(),
    })
}

fn tensor_info(value: &pb::ValueInfoProto) -> TensorInfo {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    use pb::type_proto::Value;
    let tensor = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(tensor)) => Some(tensor),
        _ => None,
    };
    let ty = match tensor.map(|t| t.elem_type) {
        Some(1) => DataType::Known(ElementType::F32),
        Some(2) => DataType::Known(ElementType::U8),
        Some(6) => DataType::Known(ElementType::I32),
        Some(7) => DataType::Known(ElementType::I64),
        Some(10) => DataType::Known(ElementType::F16),
        Some(11) => DataType::Known(ElementType::F64),
        Some(16) => DataType::Known(ElementType::Bf16),
        Some(code) => DataType::Other(pb::tensor_proto::DataType::try_from(code).map_or_else(
            |_| format!("onnx type {code}"),
            |t| format!("{t:?}").to_lowercase(),
        )),
        None => DataType::Other("not a tensor".into()),
    };
    let shape = tensor.and_then(|t| t.shape.as_ref()).map(|shape| {
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Dim::DimValue(n)) if n > 0 => n,
                _ => -1,
            })
            .collect()
    });
    TensorInfo {
        name: value.name.clone(),
        ty,
        shape,
    }
}
