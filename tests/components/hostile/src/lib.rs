//! A hostile guest, used only by the host's attack tests: each request makes
//! one attack on the host, chosen by the last segment of its path
//! (`/attack/<name>`, with parameters as `?key=value&...`). A test calls an
//! attack, checks that the host answers cleanly, and then checks that the host
//! still serves other requests.
//!
//! Every answer is JSON. An attack that the host stops by trapping the
//! instance gets the host's own 500; one that the host refuses through an API
//! gets the refusal from this component, as below; one that gets through is
//! answered 200 with `"escaped": true`, which a test treats as a failure.
//!
//! Runaway guests (the host should trap the instance and answer 500):
//! - `panic`: panics.
//! - `loop`: burns CPU forever, without a host call (the request deadline).
//! - `sleep`: blocks in a host call (a clock wait) for an hour (the deadline).
//! - `alloc`: allocates 16 MiB chunks, touching every page, until the memory
//!   limit makes an allocation fail.
//! - `stack`: recurses without end (the stack limit).
//!
//! wasi-nn misuse (a wasi-nn error is answered 422 `{"error": "<code>: <message>"}`):
//! - `nn-wrong-shape`: input of the wrong dimensions (422).
//! - `nn-wrong-type`: input of the wrong element type (422).
//! - `nn-too-large`: an input `?factor=` (64) times the model's (422: tensors
//!   are bounded).
//! - `nn-not-allowed`: loads a model the manifest does not grant (422).
//! - `nn-load-bytes`: loads a model from bytes, which the host forbids (422).
//! - `nn-bad-handle`: uses a forged graph handle (the host traps: 500).
//! - `nn-flood-tensors`: creates `?count=` (100000) image tensors and keeps
//!   them (the host traps at its budget: 500).
//! - `nn-flood-contexts`: creates `?count=` (100000) execution contexts and
//!   keeps them (422 `{"error", "created"}` at the host's limit).
//! - `nn-large-shape`: gives the text model `all-minilm-l6-v2` three INT64
//!   inputs of `?batch=` (512) x `?seq=` (256): 3 MiB that would take
//!   gigabytes to run (422 TooLarge: inputs are bounded).
//! - `nn-flood-dims`: creates `?count=` (100000) tensors with no data and
//!   `?rank=` (1000000) dimensions each, and keeps them (the host traps: 500).
//! - `nn-hoard-outputs`: computes the text model `?count=` (1000) times and
//!   keeps every output (the host traps at its budget: 500).
//! - `nn-slow`: runs `slow-matmul` (a model made slow on purpose) on an
//!   `?n=` (1024) square input, for seconds (the deadline: 504).
//!
//! Escapes from the sandbox, each a list of attempts (all denied: 403
//! `{"error": "denied", "attempts"}`; any allowed: 200 `{"escaped": true,
//! "attempts"}`):
//! - `escape-files`: files outside the read-only mounts, and writes.
//! - `escape-env`: environment variables and arguments beyond the manifest's
//!   `GIVEN=yes` (the answer carries `"given"`, the value seen).
//! - `escape-network`: TCP, UDP, DNS and outbound HTTP to the test's listener
//!   on 127.0.0.1, `?port=` (required).
//!
//! And two controls: `ok` answers 200 `{"ok": true}`; `slow` waits `?ms=`
//! (1000) milliseconds, then answers 200 `{"ok": true, "slept_ms"}` (an honest
//! slow request, for the queue and shutdown tests).

mod escape;
mod nn;
mod runaway;

use std::str::FromStr;

use serde_json::{Value, json};
use spin_sdk::http::{HeaderValue, Request, Response};
use spin_sdk::http_component;

/// How many tensors or contexts the floods create, unless `?count=` says.
const DEFAULT_FLOOD: u32 = 100_000;
/// How many times larger than the model's input `nn-too-large` makes its
/// input, unless `?factor=` says.
const DEFAULT_FACTOR: u32 = 64;

#[http_component]
async fn handle(request: Request) -> Response {
    let path = request
        .header("spin-path-info")
        .and_then(HeaderValue::as_str)
        .unwrap_or_else(|| request.path());
    attack(last_segment(path), request.query())
        .await
        .unwrap_or_else(|refusal| refusal)
}

/// Makes the attack named `name`. An `Err` is an answer too: a bad request.
async fn attack(name: &str, query: &str) -> Result<Response, Response> {
    Ok(match name {
        "ok" => reply(200, json!({"ok": true})),
        "slow" => {
            let ms: u64 = number(query, "ms")?.unwrap_or(1000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            reply(200, json!({"ok": true, "slept_ms": ms}))
        }
        "panic" => runaway::panic(),
        "loop" => runaway::spin(),
        "sleep" => runaway::sleep(),
        "alloc" => runaway::alloc(),
        "stack" => runaway::stack(),
        "nn-wrong-shape" => nn::wrong_shape(),
        "nn-wrong-type" => nn::wrong_type(),
        "nn-too-large" => nn::too_large(number(query, "factor")?.unwrap_or(DEFAULT_FACTOR))?,
        "nn-not-allowed" => nn::not_allowed(),
        "nn-bad-handle" => nn::bad_handle(),
        "nn-load-bytes" => nn::load_bytes(),
        "nn-flood-tensors" => nn::flood_tensors(number(query, "count")?.unwrap_or(DEFAULT_FLOOD)),
        "nn-flood-contexts" => nn::flood_contexts(number(query, "count")?.unwrap_or(DEFAULT_FLOOD)),
        "nn-large-shape" => nn::large_shape(
            number(query, "batch")?.unwrap_or(512),
            number(query, "seq")?.unwrap_or(256),
        )?,
        "nn-flood-dims" => nn::flood_dims(
            number(query, "count")?.unwrap_or(DEFAULT_FLOOD),
            number(query, "rank")?.unwrap_or(1_000_000),
        ),
        "nn-hoard-outputs" => nn::hoard_outputs(number(query, "count")?.unwrap_or(1000)),
        "nn-slow" => nn::slow(number(query, "n")?.unwrap_or(1024)),
        "escape-files" => escape::files(),
        "escape-env" => escape::env(),
        "escape-network" => {
            let port = number(query, "port")?
                .ok_or_else(|| bad_request("escape-network needs ?port=".to_string()))?;
            escape::network(port).await
        }
        _ => reply(404, json!({"error": format!("no attack named {name}")})),
    })
}

/// The last `/`-separated segment of `path`, ignoring a trailing `/`.
fn last_segment(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.rsplit_once('/').map_or(path, |(_, last)| last)
}

/// The number given as `?key=`, if any; a 400 if it is not a number.
fn number<T: FromStr>(query: &str, key: &str) -> Result<Option<T>, Response> {
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v));
    value
        .map(|v| {
            v.parse()
                .map_err(|_| bad_request(format!("?{key}={v} is not a number in range")))
        })
        .transpose()
}

fn bad_request(message: String) -> Response {
    reply(400, json!({"error": message}))
}

/// A JSON answer.
fn reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
