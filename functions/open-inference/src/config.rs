//! The model configuration extension (Triton's `GET /v2/models/<name>/config`):
//! the model's configuration as Triton's `model_config.proto` writes it in
//! JSON, built from what the host says of the model. Clients read it to learn
//! how to batch and shape a request: `perf_analyzer` and Triton's
//! `image_client.py` need `max_batch_size`, each input's and output's
//! `data_type` and `dims` (without the batch dimension when there is one),
//! and an image input's `format`.

use serde::Serialize;
use wasi_infer_guest::models::{ModelMetadata, TensorMetadata};

/// `model_config.proto`'s `ModelConfig`, as far as this server has it.
#[derive(Debug, Serialize)]
pub struct ModelConfigResponse<'a> {
    pub name: &'a str,
    /// Triton's platform name for an ONNX model run by ONNX Runtime; empty
    /// for the other backends, which Triton names in `backend` alone.
    pub platform: &'static str,
    pub backend: &'a str,
    pub max_batch_size: u64,
    pub input: Vec<ConfigInput<'a>>,
    pub output: Vec<ConfigOutput<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ConfigInput<'a> {
    pub name: &'a str,
    pub data_type: String,
    pub format: &'static str,
    pub dims: &'a [i64],
}

#[derive(Debug, Serialize)]
pub struct ConfigOutput<'a> {
    pub name: &'a str,
    pub data_type: String,
    pub dims: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_filename: Option<&'a str>,
}

/// The configuration of `model`; `label_count` is how many lines its labels
/// file has, if it has one (the file is named on the outputs that have a
/// class for each line, as Triton names it on the output it labels).
pub fn of(model: &ModelMetadata, label_count: Option<usize>) -> ModelConfigResponse<'_> {
    let batched = model.max_batch_size > 0;
    let dims = |t| dims(t, batched);
    // An image layout (model.toml's [preprocess] layout) describes a
    // model's one input of three dimensions (channels and pixels).
    let image_format = match model.layout.as_deref() {
        Some("nchw") => "FORMAT_NCHW",
        Some("nhwc") => "FORMAT_NHWC",
        _ => "FORMAT_NONE",
    };
    let input = model
        .inputs
        .iter()
        .map(|t| ConfigInput {
            name: &t.name,
            data_type: data_type(&t.datatype),
            format: if model.inputs.len() == 1 && dims(t).len() == 3 {
                image_format
            } else {
                "FORMAT_NONE"
            },
            dims: dims(t),
        })
        .collect();
    let output = model
        .outputs
        .iter()
        .map(|t| {
            let classes = dims(t)
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).ok()?));
            let labelled = classes.is_some() && classes == label_count.map(|n| n as u64);
            ConfigOutput {
                name: &t.name,
                data_type: data_type(&t.datatype),
                dims: dims(t),
                label_filename: model.labels_file.as_deref().filter(|_| labelled),
            }
        })
        .collect();
    ModelConfigResponse {
        name: &model.name,
        platform: if model.platform == "onnxruntime" {
            "onnxruntime_onnx"
        } else {
            ""
        },
        backend: &model.platform,
        max_batch_size: model.max_batch_size,
        input,
        output,
    }
}

/// A tensor's dimensions, without the batch when the model has one.
fn dims(tensor: &TensorMetadata, batched: bool) -> &[i64] {
    let shape = tensor.shape.as_deref().unwrap_or(&[]);
    match shape.split_first() {
        Some((_, rest)) if batched => rest,
        _ => shape,
    }
}

/// The protocol's datatype as `model_config.proto`'s `DataType` names it.
fn data_type(datatype: &str) -> String {
    match datatype {
        "BYTES" => "TYPE_STRING".into(),
        "BOOL" | "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "INT32"
        | "INT64" | "FP16" | "FP32" | "FP64" | "BF16" => format!("TYPE_{datatype}"),
        _ => "TYPE_INVALID".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: Some(shape.to_vec()),
        }
    }

    fn classifier(max_batch_size: u64, batch: i64) -> ModelMetadata {
        ModelMetadata {
            name: "c".into(),
            versions: vec!["1".into()],
            platform: "onnxruntime".into(),
            description: None,
            inputs: vec![tensor("input", "FP32", &[batch, 3, 224, 224])],
            outputs: vec![tensor("logits", "FP32", &[batch, 1000])],
            max_batch_size,
            labels_file: Some("labels.txt".into()),
            layout: Some("nchw".into()),
        }
    }

    #[test]
    fn a_batched_model_has_dims_without_the_batch() {
        let json = serde_json::to_value(of(&classifier(64, -1), Some(1000))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "c", "platform": "onnxruntime_onnx",
                "backend": "onnxruntime", "max_batch_size": 64,
                "input": [{"name": "input", "data_type": "TYPE_FP32",
                           "format": "FORMAT_NCHW", "dims": [3, 224, 224]}],
                "output": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [1000],
                            "label_filename": "labels.txt"}]})
        );
    }

    #[test]
    fn a_pinned_model_has_full_dims_and_labels_only_where_they_fit() {
        let json = serde_json::to_value(of(&classifier(0, 1), Some(1000))).unwrap();
        assert_eq!(json["max_batch_size"], 0);
        assert_eq!(
            json["input"][0]["dims"],
            serde_json::json!([1, 3, 224, 224])
        );
        // Four dimensions are not an image's three.
        assert_eq!(json["input"][0]["format"], "FORMAT_NONE");
        assert_eq!(json["output"][0]["label_filename"], "labels.txt");
        let json = serde_json::to_value(of(&classifier(0, 1), Some(10))).unwrap();
        assert!(json["output"][0].get("label_filename").is_none());
        let mut tract = classifier(0, 1);
        tract.platform = "tract".into();
        tract.inputs[0].datatype = "BYTES".into();
        let json = serde_json::to_value(of(&tract, None)).unwrap();
        assert_eq!(
            (json["platform"].as_str(), json["backend"].as_str()),
            (Some(""), Some("tract"))
        );
        assert_eq!(json["input"][0]["data_type"], "TYPE_STRING");
    }
}
