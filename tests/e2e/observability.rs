//! What operators see: `/metrics`, health while loading and serving, one log
//! line per request (readable and JSON), request ids, and `wasi-infer check`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::wasi_infer;
use crate::server::{MODELS, Server, photo, root};

/// The value of the series `name{labels}` in a Prometheus text exposition,
/// if it is there (a labelled series appears at its first observation, or
/// when its component or model is loaded).
pub fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&key)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

/// A series that must be there.
pub fn value(text: &str, name: &str, labels: &str) -> f64 {
    series(text, name, labels).unwrap_or_else(|| panic!("no series {name}{{{labels}}} in:\n{text}"))
}

#[test]
fn metrics_count_requests_instances_and_inferences() {
    let server = Server::start(&[]);
    let scrape = || {
        let reply = server.get("/metrics");
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            reply.content_type
        );
        reply.text
    };
    let before = scrape();
    // Every model's load time is there from the start.
    for model in MODELS {
        let line = before
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "wasi_infer_model_load_duration_seconds{{model=\"{model}\""
                ))
            })
            .unwrap_or_else(|| panic!("no load time for {model}:\n{before}"));
        let seconds: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(seconds > 0.0, "{line}");
    }
    assert_eq!(value(&before, "wasi_infer_ready", ""), 1.0);

    // Two classifications, one OIP inference, one 404 from the function and
    // one request no route takes.
    for _ in 0..2 {
        let reply = server.send(
            "POST",
            "/classify/efficientnet-lite0",
            &[("content-type", "image/png")],
            &photo("chelsea.png"),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let ids = r#"{"inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [101, 7592, 102]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [1, 3], "data": [1, 1, 1]},
        {"name": "token_type_ids", "datatype": "INT64", "shape": [1, 3], "data": [0, 0, 0]}]}"#;
    let reply = server.post("/v2/models/all-minilm-l6-v2/infer", ids.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.post("/classify/no-such-model", &photo("chelsea.png"));
    assert_eq!(server.get("/nowhere").status, 404);

    let after = scrape();
    // A request series may first appear between the scrapes.
    let moved = |name: &str, labels: &str| {
        value(&after, name, labels) - series(&before, name, labels).unwrap_or(0.0)
    };
    let classify = r#"route="/classify/...",component="image-classify""#;
    assert_eq!(
        moved(
            "wasi_infer_requests_total",
            &format!("{classify},status=\"200\"")
        ),
        2.0
    );
    assert_eq!(
        moved(
            "wasi_infer_requests_total",
            &format!("{classify},status=\"404\"")
        ),
        1.0
    );
    assert_eq!(
        moved(
            "wasi_infer_requests_total",
            r#"route="/v2/...",component="open-inference",status="200""#
        ),
        1.0
    );
    assert_eq!(
        moved(
            "wasi_infer_requests_total",
            r#"route="unmatched",component="",status="404""#
        ),
        1.0
    );
    // The scrape before is counted too: the host answers /metrics itself.
    assert!(
        value(
            &after,
            "wasi_infer_requests_total",
            r#"route="/metrics",component="",status="200""#
        ) >= 1.0
    );
    assert_eq!(
        moved("wasi_infer_request_duration_seconds_count", classify),
        3.0
    );
    assert_eq!(
        moved(
            "wasi_infer_instantiation_duration_seconds_count",
            r#"component="image-classify""#
        ),
        3.0
    );
    assert_eq!(
        moved(
            "wasi_infer_instantiation_duration_seconds_count",
            r#"component="open-inference""#
        ),
        1.0
    );
    // One compute per inference, on the model and backend that ran it.
    let backend_of = |model: &str| {
        let prefix =
            format!("wasi_infer_compute_duration_seconds_count{{model=\"{model}\",backend=\"");
        let line = after
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no compute series for {model}:\n{after}"));
        line[prefix.len()..].split('"').next().unwrap().to_string()
    };
    for (model, count) in [("efficientnet-lite0", 2.0), ("all-minilm-l6-v2", 1.0)] {
        let labels = format!("model=\"{model}\",backend=\"{}\"", backend_of(model));
        assert_eq!(
            moved("wasi_infer_compute_duration_seconds_count", &labels),
            count,
            "{model}"
        );
        assert!(
            moved("wasi_infer_compute_duration_seconds_sum", &labels) > 0.0,
            "{model}"
        );
    }
    // Every instance is gone once its answer is read.
    for component in ["image-classify", "open-inference", "text-embed"] {
        let labels = format!("component=\"{component}\"");
        assert_eq!(
            value(&after, "wasi_infer_instances_in_flight", &labels),
            0.0
        );
    }
    assert_eq!(value(&after, "wasi_infer_requests_waiting", ""), 0.0);
    assert!(after.trim_end().ends_with("# EOF"));
}

/// A server started by hand: its address comes from its first JSON log line,
/// before it is ready.
struct LoadingServer {
    child: std::process::Child,
    address: String,
    logs: mpsc::Receiver<Value>,
    ready: mpsc::Receiver<()>,
}

impl LoadingServer {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasi-infer"))
            .current_dir(root())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--no-cache",
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasi-infer");
        let (log_tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let json: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
                if log_tx.send(json).is_err() {
                    break;
                }
            }
        });
        let (ready_tx, ready) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("listening on ") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let first = logs
            .recv_timeout(Duration::from_secs(60))
            .expect("a first log line");
        assert_eq!(first["message"], "live; loading the application", "{first}");
        assert_eq!(first["level"], "INFO", "{first}");
        let address = first["address"].as_str().expect("an address").to_string();
        Self {
            child,
            address,
            logs,
            ready,
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, BTreeMap<String, String>, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(format!("http://{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().expect("an answer");
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let status = response.status().as_u16();
        (
            status,
            headers,
            response.body_mut().read_to_string().unwrap(),
        )
    }

    /// The next log line whose fields satisfy `wanted`.
    fn log_line(&self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        panic!("no such log line");
    }
}

impl Drop for LoadingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn live_at_once_ready_once_loaded_and_each_request_logged_as_json() {
    let server = LoadingServer::start();
    // Loading five models (and compiling, with --no-cache) takes seconds:
    // these requests come within milliseconds of the first log line.
    let (status, _, body) = server.get("/health/live", &[]);
    assert_eq!((status, body.as_str()), (200, r#"{"live":true}"#));
    let (status, _, body) = server.get("/health/ready", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(r#""ready":false"#) && body.contains("loading"),
        "{body}"
    );
    // No function runs yet: the host answers for every route, the
    // protocol's health checks included.
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/efficientnet-lite0",
    ] {
        let (status, headers, body) = server.get(path, &[]);
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
        assert!(body.contains("still loading"), "{path}: {body}");
    }
    let (status, _, metrics) = server.get("/metrics", &[]);
    assert_eq!(status, 200);
    assert_eq!(value(&metrics, "wasi_infer_ready", ""), 0.0, "{metrics}");

    server
        .ready
        .recv_timeout(Duration::from_secs(180))
        .expect("the server got ready");
    let (status, _, body) = server.get("/health/ready", &[]);
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
    let (status, _, _) = server.get("/v2/health/ready", &[]);
    assert_eq!(status, 200);

    // A client's request id is kept, echoed and logged; one is made otherwise.
    let (status, headers, _) = server.get(
        "/v2/models/efficientnet-lite0",
        &[("x-request-id", "e2e-42")],
    );
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-request-id").map(String::as_str),
        Some("e2e-42")
    );
    let line = server.log_line(|l| l["request_id"] == "e2e-42");
    assert_eq!(line["message"], "request", "{line}");
    assert_eq!(line["target"], "wasi_infer::request", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["path"], "/v2/models/efficientnet-lite0", "{line}");
    assert_eq!(line["route"], "/v2/...", "{line}");
    assert_eq!(line["component"], "open-inference", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["ms"].as_f64().is_some_and(|ms| ms > 0.0), "{line}");

    let (status, headers, _) = server.get("/nowhere", &[("x-request-id", "not ok!")]);
    assert_eq!(status, 404);
    let made = headers.get("x-request-id").expect("an id").clone();
    assert!(
        made.len() == 16 && made.chars().all(|c| c.is_ascii_hexdigit()),
        "{made}"
    );
    let line = server.log_line(|l| l["request_id"] == made.as_str());
    assert_eq!(
        (&line["route"], &line["component"], &line["status"]),
        (&"unmatched".into(), &"".into(), &404.into())
    );
}

#[test]
fn the_readable_log_has_one_line_per_request() {
    let server = Server::start(&[]);
    let reply = server.send("GET", "/v2", &[("x-request-id", "readable-1")], b"");
    assert_eq!(reply.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("readable-1")).collect();
        if let [line] = lines[..] {
            for field in [
                "wasi_infer::request",
                "method=GET",
                "path=\"/v2\"",
                "route=\"/v2/...\"",
                "component=\"open-inference\"",
                "status=200",
                "ms=",
                "request_id=\"readable-1\"",
            ] {
                assert!(line.contains(field), "{field} not in {line}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} lines for the request in:\n{log}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn check_loads_everything_and_reports_without_serving() {
    let (ok, stdout, stderr) = wasi_infer(&["check"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("application inference-functions 0.1.0 is ready to serve"),
        "{stdout}"
    );
    for route in [
        "/classify/...  -> image-classify (wasi:http@0.2)",
        "/v2/...        -> open-inference (wasi:http@0.2)",
    ] {
        assert!(stdout.contains(route), "{route} not in:\n{stdout}");
    }
    assert!(
        stdout.contains("efficientnet-lite0 (version 1) on ")
            && stdout.contains("input f32 [?, 3, 224, 224] -> logits f32 [?, 1000]"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning"), "{stdout}");
    // Not a terminal: plain log lines, no progress bar.
    assert!(
        stderr.contains("model loaded") && stderr.contains("component ready"),
        "{stderr}"
    );

    // A route the host's own endpoints shadow is reported.
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(root().join("spin.toml"))
        .unwrap()
        .replace("route = \"/v2/...\"", "route = \"/...\"")
        .replace("\"target/", &format!("\"{}/target/", root().display()))
        .replace(
            "source = \"models\"",
            &format!("source = \"{}/models\"", root().display()),
        );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    let models = root().join("models");
    let (ok, stdout, stderr) = wasi_infer(&[
        "check",
        "--manifest",
        path.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("warning: /metrics is answered by the host itself, never by route /..."),
        "{stdout}"
    );

    // A broken application fails, naming the problem.
    std::fs::write(&path, "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/a\"\ncomponent = \"missing\"\n").unwrap();
    let (ok, _, stderr) = wasi_infer(&["check", "--manifest", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("missing"), "{stderr}");
}

#[test]
fn help_lists_the_commands_and_the_limits() {
    let (ok, stdout, _) = wasi_infer(&["--help"]);
    assert!(ok);
    for command in ["serve", "check", "compile", "models", "--log-format"] {
        assert!(stdout.contains(command), "{command} not in:\n{stdout}");
    }
    let (ok, stdout, _) = wasi_infer(&["serve", "--help"]);
    assert!(ok);
    assert!(
        stdout.contains("Limits:") && stdout.contains("--max-body-size"),
        "{stdout}"
    );
}
