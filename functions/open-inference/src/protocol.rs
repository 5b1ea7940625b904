//! The protocol's JSON: the inference request as it is read, the inference
//! response and the metadata answers as they are written, and the
//! `parameters` objects. Nothing here checks a request against a model
//! ([`crate::infer`] does) or touches tensor data ([`crate::tensor_json`],
//! [`crate::binary`]).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use wasi_infer_guest::ApiError;
use wasi_infer_guest::models::{ModelMetadata, ServerMetadata, TensorMetadata};

use crate::tensor_json::JsonData;

/// The extensions this server implements, for `GET /v2`.
pub const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
];

/// A `parameters` object: any keys, of which each function reads its own.
pub type Parameters = Map<String, Value>;

/// `POST .../infer`. Unknown fields are ignored, as the protocol allows
/// clients to send their own.
///
/// An input's `data` is kept as its raw JSON text, borrowed from the body:
/// its datatype and shape (which may come after it in the object) decide how
/// it is read, and reading it then goes straight to bytes, without a tree of
/// JSON values in between (an image tensor is 150,528 numbers).
#[derive(Debug, Deserialize)]
pub struct InferRequest<'a> {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(borrow)]
    pub inputs: Vec<RequestInput<'a>>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

#[derive(Debug, Deserialize)]
pub struct RequestInput<'a> {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Parameters>,
}

/// Reads the JSON part of an inference request.
pub fn parse_request(json: &[u8]) -> Result<InferRequest<'_>, ApiError> {
    serde_json::from_slice(json).map_err(|e| {
        ApiError::bad_request(format!("the body is not a valid inference request: {e}"))
    })
}

/// A boolean parameter; `owner` names whose parameters they are, for the message.
pub fn bool_param(
    parameters: Option<&Parameters>,
    key: &str,
    owner: &str,
) -> Result<Option<bool>, ApiError> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{owner}: parameter {key} must be true or false, got {other}"
        ))),
    }
}

/// A byte count parameter: a whole number of at least 0.
pub fn size_param(
    parameters: Option<&Parameters>,
    key: &str,
    owner: &str,
) -> Result<Option<u64>, ApiError> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(other) => Err(ApiError::bad_request(format!(
            "{owner}: parameter {key} must be a whole number of bytes, got {other}"
        ))),
    }
}

/// The inference response's JSON part.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub outputs: Vec<ResponseOutput<'a>>,
}

/// One output: with `data` when it is written as JSON, with `parameters`
/// giving its size when its bytes follow the JSON.
#[derive(Debug, Serialize)]
pub struct ResponseOutput<'a> {
    pub name: &'a str,
    pub datatype: &'static str,
    pub shape: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BinaryDataSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<JsonData<'a>>,
}

#[derive(Debug, Serialize)]
pub struct BinaryDataSize {
    pub binary_data_size: usize,
}

/// `GET /v2`.
#[derive(Debug, Serialize)]
pub struct ServerMetadataResponse<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub extensions: &'static [&'static str],
}

impl<'a> From<&'a ServerMetadata> for ServerMetadataResponse<'a> {
    fn from(server: &'a ServerMetadata) -> Self {
        Self {
            name: &server.name,
            version: &server.version,
            extensions: EXTENSIONS,
        }
    }
}

/// `GET /v2/models/<name>`.
#[derive(Debug, Serialize)]
pub struct ModelMetadataResponse<'a> {
    pub name: &'a str,
    pub versions: &'a [String],
    pub platform: &'a str,
    pub inputs: Vec<TensorMetadataResponse<'a>>,
    pub outputs: Vec<TensorMetadataResponse<'a>>,
}

#[derive(Debug, Serialize)]
pub struct TensorMetadataResponse<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: &'a [i64],
}

impl<'a> From<&'a ModelMetadata> for ModelMetadataResponse<'a> {
    fn from(model: &'a ModelMetadata) -> Self {
        let tensors = |list: &'a [TensorMetadata]| {
            list.iter()
                .map(|t| TensorMetadataResponse {
                    name: &t.name,
                    datatype: &t.datatype,
                    // The protocol requires a shape. When the model does not
                    // state even its rank there is no honest list of -1s to
                    // give, so the shape is empty; inputs of such a tensor
                    // are accepted in any shape.
                    shape: t.shape.as_deref().unwrap_or(&[]),
                })
                .collect()
        };
        Self {
            name: &model.name,
            versions: &model.versions,
            platform: &model.platform,
            inputs: tensors(&model.inputs),
            outputs: tensors(&model.outputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_ignore_unknown_fields_and_keep_data_raw() {
        let json = br#"{"id": "42", "extra": {"x": 1},
            "parameters": {"binary_data_output": true, "custom": "y"},
            "inputs": [{"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2.5], "more": 1},
                       {"name": "b", "datatype": "INT64", "shape": [1],
                        "parameters": {"binary_data_size": 8}}],
            "outputs": [{"name": "o", "parameters": {"binary_data": false}}]}"#;
        let r = parse_request(json).unwrap();
        assert_eq!(r.id.as_deref(), Some("42"));
        assert_eq!(r.inputs.len(), 2);
        assert_eq!(r.inputs[0].data.unwrap().get(), "[1, 2.5]");
        assert!(r.inputs[1].data.is_none());
        assert_eq!(
            size_param(r.inputs[1].parameters.as_ref(), "binary_data_size", "b").unwrap(),
            Some(8)
        );
        assert_eq!(
            bool_param(r.parameters.as_ref(), "binary_data_output", "r").unwrap(),
            Some(true)
        );
        let outputs = r.outputs.unwrap();
        assert_eq!(outputs[0].name, "o");
        assert_eq!(
            bool_param(outputs[0].parameters.as_ref(), "binary_data", "o").unwrap(),
            Some(false)
        );
    }

    #[test]
    fn null_data_and_absent_parts_are_none() {
        let r = parse_request(
            br#"{"inputs": [{"name": "a", "datatype": "FP32", "shape": [], "data": null}]}"#,
        )
        .unwrap();
        assert!(r.id.is_none() && r.parameters.is_none() && r.outputs.is_none());
        assert!(r.inputs[0].data.is_none());
    }

    #[test]
    fn malformed_requests_are_400() {
        for bad in [
            &b""[..],
            b"not json",
            b"[]",
            b"{}",
            br#"{"inputs": {}}"#,
            br#"{"inputs": [{"name": "a", "shape": [1], "data": [1]}]}"#,
            br#"{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1.5], "data": [1]}]}"#,
            br#"{"inputs": [{"name": "a", "datatype": "FP32", "shape": "1", "data": [1]}]}"#,
            br#"{"inputs": [], "parameters": [1]}"#,
            br#"{"inputs": [], "id": 42}"#,
            b"{\"inputs\": [], \"id\": \"\xff\"}",
            br#"{"inputs": []} trailing"#,
        ] {
            let e = parse_request(bad).unwrap_err();
            assert_eq!(e.status, 400, "{}", String::from_utf8_lossy(bad));
            assert!(e.message.contains("not a valid inference request"));
        }
    }

    #[test]
    fn parameters_of_the_wrong_type_are_400() {
        let params: Parameters = serde_json::from_str(
            r#"{"binary_data": "yes", "binary_data_size": -1, "f": 1.5, "s": "8"}"#,
        )
        .unwrap();
        let p = Some(&params);
        let e = bool_param(p, "binary_data", "output \"o\"").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "output \"o\": parameter binary_data must be true or false, got \"yes\""
        );
        for key in ["binary_data_size", "f", "s"] {
            let e = size_param(p, key, "input \"i\"").unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains("whole number of bytes"), "{}", e.message);
        }
        assert_eq!(bool_param(p, "absent", "x").unwrap(), None);
        assert_eq!(bool_param(None, "absent", "x").unwrap(), None);
        assert_eq!(size_param(None, "absent", "x").unwrap(), None);
    }

    fn tensor(name: &str, datatype: &str, shape: Option<Vec<i64>>) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape,
        }
    }

    #[test]
    fn model_metadata_is_written_as_the_protocol_says() {
        let model = ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "onnxruntime".into(),
            description: Some("not part of the protocol".into()),
            inputs: vec![tensor("input", "FP32", Some(vec![-1, 3, 224, 224]))],
            outputs: vec![
                tensor("logits", "FP32", Some(vec![-1, 1000])),
                tensor("x", "complex64", None),
            ],
            max_batch_size: 0,
            labels_file: None,
            layout: None,
        };
        let json = serde_json::to_value(ModelMetadataResponse::from(&model)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "m", "versions": ["1"], "platform": "onnxruntime",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
                "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]},
                            {"name": "x", "datatype": "complex64", "shape": []}]})
        );
    }

    #[test]
    fn server_metadata_names_the_binary_extension() {
        let server = ServerMetadata {
            name: "wasi-infer".into(),
            version: "0.1.0".into(),
            max_body_bytes: 1 << 24,
        };
        assert_eq!(
            serde_json::to_string(&ServerMetadataResponse::from(&server)).unwrap(),
            r#"{"name":"wasi-infer","version":"0.1.0","extensions":["binary_tensor_data","classification","model_configuration","statistics"]}"#
        );
    }
}
