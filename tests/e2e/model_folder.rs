//! A model folder served without a manifest (`serve --models DIR`), as a
//! model server is handed one (KServe mounts it at /mnt/models), configured
//! through the environment as containers are, and drained on SIGTERM as
//! Kubernetes expects.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::{MODELS, Server, photo, root};

#[test]
fn a_repository_is_served_by_the_built_in_application() {
    // No --manifest: the root's spin.toml is not what is served.
    let server = Server::start(&["--models", "models", "--backend", "tract"]);
    let log = server.log();
    assert!(!log.contains("spin.toml"), "{log}");

    // Every model by the Open Inference Protocol.
    for model in MODELS {
        let reply = server.get(&format!("/v2/models/{model}"));
        assert_eq!(reply.status, 200, "{model}: {}", reply.text);
        assert_eq!(reply.json()["name"], model);
    }
    // /classify, /embed, /vad and /ocr for the models whose model.toml
    // declares the task.
    let reply = server.post(
        "/classify/efficientnet-lite0-int8?top_k=1",
        &photo("coffee.png"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json()["predictions"][0]["index"],
        967,
        "{}",
        reply.text
    );
    let body = json!({ "input": ["A man is eating food."] }).to_string();
    let reply = server.post("/embed/all-minilm-l6-v2", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["dimensions"], 384);
    let speech = std::fs::read(root().join("tests/data/vad/speech.wav")).unwrap();
    let reply = server.post("/vad/silero-vad", &speech);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["segments"].as_array().map(Vec::len), Some(4));
    // The OCR detector's route may also load the models its [preprocess]
    // names (the recogniser and the direction classifier).
    let reply = server.post("/ocr/pp-ocrv4", &photo("page.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["lines"].as_array().map(Vec::len), Some(5));
    // ...and not for the others: the classifier may not load the embedder.
    let reply = server.post("/classify/all-minilm-l6-v2", &photo("coffee.png"));
    assert!(
        (400..500).contains(&reply.status),
        "{} {}",
        reply.status,
        reply.text
    );
}

/// A folder holding only `clothes.onnx`: the Fashion-MNIST CNN exported as a
/// framework would, with no model.toml.
fn bare_model_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("models/fashion-mnist-cnn/model.onnx"),
        dir.path().join("clothes.onnx"),
    )
    .unwrap();
    dir
}

#[test]
fn a_bare_onnx_folder_is_served_under_the_name_given_in_the_environment() {
    let dir = bare_model_folder();
    let folder = dir.path().to_str().unwrap();
    let server = Server::start_with(
        &[],
        &[
            ("WASI_INFER_MODELS", folder),
            ("WASI_INFER_MODEL_NAME", "clothes"),
            ("WASI_INFER_BACKEND", "tract"),
        ],
    );
    // Its interface, read from the graph: a dynamic batch.
    let reply = server.get("/v2/models/clothes");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let metadata = reply.json();
    assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 1, 28, 28]));
    assert_eq!(metadata["outputs"][0]["shape"], json!([-1, 10]));

    // A batch of two: a blank image and a bright square; the same scores as
    // the model served from the repository with its model.toml.
    let mut bright = vec![0.0f32; 784];
    for y in 8..20 {
        for x in 8..20 {
            bright[y * 28 + x] = 1.0;
        }
    }
    let data: Vec<f32> = std::iter::repeat_n(0.0, 784)
        .chain(bright.clone())
        .collect();
    let infer = |server: &Server, model: &str, batch: usize, data: &[f32]| {
        let body = json!({ "inputs": [{
            "name": "input", "shape": [batch, 1, 28, 28], "datatype": "FP32", "data": data,
        }]});
        let reply = server.send(
            "POST",
            &format!("/v2/models/{model}/infer"),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{model}: {}", reply.text);
        let out = reply.json();
        out["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let bare = infer(&server, "clothes", 2, &data);
    assert_eq!(bare.len(), 20);
    let repository = Server::start(&["--backend", "tract"]);
    let described = infer(&repository, "fashion-mnist-cnn", 1, &bright);
    // The same model on the same backend: only the batch differs, which may
    // reorder tract's f32 sums (kernel tiling differs by batch and by CPU).
    // Reordered f32 sums over a few thousand terms move these logits (of
    // magnitude 1 to 20) by about 1e-6 relative; 1e-4 leaves a hundredfold.
    for (a, b) in bare[10..].iter().zip(&described) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{bare:?} vs {described:?}"
        );
    }
    // No task declared: no /classify route at all.
    server
        .post("/classify/clothes", &photo("coffee.png"))
        .assert_error(404);
}

#[test]
fn a_name_for_a_repository_or_a_folder_without_a_model_is_refused_at_start_up() {
    let error = crate::server::start_up_error(&["--models", "models", "--model-name", "x"], &[]);
    assert!(error.contains("--model-name"), "{error}");
    let empty = tempfile::tempdir().unwrap();
    let error = crate::server::start_up_error(&["--models", empty.path().to_str().unwrap()], &[]);
    assert!(error.contains("no models"), "{error}");
}

#[test]
fn on_sigterm_it_reports_not_ready_but_serves_through_the_drain_delay() {
    let dir = bare_model_folder();
    let mut server = Server::start(&[
        "--models",
        dir.path().to_str().unwrap(),
        "--model-name",
        "clothes",
        "--backend",
        "tract",
        // Long enough that the checks below, run in it, never outlast it on
        // a slow or loaded machine.
        "--drain-delay",
        "5s",
        "--shutdown-grace",
        "5s",
    ]);
    assert_eq!(server.get("/health/ready").status, 200);
    let signalled = Instant::now();
    server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    // Not ready, so the load balancer takes it out of rotation...
    let reply = server.get("/health/ready");
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(reply.text.contains("shutting down"), "{}", reply.text);
    // ...while requests still sent its way are served.
    let reply = server.get("/v2/models/clothes");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the checks took {:?}, past the drain delay",
        signalled.elapsed()
    );
    // Then the listener closes, and the process exits 0.
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(5),
        "exited {:?} after SIGTERM, before the drain delay",
        signalled.elapsed()
    );
    assert!(TcpStream::connect(server.address()).is_err());
}
