//! The raw binary request (Triton's binary tensor data extension):
//! `Inference-Header-Content-Length: 0` says the body has no JSON at all
//! and is the bytes of the model's one input, whose datatype and shape are
//! the model's. A dynamic dimension is filled from the body's size, when
//! there is one; a model with more than one input, or more than one
//! dynamic dimension, needs the JSON that names them.

use serde_json::{Map, Value};
use wasi_infer_guest::ApiError;
use wasi_infer_guest::models::ModelMetadata;

use crate::datatype::Datatype;
use crate::protocol::{InferRequest, RequestInput};

/// The request a raw body of `body_len` bytes stands for: the model's one
/// input, its bytes the whole body (`binary_data_size`), every output.
pub fn request(model: &ModelMetadata, body_len: usize) -> Result<InferRequest<'static>, ApiError> {
    let how = "send the JSON inference request (with the binary data after it, if you like)";
    let [input] = model.inputs.as_slice() else {
        return Err(ApiError::bad_request(format!(
            "a raw binary request (Inference-Header-Content-Length: 0) is for a model with one input; model {} has {}: {how}",
            model.name,
            model.inputs.len()
        )));
    };
    let name = &input.name;
    let size = Datatype::parse(&input.datatype)
        .and_then(Datatype::element_size)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "a raw binary request cannot carry input {name:?} of datatype {}: {how}",
                input.datatype
            ))
        })?;
    let Some(shape) = input.shape.as_deref() else {
        return Err(ApiError::bad_request(format!(
            "model {} does not state input {name:?}'s shape, so a raw binary request cannot give it: {how}",
            model.name
        )));
    };
    let elements = body_len / size;
    let fixed: u64 = shape
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as u64)
        .product();
    let dynamic = shape.iter().filter(|&&d| d < 0).count();
    let fill = match dynamic {
        0 => None,
        1 if fixed > 0 && (elements as u64).is_multiple_of(fixed) && elements > 0 => {
            Some(elements as u64 / fixed)
        }
        1 => {
            return Err(ApiError::bad_request(format!(
                "the raw body's {body_len} bytes are not a whole number of input {name:?}'s {} of shape {shape:?}",
                input.datatype
            )));
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "input {name:?} has {dynamic} dynamic dimensions ({shape:?}): a raw binary request fills one from the body's size: {how}"
            )));
        }
    };
    let shape = shape
        .iter()
        .map(|&d| if d < 0 { fill.unwrap_or(0) as i64 } else { d })
        .collect();
    let mut parameters = Map::new();
    parameters.insert("binary_data_size".into(), Value::from(body_len));
    Ok(InferRequest {
        id: None,
        parameters: None,
        inputs: vec![RequestInput {
            name: name.clone(),
            datatype: input.datatype.clone(),
            shape,
            parameters: Some(parameters),
            data: None,
        }],
        outputs: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasi_infer_guest::models::TensorMetadata;

    fn model(inputs: &[(&str, &[i64])]) -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "tract".into(),
            description: None,
            inputs: inputs
                .iter()
                .map(|(datatype, shape)| TensorMetadata {
                    name: "x".into(),
                    datatype: datatype.to_string(),
                    shape: Some(shape.to_vec()),
                })
                .collect(),
            outputs: vec![],
            max_batch_size: 0,
            labels_file: None,
            layout: None,
        }
    }

    #[test]
    fn the_body_is_the_one_input_with_its_dynamic_dimension_filled() {
        let r = request(&model(&[("FP32", &[1, 1, 28, 28])]), 3136).unwrap();
        assert_eq!(r.inputs[0].shape, [1, 1, 28, 28]);
        let size = r.inputs[0].parameters.as_ref().unwrap()["binary_data_size"].clone();
        assert_eq!(size, 3136);
        let r = request(&model(&[("FP32", &[-1, 1, 28, 28])]), 2 * 3136).unwrap();
        assert_eq!(r.inputs[0].shape, [2, 1, 28, 28]);
    }

    #[test]
    fn what_a_raw_body_cannot_say_is_400() {
        let e = |m: ModelMetadata, len| request(&m, len).unwrap_err().message;
        assert!(e(model(&[("FP32", &[1]), ("FP32", &[1])]), 8).contains("has 2"));
        assert!(e(model(&[("BYTES", &[1])]), 8).contains("datatype BYTES"));
        assert!(e(model(&[("FP32", &[-1, -1])]), 8).contains("2 dynamic dimensions"));
        assert!(e(model(&[("FP32", &[-1, 3])]), 8).contains("not a whole number"));
        assert!(e(model(&[("FP32", &[-1, 3])]), 0).contains("not a whole number"));
    }
}
