//! `open-inference`: the [Open Inference Protocol] (KServe v2, Triton's HTTP
//! protocol) over REST, for every model this function may load. What it
//! answers, and how, is specified in `docs/open-inference.md`.
//!
//! Routed at `/v2/...`, it reads each model's inputs and outputs from the host
//! (`wasi-infer:models/metadata`, `wit/wasi-infer/models.wit`), checks a
//! request against them, and runs the model through wasi-nn; tensors come and
//! go as JSON or, with the binary tensor data extension, as raw bytes after
//! the JSON. Errors are `{"error": "..."}`: 400 for a request that does not
//! fit the model, 404 for what does not exist, 405 (with `Allow`) for a wrong
//! method, 413 when the host finds a tensor too large (or a compressed body
//! expands past the body limit), 501 (with `Accept-Encoding`) for a body in
//! an encoding it does not read, 503 while the server is not ready, 500 for
//! the rest.
//!
//! - [`route`]: which endpoint a path names;
//! - [`protocol`]: the requests' and responses' JSON;
//! - [`datatype`]: the protocol's datatypes, and wasi-nn's;
//! - [`encoding`]: compressed request bodies;
//! - [`tensor_json`], [`binary`] and [`raw`]: tensor data as JSON and as bytes;
//! - [`infer`]: a request checked against the model, and the response;
//!   [`classification`]: an output's top k, for the classification extension;
//! - [`config`] and [`statistics`]: the model configuration and statistics
//!   extensions.
//!
//! [Open Inference Protocol]: https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md

mod binary;
mod classification;
mod config;
mod datatype;
mod encoding;
mod infer;
mod protocol;
mod raw;
mod route;
mod statistics;
mod tensor_json;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use wasi_infer_guest::models::{self, ModelMetadata};
use wasi_infer_guest::{ApiError, json_response, nn};

use route::{ModelAction, Route};

#[http_component]
fn handle(req: Request) -> Response {
    serve(req).unwrap_or_else(IntoResponse::into_response)
}

fn serve(req: Request) -> Result<Response, ApiError> {
    let route = route::parse(req.path()).ok_or_else(|| {
        ApiError::not_found(format!(
            "no endpoint {:?}: the endpoints are {}",
            req.path(),
            route::USAGE
        ))
    })?;
    let allow = route.method();
    if !method_is(req.method(), allow) {
        return Err(ApiError::method_not_allowed(allow));
    }
    match route {
        Route::Server => json(
            200,
            &protocol::ServerMetadataResponse::from(&models::server()),
        ),
        Route::Live => json(200, &serde_json::json!({ "live": true })),
        Route::Ready => {
            let ready = models::ready();
            json(status_of(ready), &serde_json::json!({ "ready": ready }))
        }
        Route::AllStats => {
            let mut all = Vec::new();
            for model in models::list_models() {
                let versions = models::statistics(&model.name, None).unwrap_or_default();
                all.extend(statistics::of(&model.name, versions));
            }
            json(200, &statistics::StatisticsResponse { model_stats: all })
        }
        Route::Model {
            name,
            version,
            action,
        } => {
            // The host describes the version asked for; when it has no such
            // version, the model's description names the versions it has.
            let model = match models::get_model(name, version) {
                Some(model) => model,
                None => find_model(models::get_model(name, None), name, version)?,
            };
            match action {
                ModelAction::Metadata => json(200, &protocol::ModelMetadataResponse::from(&model)),
                // Ready: the server is, and the model is loaded or loads on
                // its first request (not failed, not unloaded).
                ModelAction::Ready => {
                    let ready = models::model_ready(name, version);
                    json(
                        status_of(ready),
                        &serde_json::json!({ "name": model.name, "ready": ready }),
                    )
                }
                ModelAction::Config => {
                    let labels = labels(&model, version)?;
                    json(200, &config::of(&model, labels.as_ref().map(Vec::len)))
                }
                ModelAction::Stats => {
                    let versions = models::statistics(name, version).unwrap_or_default();
                    let model_stats = statistics::of(&model.name, versions).collect();
                    json(200, &statistics::StatisticsResponse { model_stats })
                }
                ModelAction::Infer => {
                    // The route borrows the request's path; infer takes it.
                    let version = version.map(str::to_string);
                    infer(req, &model, version.as_deref())
                }
            }
        }
    }
}

/// The model's labels, if it has a labels file; one it names but that
/// cannot be read is the server's problem, and says which file.
fn labels(model: &ModelMetadata, version: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    match models::labels(&model.name, version) {
        None => Ok(None),
        Some(Ok(labels)) => Ok(labels),
        Some(Err(problem)) => Err(ApiError::internal(format!(
            "model {}'s labels: {problem}",
            model.name
        ))),
    }
}

fn method_is(method: &Method, name: &str) -> bool {
    matches!(
        (method, name),
        (Method::Get, "GET") | (Method::Post, "POST")
    )
}

/// 503 tells a load balancer to wait; the body says the same to a person.
fn status_of(ready: bool) -> u16 {
    if ready { 200 } else { 503 }
}

/// The model the path names, at the version it names (if any); what does not
/// exist is a 404 that names it.
fn find_model(
    found: Option<ModelMetadata>,
    name: &str,
    version: Option<&str>,
) -> Result<ModelMetadata, ApiError> {
    let model = found.ok_or_else(|| {
        ApiError::not_found(format!("no model named {}", wasi_infer_guest::quoted(name)))
    })?;
    match version {
        Some(v) if !model.versions.iter().any(|have| have == v) => {
            let have: Vec<String> = model.versions.iter().map(|v| format!("{v:?}")).collect();
            Err(ApiError::not_found(format!(
                "model {name:?} has no version {v:?}: its versions are {}",
                have.join(", ")
            )))
        }
        _ => Ok(model),
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("cannot write the response: {e}")))?;
    Ok(json_response(status, &body))
}

/// `POST .../infer`. The body is given up (and with it the request's JSON and
/// binary tensors) as soon as the tensors are in the host, so a large request
/// is not held while the model runs.
fn infer(req: Request, model: &ModelMetadata, version: Option<&str>) -> Result<Response, ApiError> {
    let text_header = |name: &str| -> Result<Option<String>, ApiError> {
        match req.header(name) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(|v| Some(v.to_string()))
                .ok_or_else(|| ApiError::bad_request(format!("the {name} header is not text"))),
        }
    };
    let content_encoding = text_header("content-encoding")?;
    let header = text_header(binary::HEADER)?;
    let max_body_bytes = models::server().max_body_bytes;
    let received = req.into_body();
    // The header's length counts the decompressed body.
    let body = encoding::decode(content_encoding.as_deref(), &received, max_body_bytes)?;
    let raw = header.as_deref().is_some_and(|h| h.trim() == "0");
    let (mut request, binary_part) = if raw {
        (raw::request(model, body.len())?, Some(&body[..]))
    } else {
        let (json_part, binary_part) = binary::split_body(&body, header.as_deref())?;
        (protocol::parse_request(json_part)?, binary_part)
    };
    let id = request.id.take();
    let plan = infer::plan(model, &request, binary_part)?;
    let outputs = plan.outputs;
    let inputs = infer::nn_inputs(plan.inputs);
    drop(request);
    drop(body);
    drop(received);

    // `NAME@VERSION` loads that version; `NAME` the newest ready one, which
    // the host then names (a reload may switch versions at any moment).
    let target = match version {
        Some(version) => format!("{}@{version}", model.name),
        None => model.name.clone(),
    };
    let results = nn::compute(&target, inputs)?;
    let served = match version {
        Some(version) => Some(version.to_string()),
        None => models::loaded_version(&model.name),
    };
    let version = infer::version(model, served.as_deref());
    let labels = if outputs.iter().any(|o| o.classification.is_some()) {
        labels(model, Some(version))?
    } else {
        None
    };
    let reply = infer::Reply {
        model,
        version,
        id: id.as_deref(),
        labels: labels.as_deref(),
    };
    let answer = infer::respond(&reply, &outputs, &results)?;
    drop(results);

    let mut response = Response::builder();
    response.status(200);
    match answer.json_len {
        Some(json_len) => response
            .header("content-type", "application/octet-stream")
            .header(binary::HEADER, json_len.to_string()),
        None => response.header("content-type", "application/json"),
    };
    Ok(response.body(answer.body).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "tract".into(),
            description: None,
            inputs: vec![],
            outputs: vec![],
            max_batch_size: 0,
            labels_file: None,
            layout: None,
        }
    }

    #[test]
    fn unknown_models_and_versions_are_404_naming_them() {
        assert_eq!(find_model(Some(model()), "m", None).unwrap().name, "m");
        assert_eq!(find_model(Some(model()), "m", Some("1")).unwrap().name, "m");
        let e = find_model(None, "zz", None).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (404, r#"no model named "zz""#)
        );
        let e = find_model(Some(model()), "m", Some("2")).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (404, r#"model "m" has no version "2": its versions are "1""#)
        );
    }

    #[test]
    fn methods_match_the_allow_header() {
        assert!(method_is(&Method::Get, "GET"));
        assert!(method_is(&Method::Post, "POST"));
        assert!(!method_is(&Method::Post, "GET"));
        assert!(!method_is(&Method::Get, "POST"));
        assert!(!method_is(&Method::Put, "POST"));
        assert!(!method_is(&Method::Head, "GET"));
    }

    #[test]
    fn not_ready_is_503() {
        assert_eq!(status_of(true), 200);
        assert_eq!(status_of(false), 503);
    }
}
