//! The two ways of asking a server for a classification:
//!
//! - [`Protocol::Classify`]: the encoded image posted to `/classify/<model>`
//!   (the `image-classify` function), which answers the top classes;
//! - [`Protocol::Oip`]: the preprocessed tensor posted to
//!   `/v2/models/<model>/infer` by the Open Inference Protocol with the
//!   binary tensor data extension (any such server: ours, Triton, KServe),
//!   which answers the logits; the top classes are taken from them here.
//!
//! [`Client::check`] runs before any evaluation: the server answers, the
//! model is there, and one item goes all the way through, so that what is
//! wrong is said before a run starts, not once per item.

use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

use super::Error;
use super::dataset::ImageRef;
use super::input::{self, TensorSpec};

/// The most classes a request asks `/classify` for; the answer's length is
/// then the model's class count ("a top_k past the class count answers
/// every class").
const ALL_CLASSES: u64 = 1 << 32;
/// The classes kept per item: enough for top-5 accuracy.
pub const TOP_K: usize = 5;

/// The header of the binary tensor data extension: the JSON part's length.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// What a model name may hold unescaped in a path (RFC 3986's unreserved).
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\');

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// The encoded image to /classify/<model> (wasi-infer's image-classify).
    Classify,
    /// The preprocessed tensor to /v2/models/<model>/infer (Open Inference
    /// Protocol, binary tensor data: wasi-infer, Triton, KServe).
    Oip,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Classify => "classify",
            Protocol::Oip => "oip",
        })
    }
}

/// What [`Client::check`] learnt of the model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The backend the server runs it on (`platform` in its metadata).
    pub backend: Option<String>,
    /// How many classes the model scores.
    pub classes: usize,
    /// Class names, where the server answers them (`/classify` does).
    pub names: Option<Vec<String>>,
    /// For the Open Inference Protocol: the input tensor, and the output
    /// that holds the logits.
    pub tensor: Option<TensorSpec>,
    pub output_name: Option<String>,
}

/// One request's body and its extra header, ready to send.
pub struct Prepared {
    body: Vec<u8>,
    json_length: Option<usize>,
}

pub struct Client {
    agent: ureq::Agent,
    /// The server's base URL, without a trailing slash.
    pub url: String,
    pub model: String,
    pub protocol: Protocol,
}

impl Client {
    /// A client for `model` at `url`, for `concurrency` requests at once;
    /// `timeout` bounds each request.
    pub fn new(
        url: &str,
        model: &str,
        protocol: Protocol,
        concurrency: usize,
        timeout: Duration,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            // Error answers are read like any other: they carry the
            // server's message, which the report shows.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            // Every worker keeps its connection between requests (ureq
            // keeps 3 a host by default: the others would connect anew
            // each time, and their latency would count the handshake).
            .max_idle_connections(concurrency.max(1))
            .max_idle_connections_per_host(concurrency.max(1))
            .build()
            .into();
        Self {
            agent,
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            protocol,
        }
    }

    /// `/v2/models/<model><tail>`.
    fn v2_path(&self, tail: &str) -> String {
        format!(
            "/v2/models/{}{tail}",
            utf8_percent_encode(&self.model, PATH_SEGMENT)
        )
    }

    fn classify_path(&self) -> String {
        format!(
            "/classify/{}",
            utf8_percent_encode(&self.model, PATH_SEGMENT)
        )
    }

    /// Checks that the server answers, serves the model, and classifies
    /// `probe` (the dataset's first item); learns what the run needs.
    /// `model_toml` is the model's model.toml (path, text) where known: how
    /// to prepare the tensor for the Open Inference Protocol.
    pub fn check(
        &self,
        probe: ImageRef<'_>,
        model_toml: Option<(&str, &str)>,
    ) -> Result<ModelInfo, Error> {
        match self.protocol {
            Protocol::Classify => self.check_classify(probe),
            Protocol::Oip => self.check_oip(probe, model_toml),
        }
    }

    fn check_classify(&self, probe: ImageRef<'_>) -> Result<ModelInfo, Error> {
        // The backend, where the server also speaks the Open Inference
        // Protocol; this is also the first contact.
        let (status, metadata) = self.get(&self.v2_path(""))?;
        let backend = (status == 200)
            .then(|| json_of(&metadata).ok())
            .flatten()
            .and_then(|m| m["platform"].as_str().map(str::to_string));
        let body =
            input::encoded(probe).map_err(|e| self.server_error(format!("the first item: {e}")))?;
        let path = format!("{}?top_k={ALL_CLASSES}", self.classify_path());
        let (status, answer) = self.post(&path, &body, None)?;
        if status == 404 {
            return Err(Error::NoModel {
                url: self.url.clone(),
                model: self.model.clone(),
                detail: format!("POST {path} answered 404: {}", message_of(&answer)),
            });
        }
        if status != 200 {
            return Err(self.server_error(format!(
                "the first item's request, POST {path}, answered {status}: {}",
                message_of(&answer)
            )));
        }
        let predictions =
            classify_answer(&answer).map_err(|e| self.server_error(format!("POST {path}: {e}")))?;
        let mut names = vec![String::new(); predictions.len()];
        for (index, label) in &predictions {
            match names.get_mut(*index) {
                Some(name) => *name = label.clone(),
                None => {
                    return Err(self.server_error(format!(
                        "POST {path} answered {} classes, one of index {index}",
                        predictions.len()
                    )));
                }
            }
        }
        Ok(ModelInfo {
            backend,
            classes: predictions.len(),
            names: names.iter().any(|n| !n.is_empty()).then_some(names),
            tensor: None,
            output_name: None,
        })
    }

    fn check_oip(
        &self,
        probe: ImageRef<'_>,
        model_toml: Option<(&str, &str)>,
    ) -> Result<ModelInfo, Error> {
        let ready = self.v2_path("/ready");
        let (status, answer) = self.get(&ready)?;
        // Triton answers an unknown model's readiness with 400, KServe and
        // wasi-infer with 404.
        if status == 404 || (status == 400 && message_of(&answer).contains("unknown model")) {
            return Err(Error::NoModel {
                url: self.url.clone(),
                model: self.model.clone(),
                detail: format!("GET {ready} answered {status}: {}", message_of(&answer)),
            });
        }
        if status != 200 {
            return Err(self.server_error(format!(
                "the model is not ready: GET {ready} answered {status}: {}",
                message_of(&answer)
            )));
        }
        let path = self.v2_path("");
        let (status, answer) = self.get(&path)?;
        if status != 200 {
            return Err(self.server_error(format!(
                "GET {path} (the model's metadata) answered {status}: {}",
                message_of(&answer)
            )));
        }
        let metadata =
            json_of(&answer).map_err(|e| self.server_error(format!("GET {path}: {e}")))?;
        let tensors = |key: &str| metadata[key].as_array().cloned().unwrap_or_default();
        let (inputs, outputs) = (tensors("inputs"), tensors("outputs"));
        let [input] = inputs.as_slice() else {
            return Err(self.server_error(format!(
                "the model has {} inputs; eval sends one image tensor",
                inputs.len()
            )));
        };
        let name = input["name"].as_str().unwrap_or_default();
        let datatype = input["datatype"].as_str().unwrap_or_default();
        let shape: Vec<i64> = input["shape"]
            .as_array()
            .map(|dims| dims.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let tensor = TensorSpec::new(&self.model, name, datatype, &shape, model_toml)?;
        // The first output, unless the model.toml names the logits.
        let wanted = model_toml
            .and_then(|(p, t)| image_prep::ClassifierSpec::parse(&self.model, p, t).ok())
            .map(|spec| spec.output_name);
        let output_name = outputs
            .iter()
            .filter_map(|o| o["name"].as_str())
            .find(|n| wanted.as_deref().is_none_or(|w| w == *n))
            .or_else(|| outputs.first().and_then(|o| o["name"].as_str()))
            .ok_or_else(|| self.server_error(format!("GET {path}: the model lists no outputs")))?
            .to_string();
        let mut info = ModelInfo {
            backend: metadata["platform"].as_str().map(str::to_string),
            classes: 0,
            names: None,
            tensor: Some(tensor),
            output_name: Some(output_name),
        };
        let prepared = self
            .prepare(&info, probe)
            .map_err(|e| self.server_error(format!("the first item: {e}")))?;
        let logits = self
            .infer_logits(&info, &prepared)
            .map_err(|e| self.server_error(format!("the first item's inference failed: {e}")))?;
        info.classes = logits.len();
        Ok(info)
    }

    /// The request for one item (its preparation is not part of the
    /// request's time).
    pub fn prepare(&self, info: &ModelInfo, image: ImageRef<'_>) -> Result<Prepared, String> {
        match (&info.tensor, &info.output_name) {
            (Some(tensor), Some(output)) => {
                let data = tensor.tensor(image)?;
                let header = serde_json::json!({
                    "inputs": [{
                        "name": tensor.input_name,
                        "datatype": tensor.datatype.name(),
                        "shape": tensor.shape,
                        "parameters": {"binary_data_size": data.len()},
                    }],
                    "outputs": [{"name": output, "parameters": {"binary_data": true}}],
                });
                let mut body = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
                let json_length = body.len();
                body.extend_from_slice(&data);
                Ok(Prepared {
                    body,
                    json_length: Some(json_length),
                })
            }
            _ => Ok(Prepared {
                body: input::encoded(image)?,
                json_length: None,
            }),
        }
    }

    /// Sends one prepared request: the item's classes, best first (at most
    /// [`TOP_K`]), or what went wrong (the server's status and message).
    pub fn classify(&self, info: &ModelInfo, prepared: &Prepared) -> Result<Vec<usize>, String> {
        match self.protocol {
            Protocol::Classify => {
                let path = format!("{}?top_k={TOP_K}", self.classify_path());
                let (status, answer) = self
                    .post(&path, &prepared.body, None)
                    .map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!("{status}: {}", message_of(&answer)));
                }
                Ok(classify_answer(&answer)?
                    .into_iter()
                    .map(|(index, _)| index)
                    .collect())
            }
            Protocol::Oip => {
                let logits = self.infer_logits(info, prepared)?;
                // The function's own top-k (softmax, then the best), so
                // that ties are broken as /classify breaks them.
                Ok(image_prep::top_k(&logits, TOP_K, |_| String::new())
                    .into_iter()
                    .map(|p| p.index)
                    .collect())
            }
        }
    }

    fn infer_logits(&self, info: &ModelInfo, prepared: &Prepared) -> Result<Vec<f32>, String> {
        let path = self.v2_path("/infer");
        let (status, answer) = self
            .post(&path, &prepared.body, prepared.json_length)
            .map_err(|e| e.to_string())?;
        if status.code != 200 {
            return Err(format!("{}: {}", status.code, message_of(&answer)));
        }
        let output = info.output_name.as_deref().unwrap_or_default();
        infer_answer(&answer, status.json_length, output)
    }

    fn server_error(&self, problem: String) -> Error {
        Error::Server {
            url: self.url.clone(),
            model: self.model.clone(),
            problem,
        }
    }

    fn unreachable(&self, e: ureq::Error) -> Error {
        Error::Unreachable {
            url: self.url.clone(),
            detail: e.to_string(),
        }
    }

    fn get(&self, path: &str) -> Result<(Status, Vec<u8>), Error> {
        let url = format!("{}{path}", self.url);
        let response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.unreachable(e))?;
        read(response).map_err(|e| self.unreachable(e))
    }

    fn post(
        &self,
        path: &str,
        body: &[u8],
        json_length: Option<usize>,
    ) -> Result<(Status, Vec<u8>), Error> {
        let url = format!("{}{path}", self.url);
        let mut request = self
            .agent
            .post(&url)
            .header("content-type", "application/octet-stream");
        if let Some(length) = json_length {
            request = request.header(HEADER_LENGTH, length.to_string());
        }
        let response = request.send(body).map_err(|e| self.unreachable(e))?;
        read(response).map_err(|e| self.unreachable(e))
    }
}

/// An answer's status, and the binary extension's JSON length if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status {
    code: u16,
    json_length: Option<usize>,
}

impl PartialEq<u16> for Status {
    fn eq(&self, code: &u16) -> bool {
        self.code == *code
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)
    }
}

/// Answers larger than this are refused: ImageNet's 1000 logits as JSON
/// take about 20 KB.
const MAX_ANSWER_BYTES: u64 = 64 << 20;

fn read(mut response: http::Response<ureq::Body>) -> Result<(Status, Vec<u8>), ureq::Error> {
    let json_length = response
        .headers()
        .get(HEADER_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let status = Status {
        code: response.status().as_u16(),
        json_length,
    };
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()?;
    Ok((status, body))
}

fn json_of(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })
}

/// An error answer's message: its JSON `error`, else its text (shortened).
fn message_of(bytes: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes)
        && let Some(message) = value["error"].as_str()
    {
        return message.to_string();
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(no body)".into(),
        None => text.to_string(),
    }
}

/// `/classify`'s answer: `{"predictions": [{"index", "label", ...}]}`, best first.
fn classify_answer(bytes: &[u8]) -> Result<Vec<(usize, String)>, String> {
    let answer = json_of(bytes)?;
    let predictions = answer["predictions"]
        .as_array()
        .ok_or_else(|| format!("the answer has no predictions: {answer}"))?;
    predictions
        .iter()
        .map(|p| {
            let index = p["index"]
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| format!("a prediction without an index: {p}"))?;
            let label = p["label"].as_str().unwrap_or_default().to_string();
            Ok((index, label))
        })
        .collect()
}

/// An inference answer's `output` as f32s: from the bytes after the JSON
/// (binary data extension: `json_length` is the JSON part's length, and
/// each binary output's `binary_data_size` its share, in order), or from
/// its JSON `data` (flat or nested, as servers write it).
fn infer_answer(
    bytes: &[u8],
    json_length: Option<usize>,
    output: &str,
) -> Result<Vec<f32>, String> {
    let (json, mut binary) = match json_length {
        Some(n) if n <= bytes.len() => bytes.split_at(n),
        Some(n) => {
            return Err(format!(
                "Inference-Header-Content-Length is {n}, but the answer has {} bytes",
                bytes.len()
            ));
        }
        None => (bytes, &[][..]),
    };
    let answer = json_of(json)?;
    let outputs = answer["outputs"]
        .as_array()
        .ok_or_else(|| format!("the answer has no outputs: {answer}"))?;
    for candidate in outputs {
        let size = candidate["parameters"]["binary_data_size"]
            .as_u64()
            .and_then(|s| usize::try_from(s).ok());
        let chunk = match size {
            Some(size) if size <= binary.len() => {
                let (chunk, rest) = binary.split_at(size);
                binary = rest;
                Some(chunk)
            }
            Some(size) => {
                return Err(format!(
                    "output {:?} has binary_data_size {size}, but only {} bytes are left",
                    candidate["name"],
                    binary.len()
                ));
            }
            None => None,
        };
        if candidate["name"].as_str() != Some(output) {
            continue;
        }
        let datatype = candidate["datatype"].as_str().unwrap_or_default();
        return match chunk {
            Some(chunk) => from_bytes(datatype, chunk),
            None => {
                let mut values = Vec::new();
                flatten(&candidate["data"], &mut values)?;
                Ok(values)
            }
        };
    }
    Err(format!("the answer has no output {output:?}"))
}

fn from_bytes(datatype: &str, bytes: &[u8]) -> Result<Vec<f32>, String> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Result<Vec<f32>, String> {
        if !bytes.len().is_multiple_of(N) {
            return Err(format!(
                "{} bytes are not whole {N}-byte values",
                bytes.len()
            ));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut array = [0u8; N];
                array.copy_from_slice(c);
                f(array)
            })
            .collect())
    }
    match datatype {
        "FP32" => each(bytes, f32::from_le_bytes),
        "FP16" => each(bytes, |b| half::f16::from_le_bytes(b).to_f32()),
        "BF16" => each(bytes, |b| half::bf16::from_le_bytes(b).to_f32()),
        "FP64" => each(bytes, |b| f64::from_le_bytes(b) as f32),
        other => Err(format!(
            "the output is {other}; eval reads FP32, FP16, BF16 or FP64 scores"
        )),
    }
}

fn flatten(value: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| flatten(v, out)),
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        other => Err(format!("an output value that is not a number: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_binary_and_json_outputs() {
        let json = br#"{"outputs":[{"name":"extra","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}},{"name":"logits","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&9f32.to_le_bytes());
        body.extend_from_slice(&1.5f32.to_le_bytes());
        body.extend_from_slice(&(-2f32).to_le_bytes());
        assert_eq!(
            infer_answer(&body, Some(json.len()), "logits").unwrap(),
            [1.5, -2.0]
        );
        let e = infer_answer(&body, Some(json.len()), "nope").unwrap_err();
        assert!(e.contains("no output \"nope\""), "{e}");
        let e = infer_answer(&body[..body.len() - 1], Some(json.len()), "logits").unwrap_err();
        assert!(e.contains("only 7 bytes are left"), "{e}");

        let nested = br#"{"outputs":[{"name":"logits","datatype":"FP32","shape":[1,3],"data":[[0.5,1,-3]]}]}"#;
        assert_eq!(
            infer_answer(nested, None, "logits").unwrap(),
            [0.5, 1.0, -3.0]
        );
        assert!(
            infer_answer(b"not json", None, "logits")
                .unwrap_err()
                .contains("not JSON")
        );
        assert_eq!(from_bytes("FP64", &2.5f64.to_le_bytes()).unwrap(), [2.5]);
        assert!(from_bytes("INT8", &[1]).unwrap_err().contains("INT8"));
    }

    #[test]
    fn error_messages_are_the_servers() {
        assert_eq!(
            message_of(br#"{"error":"no model named \"x\""}"#),
            "no model named \"x\""
        );
        assert_eq!(message_of(b""), "(no body)");
        assert_eq!(message_of(b"plain"), "plain");
        assert!(message_of("y".repeat(1000).as_bytes()).ends_with("..."));
    }

    #[test]
    fn classify_answers_give_indices_best_first() {
        let answer = br#"{"model":"m","predictions":[{"index":3,"label":"c","score":0.9},{"index":0,"label":"a","score":0.1}]}"#;
        assert_eq!(
            classify_answer(answer).unwrap(),
            [(3, "c".to_string()), (0, "a".to_string())]
        );
        assert!(
            classify_answer(b"{}")
                .unwrap_err()
                .contains("no predictions")
        );
    }

    #[test]
    fn model_names_are_escaped_in_paths() {
        let client = Client::new(
            "http://h:1/",
            "a b/c",
            Protocol::Oip,
            1,
            Duration::from_secs(1),
        );
        assert_eq!(client.url, "http://h:1");
        assert_eq!(client.v2_path("/ready"), "/v2/models/a%20b%2Fc/ready");
        let client = Client::new(
            "http://h:1",
            "m-1.x",
            Protocol::Classify,
            1,
            Duration::from_secs(1),
        );
        assert_eq!(client.classify_path(), "/classify/m-1.x");
    }
}
