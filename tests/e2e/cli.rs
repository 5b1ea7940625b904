//! `wasi-infer models list|inspect` and `wasi-infer compile`.

use std::process::Command;

use serde_json::Value;

use crate::server::{MODELS, Server, photo, root};

/// Runs `wasi-infer` in the repository: success, stdout, stderr.
pub fn wasi_infer(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasi-infer"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run wasi-infer");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn models_list_shows_every_model() {
    let (ok, stdout, stderr) = wasi_infer(&["models", "list"]);
    assert!(ok, "{stderr}");
    for model in MODELS {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{model} "))),
            "{model} missing:\n{stdout}"
        );
    }
}

#[test]
fn models_inspect_reads_the_interface_from_the_model_on_every_backend() {
    for backend in ["onnxruntime", "openvino", "tract"] {
        let (ok, stdout, stderr) = wasi_infer(&[
            "models",
            "inspect",
            "all-minilm-l6-v2",
            "--backend",
            backend,
            "--json",
        ]);
        assert!(ok, "{backend}: {stderr}");
        let json: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(json["backend"], backend);
        let inputs = json["inputs"].as_array().unwrap();
        let names: Vec<&str> = inputs.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["input_ids", "attention_mask", "token_type_ids"],
            "{backend}"
        );
        assert_eq!(inputs[0]["type"], "i64", "{backend}");
        assert_eq!(inputs[0]["shape"], serde_json::json!([-1, -1]), "{backend}");
        let outputs = json["outputs"].as_array().unwrap();
        assert_eq!(outputs[1]["name"], "sentence_embedding", "{backend}");
        assert_eq!(
            outputs[1]["shape"],
            serde_json::json!([-1, 384]),
            "{backend}"
        );
    }

    // The human-readable form, and an unknown model.
    let (ok, stdout, _) = wasi_infer(&["models", "inspect", "efficientnet-lite0"]);
    assert!(ok);
    assert!(stdout.contains("input f32 [?, 3, 224, 224]"), "{stdout}");
    let (ok, _, stderr) = wasi_infer(&["models", "inspect", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("nope"), "{stderr}");
}

/// `compile` fills the cache once; `serve` then loads the components from it
/// instead of compiling them, and `--no-cache` compiles regardless.
#[test]
fn compile_fills_the_cache_that_serve_uses() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let (ok, out, err) = wasi_infer(&["compile", "--cache-dir", dir]);
    assert!(ok, "{err}");
    let components = [
        "image-classify",
        "ocr",
        "open-inference",
        "text-embed",
        "vad",
    ];
    for component in components {
        assert!(out.contains(&format!("{component}: compiled")), "{out}");
    }
    // The built-in application's functions are the same bytes, carried in
    // the binary: the same entries.
    for component in components {
        assert!(
            out.contains(&format!("{component} (built-in): already in the cache")),
            "{out}"
        );
    }
    let entries = || {
        std::fs::read_dir(cache.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .count()
    };
    assert_eq!(entries(), components.len());

    let (ok, out, err) = wasi_infer(&["compile", "--cache-dir", dir]);
    assert!(ok, "{err}");
    assert_eq!(
        out.matches("already in the cache").count(),
        2 * components.len(),
        "{out}"
    );

    // The example application, then a model folder served without a
    // manifest: both start from the cache.
    for args in [
        &["--backend", "onnxruntime", "--cache-dir", dir][..],
        &[
            "--models",
            "models",
            "--backend",
            "tract",
            "--cache-dir",
            dir,
        ],
    ] {
        let server = Server::start(args);
        let reply = server.post("/classify/fashion-mnist-cnn", &photo("page.png"));
        assert_eq!(reply.status, 200, "{args:?}: {}", reply.text);
        assert_eq!(
            server.log().matches("compiled=\"from cache\"").count(),
            components.len(),
            "{args:?}: {}",
            server.log()
        );
    }

    let server = Server::start(&["--backend", "onnxruntime", "--no-cache"]);
    let reply = server.post("/classify/fashion-mnist-cnn", &photo("page.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        server.log().matches("compiled=\"now\"").count(),
        components.len(),
        "{}",
        server.log()
    );
    assert_eq!(entries(), components.len(), "--no-cache writes nothing");
}
