//! Many models per host (host/src/nn/store, docs/models.md): models loaded
//! on their first request, once however many requests wait for them; 200
//! models under a memory budget that fits about 20; a new version going
//! live under load without a failed request; a broken version leaving the
//! serving one in place; and the repository API, with and without its token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::hardening::{RssWatch, rss};
use crate::observability::{series, value};
use crate::open_inference::test_python;
use crate::server::{Server, root};

const MIB: u64 = 1 << 20;

/// The repository API's token in these tests.
const TOKEN: &str = "model-store-test-token-0123456789";

/// The Fashion-MNIST CNN (fp32) and its pruned copy: the same interface,
/// different weights, so their answers tell them apart.
fn cnn_file(which: &str) -> PathBuf {
    root().join("models").join(which).join("model.onnx")
}

/// A `model.toml` for the CNN, with `extra` lines first.
fn cnn_toml(extra: &str) -> String {
    format!(
        "{extra}\nformat = \"onnx\"\nfile = \"model.onnx\"\n\
         [[inputs]]\nname = \"input\"\ntype = \"f32\"\nshape = [1, 1, 28, 28]\n\
         [[outputs]]\nname = \"logits\"\ntype = \"f32\"\nshape = [1, 10]\n"
    )
}

/// `from` at `to`: a hard link where the file system allows (200 models
/// are then one file on disk), else a copy.
fn place(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

/// A model folder `dir` of the CNN `which`, flat.
fn write_model(dir: &Path, which: &str, extra: &str) {
    place(&cnn_file(which), &dir.join("model.onnx"));
    std::fs::write(dir.join("model.toml"), cnn_toml(extra)).unwrap();
}

fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

/// A server of the repository `repo` on `backend`, its repository API on
/// with [`TOKEN`], and `more` flags.
fn admin_server(repo: &Path, backend: &str, more: &[&str]) -> Server {
    let tokens = token_file(repo);
    let mut args = vec![
        "--models",
        repo.to_str().unwrap(),
        "--backend",
        backend,
        "--admin-token-file",
        tokens.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    Server::start(&args)
}

/// One fixed 28x28 image (a gradient), by the Open Inference Protocol.
fn infer_body() -> Vec<u8> {
    let data: Vec<f32> = (0..784).map(|i| (i % 28) as f32 / 27.0).collect();
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": data}]})
        .to_string()
        .into_bytes()
}

/// The version that answered and its logits.
fn answer(reply: &Value) -> (String, Vec<f32>) {
    let version = reply["model_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let logits = reply["outputs"][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no logits in {reply}"))
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    (version, logits)
}

/// The same model on the same backend, with the same input: only the
/// threads an operator's sums are split over may differ between its
/// sessions (the pool's one-thread sessions, the solo session of all
/// cores), which reorders float additions: 1e-4 relative is far above that
/// rounding and far below any difference between two trained models.
fn assert_same_logits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

fn admin(server: &Server, path: &str, body: &str) -> crate::server::Reply {
    server.send(
        "POST",
        path,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body.as_bytes(),
    )
}

fn index(server: &Server) -> Vec<Value> {
    let reply = admin(server, "/v2/repository/index", "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().unwrap().clone()
}

/// The index row of `model` at `version`.
fn row<'a>(rows: &'a [Value], model: &str, version: &str) -> Option<&'a Value> {
    rows.iter()
        .find(|r| r["name"] == model && r["version"] == version)
}

/// The sum of a counter's series whose labels contain `labels`.
fn total(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn on_demand_models_load_once_on_their_first_request_on_every_backend() {
    let repo = tempfile::tempdir().unwrap();
    write_model(&repo.path().join("lazy"), "fashion-mnist-cnn", "");
    write_model(
        &repo.path().join("eager"),
        "fashion-mnist-cnn",
        "load = \"startup\"",
    );
    for backend in ["onnxruntime", "openvino", "tract"] {
        let started = Instant::now();
        let server = admin_server(repo.path(), backend, &["--load", "on-demand"]);
        let listening = started.elapsed();
        // Ready without the on-demand model: it loads when asked for.
        assert_eq!(server.get("/health/ready").status, 200);
        let rows = index(&server);
        let lazy = row(&rows, "lazy", "1").unwrap();
        assert_eq!(lazy["state"], "UNAVAILABLE", "{rows:?}");
        assert!(
            lazy["reason"].as_str().unwrap().contains("first request"),
            "{lazy}"
        );
        assert_eq!(
            row(&rows, "eager", "1").unwrap()["state"],
            "READY",
            "{rows:?}"
        );
        // Ready in the protocol's sense: it serves (after its load).
        assert_eq!(server.get("/v2/models/lazy/ready").json()["ready"], true);
        assert_eq!(server.get("/v2/models/lazy").json()["platform"], backend);

        // Eight first requests at once: one load, and all of them answered.
        let body = infer_body();
        let first = Instant::now();
        let replies: Vec<(u16, String, Duration)> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let reply = server.post("/v2/models/lazy/infer", &body);
                        (reply.status, reply.text, first.elapsed())
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let reference = answer(&serde_json::from_str(&replies[0].1).unwrap()).1;
        for (status, text, _) in &replies {
            assert_eq!(*status, 200, "{backend}: {text}");
            let (version, logits) = answer(&serde_json::from_str(text).unwrap());
            assert_eq!(version, "1");
            assert_same_logits(&logits, &reference, backend);
        }
        let slowest = replies.iter().map(|r| r.2).max().unwrap();
        let again = Instant::now();
        assert_eq!(server.post("/v2/models/lazy/infer", &body).status, 200);
        let warm = again.elapsed();
        let metrics = server.get("/metrics").text;
        assert_eq!(
            value(
                &metrics,
                "wasi_infer_model_loads_total",
                r#"model="lazy",outcome="loaded""#
            ),
            1.0,
            "{backend}: one load for eight requests"
        );
        assert!(
            value(
                &metrics,
                "wasi_infer_model_load_wait_seconds_count",
                r#"model="lazy""#
            ) >= 1.0
        );
        let resident = value(
            &metrics,
            "wasi_infer_model_resident_bytes",
            r#"model="lazy",version="1""#,
        );
        assert_eq!(row(&index(&server), "lazy", "1").unwrap()["state"], "READY");
        eprintln!(
            "{backend}: listening after {:.0} ms; first answer (load included) after {:.0} ms, \
             then {:.1} ms; the model holds {:.1} MiB",
            listening.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            resident / MIB as f64
        );
    }
}

#[test]
fn a_budget_too_small_for_a_model_answers_503_and_the_server_keeps_serving() {
    let repo = tempfile::tempdir().unwrap();
    write_model(&repo.path().join("cnn"), "fashion-mnist-cnn", "");
    // Less than the model's file: it can never fit. At start-up it is left
    // to load on demand (the server still starts and is ready).
    let server = Server::start(&[
        "--models",
        repo.path().to_str().unwrap(),
        "--model-memory-budget",
        "100K",
        "--backend",
        "tract",
    ]);
    assert_eq!(server.get("/health/ready").status, 200);
    for _ in 0..2 {
        let reply = server.post("/v2/models/cnn/infer", &infer_body());
        let message = reply.assert_error(503);
        assert!(message.contains("memory budget"), "{message}");
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    assert_eq!(server.get("/v2/health/live").status, 200);
}

/// Models in the big repository, and how many the budget is made to fit.
const MANY: usize = 200;
const FIT: u64 = 20;

#[test]
fn two_hundred_models_under_a_budget_that_fits_twenty() {
    let repo = tempfile::tempdir().unwrap();
    let name = |i: usize| format!("cnn-{i:03}");
    for i in 0..MANY {
        write_model(&repo.path().join(name(i)), "fashion-mnist-cnn", "");
    }
    let repo_dir = repo.path().to_str().unwrap();
    let body = infer_body();

    // What one model costs here, measured by the server itself: the second
    // model's load (the first also pays for ONNX Runtime's own start).
    let on_demand = [
        "--models",
        repo_dir,
        "--load",
        "on-demand",
        "--backend",
        "onnxruntime",
    ];
    let cost = {
        let server = Server::start(&on_demand);
        for i in 0..2 {
            assert_eq!(
                server
                    .post(&format!("/v2/models/{}/infer", name(i)), &body)
                    .status,
                200
            );
        }
        let metrics = server.get("/metrics").text;
        value(
            &metrics,
            "wasi_infer_model_resident_bytes",
            &format!(r#"model="{}",version="1""#, name(1)),
        ) as u64
    };
    let budget = FIT * cost;

    let started = Instant::now();
    let budget_flag = budget.to_string();
    let server =
        Server::start(&[&on_demand[..], &["--model-memory-budget", &budget_flag]].concat());
    let listening = started.elapsed();
    let pid = server.pid();
    // One model loaded and answered: ONNX Runtime's own memory (its
    // environment, its thread pools) is then in the baseline, not a model's.
    let reference = answer(&server.post("/v2/models/cnn-000/infer", &body).json()).1;
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss(pid)
        - value(
            &server.get("/metrics").text,
            "wasi_infer_model_resident_bytes",
            r#"model="cnn-000",version="1""#,
        ) as u64;
    let watch = RssWatch::start(pid);

    const CLIENTS: u64 = 4;
    const EACH: u64 = 100;
    let failures = Mutex::new(Vec::new());
    let traffic = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (server, body, reference, failures) = (&server, &body, &reference, &failures);
            scope.spawn(move || {
                // A random walk over the 200 models, its own per client.
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (client + 1);
                for _ in 0..EACH {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let model = name((state % MANY as u64) as usize);
                    let reply = server.post(&format!("/v2/models/{model}/infer"), body);
                    if reply.status != 200 {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{model}: {} {}", reply.status, reply.text));
                        continue;
                    }
                    let (version, logits) = answer(&reply.json());
                    assert_eq!(version, "1");
                    assert_same_logits(&logits, reference, &model);
                }
            });
        }
    });
    let took = traffic.elapsed();
    let peak = watch.peak();
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    let metrics = server.get("/metrics").text;
    let loads = total(
        &metrics,
        "wasi_infer_model_loads_total",
        r#"outcome="loaded""#,
    );
    let evictions = total(
        &metrics,
        "wasi_infer_model_unloads_total",
        r#"outcome="evicted""#,
    );
    let loaded = total(&metrics, "wasi_infer_model_loaded", "model=");
    let requests = CLIENTS * EACH;
    eprintln!(
        "{MANY} models, budget {} MiB ({FIT} x {:.1} MiB): listening after {:.0} ms; {requests} \
         requests in {:.1} s, 0 failed; {loads} loads, {evictions} evictions, {loaded} loaded at \
         the end; resident {} MiB before the traffic (models aside), peak {} MiB",
        budget / MIB,
        cost as f64 / MIB as f64,
        listening.as_secs_f64() * 1e3,
        took.as_secs_f64(),
        baseline / MIB,
        peak / MIB,
    );
    assert!(
        evictions > 0.0,
        "the budget fits {FIT} of {MANY}: some must be unloaded"
    );
    assert!(
        loaded <= FIT as f64 + 1.0,
        "{loaded} loaded at once under a budget for {FIT}"
    );
    // The margin over the budget: the load that measures itself (one
    // model's worth, charged only once it is loaded), the requests in
    // flight (4 clients: their bodies, instances and tensors, a few MiB
    // each), and what the allocator keeps of models freed (glibc's arenas,
    // trimmed after each eviction but not to the page): a quarter of the
    // budget, and 32 MiB for the requests.
    let margin = budget / 4 + 32 * MIB;
    assert!(
        peak <= baseline + budget + margin,
        "peak {} MiB > baseline {} + budget {} + margin {} MiB",
        peak / MIB,
        baseline / MIB,
        budget / MIB,
        margin / MIB
    );
}

/// Requests at `clients` at once on `path` until `stop`: each one's start,
/// end, status and answer.
struct Traffic {
    started: Instant,
    log: Mutex<Vec<(Duration, Duration, u16, String)>>,
    stop: AtomicBool,
}

impl Traffic {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        }
    }

    fn run(&self, server: &Server, path: &str, body: &[u8]) {
        while !self.stop.load(Ordering::Relaxed) {
            let start = self.started.elapsed();
            let reply = server.post(path, body);
            let end = self.started.elapsed();
            self.log
                .lock()
                .unwrap()
                .push((start, end, reply.status, reply.text));
        }
    }
}

/// A model `m` with version folders, its model.toml shared by them.
fn versioned_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.toml"), cnn_toml("")).unwrap();
    place(&cnn_file("fashion-mnist-cnn"), &dir.join("1/model.onnx"));
    repo
}

/// The logits of `which` as served alone (the reference for a version).
fn logits_of(server: &Server, path: &str) -> Vec<f32> {
    let reply = server.post(path, &infer_body());
    assert_eq!(reply.status, 200, "{}", reply.text);
    answer(&reply.json()).1
}

#[test]
fn a_new_version_goes_live_under_load_at_one_moment_without_a_failed_request() {
    let repo = versioned_repo();
    let server = admin_server(repo.path(), "onnxruntime", &[]);
    let old = logits_of(&server, "/v2/models/m/versions/1/infer");
    let body = infer_body();
    let traffic = Traffic::new();
    let switched = std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| traffic.run(&server, "/v2/models/m/infer", &body));
        }
        std::thread::sleep(Duration::from_millis(1500));
        // Version 2 (other weights) lands in the repository and is loaded.
        place(
            &cnn_file("fashion-mnist-cnn-pruned"),
            &repo.path().join("m/2/model.onnx"),
        );
        let loading = traffic.started.elapsed();
        let reply = admin(&server, "/v2/repository/models/m/load", "{}");
        let loaded = traffic.started.elapsed();
        assert_eq!(reply.status, 200, "{}", reply.text);
        std::thread::sleep(Duration::from_millis(1500));
        traffic.stop.store(true, Ordering::Relaxed);
        (loading, loaded)
    });
    let new = logits_of(&server, "/v2/models/m/infer");
    assert!(
        new.iter().zip(&old).any(|(a, b)| (a - b).abs() > 1e-3),
        "the versions differ"
    );

    let log = traffic.log.into_inner().unwrap();
    let mut first_new_end = Duration::MAX;
    let mut counts = [0usize; 2];
    for (_, end, status, text) in &log {
        assert_eq!(*status, 200, "{text}");
        let (version, logits) = answer(&serde_json::from_str(text).unwrap());
        match version.as_str() {
            "1" => {
                assert_same_logits(&logits, &old, "version 1");
                counts[0] += 1;
            }
            "2" => {
                assert_same_logits(&logits, &new, "version 2");
                counts[1] += 1;
                first_new_end = first_new_end.min(*end);
            }
            other => panic!("version {other:?}"),
        }
    }
    // One moment: no request that began after a version 2 answer ended was
    // answered by version 1.
    let late_old = log
        .iter()
        .filter(|(start, _, _, text)| {
            *start > first_new_end && text.contains(r#""model_version":"1""#)
        })
        .count();
    assert_eq!(late_old, 0, "answers from version 1 after the switch");
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    let rows = index(&server);
    assert_eq!(row(&rows, "m", "2").unwrap()["state"], "READY", "{rows:?}");
    assert!(
        row(&rows, "m", "1").is_none(),
        "version 1 retired: {rows:?}"
    );
    let metrics = server.get("/metrics").text;
    assert_eq!(
        value(
            &metrics,
            "wasi_infer_model_unloads_total",
            r#"model="m",outcome="retired""#
        ),
        1.0
    );
    assert_eq!(
        series(
            &metrics,
            "wasi_infer_model_loaded",
            r#"model="m",version="1""#
        ),
        Some(0.0)
    );
    eprintln!(
        "hot reload at c=16: {} requests, 0 failed ({} by version 1, {} by version 2); the load \
         call took {:.0} ms ({:.2} s to {:.2} s); first answer by version 2 at {:.2} s",
        log.len(),
        counts[0],
        counts[1],
        (switched.1 - switched.0).as_secs_f64() * 1e3,
        switched.0.as_secs_f64(),
        switched.1.as_secs_f64(),
        first_new_end.as_secs_f64()
    );
}

#[test]
fn a_broken_version_leaves_the_serving_one_in_place_and_watch_picks_up_a_good_one() {
    let repo = versioned_repo();
    let server = admin_server(
        repo.path(),
        "tract",
        &["--watch", "--watch-debounce", "300ms"],
    );
    let body = infer_body();
    let version = |server: &Server| {
        let reply = server.post("/v2/models/m/infer", &body);
        assert_eq!(reply.status, 200, "{}", reply.text);
        answer(&reply.json()).0
    };
    assert_eq!(version(&server), "1");
    // A broken version 2: the watcher may try it first; the call tries it
    // again (one reload at a time), and both leave version 1 serving.
    std::fs::create_dir_all(repo.path().join("m/2")).unwrap();
    std::fs::write(repo.path().join("m/2/model.onnx"), b"not an ONNX model").unwrap();
    let reply = admin(&server, "/v2/repository/models/m/load", "");
    let message = reply.assert_error(400);
    assert!(message.contains("version 2"), "{message}");
    assert_eq!(version(&server), "1", "the serving version stays");
    let rows = index(&server);
    assert_eq!(row(&rows, "m", "1").unwrap()["state"], "READY", "{rows:?}");
    let broken = row(&rows, "m", "2").unwrap();
    assert_eq!(broken["state"], "UNAVAILABLE");
    assert!(!broken["reason"].as_str().unwrap().is_empty(), "{broken}");
    // Asked for by version, the broken one says why.
    let reply = server.post("/v2/models/m/versions/2/infer", &body);
    assert!(
        reply.assert_error(503).contains("cannot be loaded"),
        "{}",
        reply.text
    );
    assert_eq!(
        server.get("/v2/models/m/versions/2/ready").json()["ready"],
        false
    );

    // --watch: a good version 3 copied in is served without a call.
    place(
        &cnn_file("fashion-mnist-cnn-pruned"),
        &repo.path().join("m/3/model.onnx"),
    );
    let until = Instant::now() + Duration::from_secs(20);
    while version(&server) != "3" {
        assert!(
            Instant::now() < until,
            "version 3 not served: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.log().contains("reloaded"), "{}", server.log());
    // Version 3 ready, the others (old, broken) retired with it.
    let rows = index(&server);
    let versions: Vec<&str> = rows.iter().filter_map(|r| r["version"].as_str()).collect();
    assert_eq!(versions, ["3"], "{rows:?}");
}

#[test]
fn the_repository_api_needs_the_token_and_tritonclient_uses_it() {
    let repo = versioned_repo();
    write_model(&repo.path().join("other"), "fashion-mnist-cnn", "");
    let server = admin_server(repo.path(), "tract", &[]);
    // By hand first: no token, a wrong one, another scheme: 401, nothing done.
    for headers in [
        vec![],
        vec![("authorization", "Bearer not-the-token-0123456789")],
        vec![("authorization", "Basic bW9kZWw6c3RvcmU=")],
    ] {
        let reply = server.send("POST", "/v2/repository/models/m/unload", &headers, b"");
        reply.assert_error(401);
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        );
    }
    assert_eq!(server.get("/v2/models/m/ready").json()["ready"], true);
    let reply = server.send(
        "GET",
        "/v2/repository/index",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    reply.assert_error(405);

    let output = Command::new(test_python())
        .current_dir(root())
        .arg(root().join("tests/oip/repository_check.py"))
        .arg(server.address())
        .arg(TOKEN)
        .output()
        .expect("run tests/oip/repository_check.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "tests/oip/repository_check.py failed:\n{stdout}\n{}\nthe server's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );

    // The index's ready filter, by hand (tritonclient sends none).
    assert_eq!(
        admin(&server, "/v2/repository/models/other/unload", "").status,
        200
    );
    let ready = admin(&server, "/v2/repository/index", r#"{"ready": true}"#).json();
    let names: Vec<&str> = ready
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["m"], "{ready}");
    admin(&server, "/v2/repository/index", "{not json").assert_error(400);
    admin(&server, "/v2/repository/models/no-such/unload", "").assert_error(404);

    // Off without a token file: the protocol function answers, as for any
    // path it does not serve.
    let plain = Server::start(&[
        "--models",
        repo.path().to_str().unwrap(),
        "--backend",
        "tract",
    ]);
    plain.post("/v2/repository/index", b"").assert_error(404);
}
