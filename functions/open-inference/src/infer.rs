//! An inference: the request checked against the model's metadata (which
//! inputs, of what datatype and shape, which outputs, JSON or binary), its
//! tensors read into the bytes wasi-nn takes, and the model's outputs written
//! back as the response.
//!
//! Everything a request can get wrong is found here, before the host sees it,
//! so the client is told in the protocol's terms (input names, datatypes,
//! shapes) rather than in a backend's. The cheap checks of every input and
//! output come first; tensor data is read only once they all pass.

use std::borrow::Cow;

use serde_json::value::RawValue;
use wasi_infer_guest::ApiError;
use wasi_infer_guest::models::{ModelMetadata, TensorMetadata};
use wasi_infer_guest::nn::{self, TensorType};

use crate::binary;
use crate::classification;
use crate::datatype::Datatype;
use crate::protocol::{
    self, BinaryDataSize, InferRequest, InferResponse, RequestInput, RequestOutput, ResponseOutput,
};
use crate::tensor_json::{self, shape_text};

/// A request that fits the model, ready for wasi-nn.
#[derive(Debug)]
pub struct Plan<'a> {
    /// In the model's order, whatever the request's: a host that binds
    /// inputs by position then binds them right.
    pub inputs: Vec<PlannedInput<'a>>,
    /// In the order of the response.
    pub outputs: Vec<PlannedOutput>,
}

#[derive(Debug)]
pub struct PlannedInput<'a> {
    pub name: String,
    pub dims: Vec<u32>,
    pub ty: TensorType,
    /// Read from JSON, or the binary chunk borrowed from the body.
    pub data: Cow<'a, [u8]>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PlannedOutput {
    pub name: String,
    /// Its place among the model's outputs.
    pub index: usize,
    /// Whether its bytes follow the JSON rather than being written in it.
    pub binary: bool,
    /// The classification extension's k, when its top k are asked for.
    pub classification: Option<u32>,
}

/// Checks `request` against `model`, and reads its tensors; `binary` is the
/// body after the JSON part, when the request has the header that splits it.
pub fn plan<'a>(
    model: &ModelMetadata,
    request: &InferRequest<'a>,
    binary: Option<&'a [u8]>,
) -> Result<Plan<'a>, ApiError> {
    refuse_sequence(request.parameters.as_ref())?;
    let default_binary = protocol::bool_param(
        request.parameters.as_ref(),
        "binary_data_output",
        "the request",
    )?
    .unwrap_or(false);
    let outputs = plan_outputs(model, request.outputs.as_deref(), default_binary)?;

    let mut checked = Vec::with_capacity(request.inputs.len());
    let mut given = vec![false; model.inputs.len()];
    for input in &request.inputs {
        let index = model
            .inputs
            .iter()
            .position(|m| m.name == input.name)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "model {} has no input {:?}: its inputs are {}",
                    model.name,
                    input.name,
                    names(&model.inputs)
                ))
            })?;
        if std::mem::replace(&mut given[index], true) {
            return Err(ApiError::bad_request(format!(
                "input {:?} is given twice",
                input.name
            )));
        }
        let spec = &model.inputs[index];
        let (dtype, ty) = check_datatype(model, spec, input)?;
        let (dims, elements) = check_shape(model, spec, input)?;
        let source = source(input)?;
        checked.push(Checked {
            index,
            input,
            dtype,
            ty,
            dims,
            elements,
            source,
        });
    }
    let missing: Vec<&TensorMetadata> = model
        .inputs
        .iter()
        .zip(&given)
        .filter(|(_, given)| !**given)
        .map(|(spec, _)| spec)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the request lacks model {}'s input{} {}",
            model.name,
            if missing.len() == 1 { "" } else { "s" },
            names(missing)
        )));
    }

    let sizes: Vec<(&str, u64)> = checked
        .iter()
        .filter_map(|c| match c.source {
            Source::Binary(size) => Some((c.input.name.as_str(), size)),
            Source::Json(_) => None,
        })
        .collect();
    let mut chunks = binary::take_chunks(binary, &sizes)?.into_iter();

    let mut inputs = Vec::with_capacity(checked.len());
    for c in checked {
        let name = &c.input.name;
        let shape = &c.input.shape;
        let data = match c.source {
            Source::Json(raw) => {
                Cow::Owned(tensor_json::decode(name, c.dtype, shape, c.elements, raw)?)
            }
            Source::Binary(_) => {
                // One chunk per binary input, taken in the same order.
                let chunk = chunks.next().unwrap_or_default();
                binary::check_input(name, c.dtype, shape, c.elements, chunk)?;
                Cow::Borrowed(chunk)
            }
        };
        inputs.push((
            c.index,
            PlannedInput {
                name: name.clone(),
                dims: c.dims,
                ty: c.ty,
                data,
            },
        ));
    }
    inputs.sort_by_key(|(index, _)| *index);
    Ok(Plan {
        inputs: inputs.into_iter().map(|(_, input)| input).collect(),
        outputs,
    })
}

/// An input that passed the cheap checks; its data is still unread.
struct Checked<'r, 'a> {
    index: usize,
    input: &'r RequestInput<'a>,
    dtype: Datatype,
    ty: TensorType,
    dims: Vec<u32>,
    elements: u64,
    source: Source<'a>,
}

enum Source<'a> {
    Json(&'a RawValue),
    /// Its `binary_data_size`.
    Binary(u64),
}

/// `"a", "b"`, or `none` for a model without any.
fn names<'m>(tensors: impl IntoIterator<Item = &'m TensorMetadata>) -> String {
    let quoted: Vec<String> = tensors
        .into_iter()
        .map(|t| format!("{:?}", t.name))
        .collect();
    if quoted.is_empty() {
        "none".into()
    } else {
        quoted.join(", ")
    }
}

/// The request's datatype must be the model's, and wasi-nn must carry it.
fn check_datatype(
    model: &ModelMetadata,
    spec: &TensorMetadata,
    input: &RequestInput<'_>,
) -> Result<(Datatype, TensorType), ApiError> {
    let name = &input.name;
    let requested = Datatype::parse(&input.datatype).ok_or_else(|| {
        let all: Vec<&str> = Datatype::ALL.iter().map(|t| t.name()).collect();
        ApiError::bad_request(format!(
            "input {name:?}: unknown datatype {:?}: the protocol's are {}",
            input.datatype,
            all.join(", ")
        ))
    })?;
    // Checked before the match, so that a client is not sent to a type that
    // would be refused next.
    let takes = Datatype::parse(&spec.datatype);
    let ty = takes.and_then(Datatype::to_nn).ok_or_else(|| {
        ApiError::bad_request(format!(
            "model {}'s input {name:?} is {}, which wasi-nn cannot pass to a model (it carries {})",
            model.name,
            spec.datatype,
            Datatype::nn_names()
        ))
    })?;
    if takes != Some(requested) {
        return Err(ApiError::bad_request(format!(
            "input {name:?} is {requested}, but model {} takes {}",
            model.name, spec.datatype
        )));
    }
    Ok((requested, ty))
}

/// The shape must have the model's rank and fixed dimensions; returns it as
/// wasi-nn's dimensions and the number of elements it holds.
fn check_shape(
    model: &ModelMetadata,
    spec: &TensorMetadata,
    input: &RequestInput<'_>,
) -> Result<(Vec<u32>, u64), ApiError> {
    let name = &input.name;
    let shape = &input.shape;
    if shape.iter().any(|&d| d < 0) {
        return Err(ApiError::bad_request(format!(
            "input {name:?}: shape {} has a negative dimension",
            shape_text(shape)
        )));
    }
    // A model that does not state the rank takes any shape; the host's
    // backend is then the judge.
    if let Some(takes) = &spec.shape {
        if takes.len() != shape.len() {
            return Err(ApiError::bad_request(format!(
                "input {name:?} has shape {}, of rank {}, but model {} takes rank {}: {}",
                shape_text(shape),
                shape.len(),
                model.name,
                takes.len(),
                shape_text(takes)
            )));
        }
        let fixed_mismatch = shape
            .iter()
            .zip(takes)
            .position(|(&got, &want)| want >= 0 && got != want);
        if let Some(axis) = fixed_mismatch {
            return Err(ApiError::bad_request(format!(
                "input {name:?} has shape {}, but model {} takes {}: dimension {axis} must be {}",
                shape_text(shape),
                model.name,
                shape_text(takes),
                takes[axis]
            )));
        }
    }
    let dims = shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| {
            ApiError::bad_request(format!(
                "input {name:?}: shape {} has a dimension past wasi-nn's limit of {}",
                shape_text(shape),
                u32::MAX
            ))
        })?;
    let elements = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(u64::from(d)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "input {name:?}: shape {} holds more than 2^64 elements",
                shape_text(shape)
            ))
        })?;
    Ok((dims, elements))
}

/// Triton's shared-memory extension (`shared_memory_region`, ...) names memory
/// this server cannot see: ignoring it would answer with empty tensors.
fn refuse_shared_memory(
    parameters: Option<&protocol::Parameters>,
    what: &str,
) -> Result<(), ApiError> {
    match parameters.and_then(|p| p.keys().find(|k| k.starts_with("shared_memory"))) {
        Some(key) => Err(ApiError::bad_request(format!(
            "{what}: parameters.{key}: the shared-memory extension is not supported: send the tensor's data in the request"
        ))),
        None => Ok(()),
    }
}

/// A request of a sequence (Triton's `sequence_id`, for stateful models
/// whose state lives in the server between requests) is refused: every
/// request here is computed on its own, and answering it as if it were not
/// part of a sequence would be wrong without a word. 0 (or "") is none.
fn refuse_sequence(parameters: Option<&protocol::Parameters>) -> Result<(), ApiError> {
    let none =
        |v: &serde_json::Value| v.is_null() || v.as_u64() == Some(0) || v.as_str() == Some("");
    match parameters.and_then(|p| p.get("sequence_id")) {
        Some(id) if !none(id) => Err(ApiError::bad_request(format!(
            "parameters.sequence_id is {id}: stateful models (sequence batching) are not supported; \
             each request is computed on its own: send it without sequence_id"
        ))),
        _ => Ok(()),
    }
}

/// Where the input's data is: in `data`, or in the binary part.
fn source<'a>(input: &RequestInput<'a>) -> Result<Source<'a>, ApiError> {
    let name = &input.name;
    refuse_shared_memory(input.parameters.as_ref(), &format!("input {name:?}"))?;
    let size = protocol::size_param(
        input.parameters.as_ref(),
        "binary_data_size",
        &format!("input {name:?}"),
    )?;
    match (input.data, size) {
        (Some(data), None) => Ok(Source::Json(data)),
        (None, Some(size)) => Ok(Source::Binary(size)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "input {name:?} has both data and parameters.binary_data_size: give one"
        ))),
        (None, None) => Err(ApiError::bad_request(format!(
            "input {name:?} has neither data nor parameters.binary_data_size"
        ))),
    }
}

/// The outputs to return: those requested, in their order, or all the
/// model's. An empty list is taken as none given, as Triton does: a response
/// without outputs is of no use to anyone.
fn plan_outputs(
    model: &ModelMetadata,
    requested: Option<&[RequestOutput]>,
    default_binary: bool,
) -> Result<Vec<PlannedOutput>, ApiError> {
    let requested = match requested {
        Some(list) if !list.is_empty() => list,
        _ => {
            return Ok(model
                .outputs
                .iter()
                .enumerate()
                .map(|(index, spec)| PlannedOutput {
                    name: spec.name.clone(),
                    index,
                    binary: default_binary,
                    classification: None,
                })
                .collect());
        }
    };
    let mut planned: Vec<PlannedOutput> = Vec::with_capacity(requested.len());
    for output in requested {
        let name = &output.name;
        let index = model
            .outputs
            .iter()
            .position(|m| &m.name == name)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "model {} has no output {name:?}: its outputs are {}",
                    model.name,
                    names(&model.outputs)
                ))
            })?;
        if planned.iter().any(|p| p.index == index) {
            return Err(ApiError::bad_request(format!(
                "output {name:?} is requested twice"
            )));
        }
        let parameters = output.parameters.as_ref();
        let classification = classification::requested(parameters, name)?;
        refuse_shared_memory(parameters, &format!("output {name:?}"))?;
        let binary = protocol::bool_param(parameters, "binary_data", &format!("output {name:?}"))?
            .unwrap_or(default_binary);
        planned.push(PlannedOutput {
            name: name.clone(),
            index,
            binary,
            classification,
        });
    }
    Ok(planned)
}

/// The wasi-nn tensors of a plan. Creating a tensor copies its bytes into the
/// host, so the plan (and the body it borrows from) can go before the compute.
pub fn nn_inputs(inputs: Vec<PlannedInput<'_>>) -> Vec<nn::Input> {
    inputs
        .into_iter()
        .map(|i| nn::Input::new(&i.name, &i.dims, i.ty, &i.data))
        .collect()
}

/// The version a response names: the one that served it, or else the
/// model's newest. The host gives every model a version ("1" when its
/// model.toml names none); "1" stands in if a host ever gives none.
pub fn version<'m>(model: &'m ModelMetadata, served: Option<&'m str>) -> &'m str {
    served
        .or_else(|| model.versions.last().map(String::as_str))
        .unwrap_or("1")
}

/// A response body, and the length of its JSON part when binary outputs
/// follow it.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    pub json_len: Option<usize>,
}

/// What the response says of the model and the request.
pub struct Reply<'a> {
    pub model: &'a ModelMetadata,
    /// The version that computed it.
    pub version: &'a str,
    pub id: Option<&'a str>,
    /// The model's labels, for outputs asked for as classifications.
    pub labels: Option<&'a [String]>,
}

/// The response to a compute that returned `results`.
pub fn respond(
    reply: &Reply<'_>,
    outputs: &[PlannedOutput],
    results: &[nn::Output],
) -> Result<Answer, ApiError> {
    let model = reply.model;
    // Ranked outputs first: the response borrows their bytes.
    let mut ranked = Vec::with_capacity(outputs.len());
    for planned in outputs {
        let result = find_output(model, planned, results)?;
        let dtype = Datatype::from_nn(result.ty);
        check_output_size(&planned.name, dtype, result)?;
        ranked.push(match planned.classification {
            Some(k) => Some(classification::classify(
                &planned.name,
                dtype,
                &result.dims,
                &result.data,
                k,
                model.max_batch_size > 0,
                reply.labels,
            )?),
            None => None,
        });
    }
    let mut written = Vec::with_capacity(outputs.len());
    let mut chunks = Vec::new();
    for (planned, ranked) in outputs.iter().zip(&ranked) {
        let result = find_output(model, planned, results)?;
        let (dtype, dims, bytes) = match ranked {
            Some(c) => (Datatype::Bytes, c.dims.as_slice(), c.bytes.as_slice()),
            None => (
                Datatype::from_nn(result.ty),
                result.dims.as_slice(),
                result.data.as_slice(),
            ),
        };
        let (parameters, data) = if planned.binary {
            chunks.push(bytes);
            let size = BinaryDataSize {
                binary_data_size: bytes.len(),
            };
            (Some(size), None)
        } else {
            let data = tensor_json::encodable(&planned.name, dtype, bytes)?;
            (None, Some(data))
        };
        written.push(ResponseOutput {
            name: &planned.name,
            // The type of the bytes returned, which is what a client decodes;
            // the model's own name for it may be one wasi-nn does not have.
            datatype: dtype.name(),
            shape: dims,
            parameters,
            data,
        });
    }
    let json = serde_json::to_vec(&InferResponse {
        model_name: &model.name,
        model_version: reply.version,
        id: reply.id,
        outputs: written,
    })
    .map_err(|e| ApiError::internal(format!("cannot write the response: {e}")))?;
    if outputs.iter().any(|o| o.binary) {
        let json_len = json.len();
        Ok(Answer {
            body: binary::assemble(json, &chunks),
            json_len: Some(json_len),
        })
    } else {
        Ok(Answer {
            body: json,
            json_len: None,
        })
    }
}

/// The host's tensor for a planned output: by name, or, when the host names
/// none of them as the model does (wasmtime's OpenVINO backend numbers them)
/// but returns as many, by position.
fn find_output<'r>(
    model: &ModelMetadata,
    planned: &PlannedOutput,
    results: &'r [nn::Output],
) -> Result<&'r nn::Output, ApiError> {
    if let Some(result) = results.iter().find(|r| r.name == planned.name) {
        return Ok(result);
    }
    let renamed = results.len() == model.outputs.len()
        && !results
            .iter()
            .any(|r| model.outputs.iter().any(|m| m.name == r.name));
    renamed
        .then(|| results.get(planned.index))
        .flatten()
        .ok_or_else(|| {
            let returned: Vec<String> = results.iter().map(|r| format!("{:?}", r.name)).collect();
            ApiError::internal(format!(
                "the model returned no output {:?} (it returned {})",
                planned.name,
                if returned.is_empty() {
                    "none".to_string()
                } else {
                    returned.join(", ")
                }
            ))
        })
}

/// A fixed-size output's bytes must be its shape's worth: the client will
/// decode them by the shape.
fn check_output_size(name: &str, dtype: Datatype, result: &nn::Output) -> Result<(), ApiError> {
    let Some(size) = dtype.element_size() else {
        return Ok(());
    };
    let expected = result
        .dims
        .iter()
        .try_fold(size as u64, |n, &d| n.checked_mul(u64::from(d)));
    if expected == u64::try_from(result.data.len()).ok() {
        Ok(())
    } else {
        Err(ApiError::internal(format!(
            "the model's output {name:?} has {} bytes, which is not shape {} of {dtype}",
            result.data.len(),
            shape_text(&result.dims)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, datatype: &str, shape: Option<&[i64]>) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.map(<[i64]>::to_vec),
        }
    }

    /// An image classifier with a second, token-like input.
    fn model() -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "onnxruntime".into(),
            description: None,
            inputs: vec![
                tensor("input", "FP32", Some(&[-1, 3, 2, 2])),
                tensor("ids", "INT64", Some(&[-1, -1])),
            ],
            outputs: vec![
                tensor("logits", "FP32", Some(&[-1, 4])),
                tensor("extra", "INT64", None),
            ],
            max_batch_size: 0,
            labels_file: None,
            layout: None,
        }
    }

    fn respond(
        model: &ModelMetadata,
        version: &str,
        id: Option<&str>,
        outputs: &[PlannedOutput],
        results: &[nn::Output],
    ) -> Result<Answer, ApiError> {
        let reply = Reply {
            model,
            version,
            id,
            labels: None,
        };
        super::respond(&reply, outputs, results)
    }

    fn input_json(data: &str) -> String {
        format!(r#"{{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": {data}}}"#)
    }

    const IDS: &str = r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2], "data": [[7, 8]]}"#;

    fn twelve() -> String {
        let v: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        format!("[{}]", v.join(", "))
    }

    fn plan_of(json: &str, binary: Option<&[u8]>) -> Result<PlanSummary, ApiError> {
        let request = protocol::parse_request(json.as_bytes())?;
        let p = plan(&model(), &request, binary)?;
        Ok(PlanSummary {
            inputs: p
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.dims.clone(), i.ty, i.data.to_vec()))
                .collect(),
            borrowed: p
                .inputs
                .iter()
                .map(|i| matches!(i.data, Cow::Borrowed(_)))
                .collect(),
            outputs: p.outputs,
        })
    }

    struct PlanSummary {
        inputs: Vec<(String, Vec<u32>, TensorType, Vec<u8>)>,
        borrowed: Vec<bool>,
        outputs: Vec<PlannedOutput>,
    }

    fn bad(json: &str) -> String {
        bad_with(json, None)
    }

    fn bad_with(json: &str, binary: Option<&[u8]>) -> String {
        match plan_of(json, binary) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => {
                assert_eq!(e.status, 400, "{}", e.message);
                e.message
            }
        }
    }

    fn request(inputs: &[&str], rest: &str) -> String {
        format!(r#"{{"inputs": [{}]{rest}}}"#, inputs.join(", "))
    }

    fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
        values.into_iter().flat_map(f32::to_le_bytes).collect()
    }

    #[test]
    fn a_fitting_request_is_planned_in_model_order() {
        // Given in the other order than the model's.
        let p = plan_of(&request(&[IDS, &input_json(&twelve())], ""), None).unwrap();
        assert_eq!(p.inputs.len(), 2);
        assert_eq!(p.inputs[0].0, "input");
        assert_eq!(p.inputs[0].1, [1, 3, 2, 2]);
        assert_eq!(p.inputs[0].2, TensorType::Fp32);
        assert_eq!(p.inputs[0].3, f32_bytes((0..12).map(|i| i as f32)));
        assert_eq!(p.inputs[1].0, "ids");
        assert_eq!(p.inputs[1].2, TensorType::I64);
        assert_eq!(
            p.inputs[1].3,
            [7i64.to_le_bytes(), 8i64.to_le_bytes()].concat()
        );
        assert_eq!(p.outputs, [out("logits", 0, false), out("extra", 1, false)]);
    }

    #[test]
    fn dynamic_dimensions_take_any_size() {
        let ids =
            r#"{"name": "ids", "datatype": "INT64", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}"#;
        let batch = format!(
            r#"{{"name": "input", "datatype": "FP32", "shape": [2, 3, 2, 2], "data": [{}]}}"#,
            vec!["0.5"; 24].join(",")
        );
        let p = plan_of(&request(&[&batch, ids], ""), None).unwrap();
        assert_eq!(p.inputs[0].1, [2, 3, 2, 2]);
        assert_eq!(p.inputs[1].1, [2, 3]);
    }

    #[test]
    fn unknown_twice_and_missing_inputs() {
        let m = bad(&request(
            &[
                IDS,
                &input_json(&twelve()),
                r#"{"name": "z", "datatype": "FP32", "shape": [1], "data": [1]}"#,
            ],
            "",
        ));
        assert_eq!(
            m,
            r#"model m has no input "z": its inputs are "input", "ids""#
        );
        let m = bad(&request(&[IDS, &input_json(&twelve()), IDS], ""));
        assert_eq!(m, r#"input "ids" is given twice"#);
        let m = bad(&request(&[IDS], ""));
        assert_eq!(m, r#"the request lacks model m's input "input""#);
        let m = bad(&request(&[], ""));
        assert_eq!(m, r#"the request lacks model m's inputs "input", "ids""#);
    }

    #[test]
    fn datatypes_must_be_the_models_and_carried_by_wasi_nn() {
        let wrong = r#"{"name": "ids", "datatype": "INT32", "shape": [1, 2], "data": [7, 8]}"#;
        assert_eq!(
            bad(&request(&[&input_json(&twelve()), wrong], "")),
            r#"input "ids" is INT32, but model m takes INT64"#
        );
        let unknown = r#"{"name": "ids", "datatype": "int64", "shape": [1, 2], "data": [7, 8]}"#;
        let m = bad(&request(&[&input_json(&twelve()), unknown], ""));
        assert!(
            m.starts_with(
                r#"input "ids": unknown datatype "int64": the protocol's are BOOL, UINT8"#
            ),
            "{m}"
        );

        for (model_type, named) in [
            ("BOOL", "BOOL"),
            ("INT8", "INT8"),
            ("BYTES", "BYTES"),
            ("complex64", "complex64"),
        ] {
            let mut model = model();
            model.inputs[1].datatype = model_type.into();
            let request_type = Datatype::parse(model_type).map_or("FP32", Datatype::name);
            let json = request(
                &[
                    &input_json(&twelve()),
                    &format!(
                        r#"{{"name": "ids", "datatype": "{request_type}", "shape": [1, 2], "data": [1, 2]}}"#
                    ),
                ],
                "",
            );
            let parsed = protocol::parse_request(json.as_bytes()).unwrap();
            let e = plan(&model, &parsed, None).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(
                e.message,
                format!(
                    r#"model m's input "ids" is {named}, which wasi-nn cannot pass to a model (it carries UINT8, INT32, INT64, FP16, FP32, FP64, BF16)"#
                )
            );
        }
    }

    #[test]
    fn shapes_must_fit_the_model() {
        let shaped = |shape: &str, data: &str| {
            request(
                &[
                    IDS,
                    &format!(
                        r#"{{"name": "input", "datatype": "FP32", "shape": {shape}, "data": {data}}}"#
                    ),
                ],
                "",
            )
        };
        assert_eq!(
            bad(&shaped("[1, 3, 4]", &twelve())),
            r#"input "input" has shape [1, 3, 4], of rank 3, but model m takes rank 4: [-1, 3, 2, 2]"#
        );
        assert_eq!(
            bad(&shaped("[1, 2, 2, 3]", &twelve())),
            r#"input "input" has shape [1, 2, 2, 3], but model m takes [-1, 3, 2, 2]: dimension 1 must be 3"#
        );
        assert_eq!(
            bad(&shaped("[-1, 3, 2, 2]", &twelve())),
            r#"input "input": shape [-1, 3, 2, 2] has a negative dimension"#
        );
        assert_eq!(
            bad(&shaped("[4294967296, 3, 2, 2]", "[]")),
            r#"input "input": shape [4294967296, 3, 2, 2] has a dimension past wasi-nn's limit of 4294967295"#
        );
        let m = bad(&shaped("[2, 3, 2, 2]", &twelve()));
        assert_eq!(
            m,
            r#"input "input": data has 12 elements, but shape [2, 3, 2, 2] holds 24"#
        );
        // A zero batch is a shape like any other.
        assert!(plan_of(&shaped("[0, 3, 2, 2]", "[]"), None).is_ok());

        // A model that does not state its rank takes any shape.
        let mut model = model();
        model.inputs[0].shape = None;
        let json = shaped("[12]", &twelve());
        let parsed = protocol::parse_request(json.as_bytes()).unwrap();
        assert_eq!(plan(&model, &parsed, None).unwrap().inputs[0].dims, [12]);
        let json = shaped("[4294967295, 4294967295, 4294967295]", "[]");
        let parsed = protocol::parse_request(json.as_bytes()).unwrap();
        let e = plan(&model, &parsed, None).unwrap_err();
        assert!(
            e.message.ends_with("holds more than 2^64 elements"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_data_is_reported_by_input_and_element() {
        let m = bad(&request(
            &[
                &input_json(&twelve()),
                r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2], "data": [7, 8.5]}"#,
            ],
            "",
        ));
        assert!(
            m.starts_with(r#"input "ids": element 1 of data is 8.5, but INT64 takes integers"#),
            "{m}"
        );
    }

    const BINARY_IDS: &str = r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2], "parameters": {"binary_data_size": 16}}"#;

    #[test]
    fn binary_inputs_are_borrowed_from_the_body() {
        let pixels = f32_bytes((0..12).map(|i| i as f32 / 2.0));
        let ids = [1i64.to_le_bytes(), 2i64.to_le_bytes()].concat();
        let input = r#"{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2], "parameters": {"binary_data_size": 48}}"#;
        // Chunks follow the request's order of inputs, not the model's.
        let binary = [ids.clone(), pixels.clone()].concat();
        let p = plan_of(&request(&[BINARY_IDS, input], ""), Some(&binary)).unwrap();
        assert_eq!(p.inputs[0].3, pixels);
        assert_eq!(p.inputs[1].3, ids);
        assert_eq!(p.borrowed, [true, true]);
        // Mixed with JSON.
        let p = plan_of(
            &request(&[&input_json(&twelve()), BINARY_IDS], ""),
            Some(&ids),
        )
        .unwrap();
        assert_eq!(p.borrowed, [false, true]);
        assert_eq!(p.inputs[1].3, ids);
    }

    #[test]
    fn malformed_binary_inputs_are_400() {
        let ids = [0u8; 16];
        let json = request(&[&input_json(&twelve()), BINARY_IDS], "");
        assert!(bad_with(&json, None).contains("no Inference-Header-Content-Length"));
        assert!(
            bad_with(&json, Some(&ids[..15])).contains("add up to 16 bytes, but 15 bytes follow")
        );
        assert!(
            bad_with(&json, Some(&[0; 17])).contains("add up to 16 bytes, but 17 bytes follow")
        );
        let wrong_size = request(
            &[
                &input_json(&twelve()),
                r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2], "parameters": {"binary_data_size": 12}}"#,
            ],
            "",
        );
        assert_eq!(
            bad_with(&wrong_size, Some(&[0; 12])),
            r#"input "ids": binary_data_size is 12 bytes, but shape [1, 2] of INT64 takes 16 (2 elements of 8 bytes)"#
        );
        let both = r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2], "data": [1, 2], "parameters": {"binary_data_size": 16}}"#;
        assert_eq!(
            bad_with(&request(&[&input_json(&twelve()), both], ""), Some(&ids)),
            r#"input "ids" has both data and parameters.binary_data_size: give one"#
        );
        let neither = r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2]}"#;
        assert_eq!(
            bad(&request(&[&input_json(&twelve()), neither], "")),
            r#"input "ids" has neither data nor parameters.binary_data_size"#
        );
        let negative = r#"{"name": "ids", "datatype": "INT64", "shape": [1, 2], "parameters": {"binary_data_size": -16}}"#;
        assert!(
            bad(&request(&[&input_json(&twelve()), negative], ""))
                .contains("whole number of bytes")
        );
        // Binary bytes nobody claims.
        let json = request(&[&input_json(&twelve()), IDS], "");
        assert!(bad_with(&json, Some(&[1])).contains("no input has parameters.binary_data_size"));
        // A header with nothing after the JSON is fine.
        assert!(plan_of(&json, Some(&[])).is_ok());
    }

    fn inputs_ok() -> [String; 2] {
        [input_json(&twelve()), IDS.to_string()]
    }

    fn outputs_of(rest: &str) -> Result<Vec<PlannedOutput>, ApiError> {
        let [a, b] = inputs_ok();
        plan_of(&request(&[&a, &b], rest), None).map(|p| p.outputs)
    }

    fn out(name: &str, index: usize, binary: bool) -> PlannedOutput {
        PlannedOutput {
            name: name.into(),
            index,
            binary,
            classification: None,
        }
    }

    #[test]
    fn outputs_requested_and_binary_flags() {
        assert_eq!(
            outputs_of(r#", "outputs": [{"name": "extra"}]"#).unwrap(),
            [out("extra", 1, false)]
        );
        assert_eq!(
            outputs_of(r#", "outputs": []"#).unwrap(),
            [out("logits", 0, false), out("extra", 1, false)]
        );
        assert_eq!(
            outputs_of(r#", "parameters": {"binary_data_output": true}"#).unwrap(),
            [out("logits", 0, true), out("extra", 1, true)]
        );
        // An output's own flag overrides the request's, either way.
        assert_eq!(
            outputs_of(
                r#", "parameters": {"binary_data_output": true},
                   "outputs": [{"name": "extra", "parameters": {"binary_data": false}}, {"name": "logits"}]"#
            )
            .unwrap(),
            [out("extra", 1, false), out("logits", 0, true)]
        );
        assert_eq!(
            outputs_of(r#", "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]"#)
                .unwrap(),
            [out("logits", 0, true)]
        );
    }

    #[test]
    fn bad_outputs_are_400() {
        let message = |rest: &str| {
            let e = outputs_of(rest).unwrap_err();
            assert_eq!(e.status, 400, "{}", e.message);
            e.message
        };
        assert_eq!(
            message(r#", "outputs": [{"name": "probs"}]"#),
            r#"model m has no output "probs": its outputs are "logits", "extra""#
        );
        assert_eq!(
            message(r#", "outputs": [{"name": "logits"}, {"name": "logits"}]"#),
            r#"output "logits" is requested twice"#
        );
        assert!(
            message(r#", "outputs": [{"name": "logits", "parameters": {"classification": -3}}]"#)
                .contains("parameters.classification must be a whole number")
        );
        assert!(
            message(r#", "outputs": [{"name": "logits", "parameters": {"binary_data": 1}}]"#)
                .contains("binary_data must be true or false")
        );
        assert!(
            message(r#", "parameters": {"sequence_id": 7, "sequence_start": true}"#)
                .contains("parameters.sequence_id is 7: stateful models")
        );
        assert!(
            message(r#", "parameters": {"sequence_id": "abc"}"#).contains("sequence_id is \"abc\"")
        );
        assert!(outputs_of(r#", "parameters": {"sequence_id": 0}"#).is_ok());
        assert!(outputs_of(r#", "parameters": {"sequence_id": ""}"#).is_ok());
        assert!(
            message(r#", "parameters": {"binary_data_output": "yes"}"#)
                .contains("the request: parameter binary_data_output must be true or false")
        );
    }

    #[test]
    fn shared_memory_is_refused_not_ignored() {
        let input = r#"{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2], "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 48}}"#;
        let message = bad(&format!(r#"{{"inputs": [{input}]}}"#));
        assert!(message.contains("shared-memory extension"), "{message}");
    }

    fn result(name: &str, ty: TensorType, dims: &[u32], data: Vec<u8>) -> nn::Output {
        nn::Output {
            name: name.into(),
            ty,
            dims: dims.to_vec(),
            data,
        }
    }

    fn results() -> Vec<nn::Output> {
        vec![
            result(
                "logits",
                TensorType::Fp32,
                &[1, 4],
                f32_bytes([0.5, -1.0, 2.0, 0.0]),
            ),
            result(
                "extra",
                TensorType::I64,
                &[2],
                [3i64.to_le_bytes(), (-4i64).to_le_bytes()].concat(),
            ),
        ]
    }

    #[test]
    fn a_json_response() {
        let outputs = [out("extra", 1, false), out("logits", 0, false)];
        let a = respond(&model(), "1", Some("42"), &outputs, &results()).unwrap();
        assert_eq!(a.json_len, None);
        assert_eq!(
            String::from_utf8(a.body).unwrap(),
            r#"{"model_name":"m","model_version":"1","id":"42","outputs":[{"name":"extra","datatype":"INT64","shape":[2],"data":[3,-4]},{"name":"logits","datatype":"FP32","shape":[1,4],"data":[0.5,-1.0,2.0,0.0]}]}"#
        );
        // No id, none echoed.
        let a = respond(&model(), "1", None, &outputs[..1], &results()).unwrap();
        assert!(!String::from_utf8(a.body).unwrap().contains("\"id\""));
    }

    #[test]
    fn a_classification_is_bytes_with_labels_as_json_or_binary() {
        let mut ranked = out("logits", 0, false);
        ranked.classification = Some(2);
        let labels: Vec<String> = ["w", "x", "y", "z"].map(String::from).to_vec();
        let model = model();
        let reply = Reply {
            model: &model,
            version: "1",
            id: None,
            labels: Some(&labels),
        };
        let a = super::respond(&reply, &[ranked], &results()).unwrap();
        assert_eq!(
            String::from_utf8(a.body).unwrap(),
            r#"{"model_name":"m","model_version":"1","outputs":[{"name":"logits","datatype":"BYTES","shape":[2],"data":["2.000000:2:y","0.500000:0:w"]}]}"#
        );
        let mut ranked = out("logits", 0, true);
        ranked.classification = Some(1);
        let a = super::respond(&reply, &[ranked], &results()).unwrap();
        let (json, bytes) = a.body.split_at(a.json_len.unwrap());
        assert!(
            std::str::from_utf8(json)
                .unwrap()
                .contains(r#""datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":16}"#)
        );
        assert_eq!(bytes, [&12u32.to_le_bytes()[..], b"2.000000:2:y"].concat());
    }

    #[test]
    fn a_binary_response_is_json_then_bytes_in_output_order() {
        let outputs = [out("extra", 1, true), out("logits", 0, false)];
        let a = respond(&model(), "1", None, &outputs, &results()).unwrap();
        let json_len = a.json_len.unwrap();
        let (json, bytes) = a.body.split_at(json_len);
        assert_eq!(
            std::str::from_utf8(json).unwrap(),
            r#"{"model_name":"m","model_version":"1","outputs":[{"name":"extra","datatype":"INT64","shape":[2],"parameters":{"binary_data_size":16}},{"name":"logits","datatype":"FP32","shape":[1,4],"data":[0.5,-1.0,2.0,0.0]}]}"#
        );
        assert_eq!(bytes, results()[1].data);

        let outputs = [out("logits", 0, true), out("extra", 1, true)];
        let a = respond(&model(), "1", None, &outputs, &results()).unwrap();
        let (_, bytes) = a.body.split_at(a.json_len.unwrap());
        assert_eq!(
            bytes,
            [results()[0].data.clone(), results()[1].data.clone()].concat()
        );

        // An empty binary output still makes a binary response.
        let empty = vec![result("logits", TensorType::Fp32, &[0, 4], vec![])];
        let a = respond(&model(), "1", None, &[out("logits", 0, true)], &empty).unwrap();
        assert_eq!(a.json_len, Some(a.body.len()));
    }

    #[test]
    fn non_finite_outputs_must_be_asked_for_as_binary() {
        let nan = vec![result(
            "logits",
            TensorType::Fp32,
            &[1, 1],
            f32_bytes([f32::NAN]),
        )];
        let e = respond(&model(), "1", None, &[out("logits", 0, false)], &nan).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(
            e.message.contains("\"logits\"") && e.message.contains("binary_data"),
            "{}",
            e.message
        );
        let a = respond(&model(), "1", None, &[out("logits", 0, true)], &nan).unwrap();
        assert_eq!(&a.body[a.json_len.unwrap()..], f32::NAN.to_le_bytes());
    }

    #[test]
    fn outputs_named_otherwise_by_the_host_are_found_by_position() {
        let mut renamed = results();
        renamed[0].name = "0".into();
        renamed[1].name = "1".into();
        let a = respond(&model(), "1", None, &[out("extra", 1, false)], &renamed).unwrap();
        assert!(
            String::from_utf8(a.body)
                .unwrap()
                .contains(r#""name":"extra","datatype":"INT64""#)
        );
        // Not when some names match, nor when the count differs.
        let mut partly = results();
        partly[1].name = "other".into();
        let e = respond(&model(), "1", None, &[out("extra", 1, false)], &partly).unwrap_err();
        assert_eq!(e.status, 500);
        assert_eq!(
            e.message,
            r#"the model returned no output "extra" (it returned "logits", "other")"#
        );
        let e = respond(
            &model(),
            "1",
            None,
            &[out("extra", 1, false)],
            &renamed[..1],
        )
        .unwrap_err();
        assert_eq!(e.status, 500);
    }

    #[test]
    fn outputs_whose_bytes_do_not_fit_their_shape_are_500() {
        let short = vec![result("logits", TensorType::Fp32, &[1, 4], vec![0; 12])];
        let e = respond(&model(), "1", None, &[out("logits", 0, true)], &short).unwrap_err();
        assert_eq!(e.status, 500);
        assert_eq!(
            e.message,
            r#"the model's output "logits" has 12 bytes, which is not shape [1, 4] of FP32"#
        );
    }

    #[test]
    fn the_version_is_the_one_asked_for_or_the_models() {
        let mut m = model();
        assert_eq!(version(&m, Some("1")), "1");
        assert_eq!(version(&m, None), "1");
        m.versions = vec!["7".into()];
        assert_eq!(version(&m, None), "7");
        m.versions.clear();
        assert_eq!(version(&m, None), "1");
    }
}
