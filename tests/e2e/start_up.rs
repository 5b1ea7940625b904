//! A bad manifest or model stops start-up with an error that names the culprit.

use crate::server::{Server, copy_dir, root, start_up_error};

/// A copy of the example application in a temporary directory, with `edit`
/// applied to its manifest; returns the directory.
fn app_with(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wasm = root().join("target/functions/wasm32-wasip2/release/image_classify.wasm");
    std::fs::copy(&wasm, dir.path().join("classify.wasm")).unwrap();
    copy_dir(
        &root().join("models/efficientnet-lite0-int8"),
        &dir.path().join("models/m"),
    );
    let manifest = r#"spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/classify/..."
component = "classify"
[component.classify]
source = "classify.wasm"
files = [{ source = "models", destination = "/models" }]
ai_models = ["m"]
"#;
    std::fs::write(dir.path().join("spin.toml"), edit(manifest.to_string())).unwrap();
    dir
}

fn error_for(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> String {
    let manifest = dir.path().join("spin.toml");
    start_up_error(
        &[
            "--manifest",
            manifest.to_str().unwrap(),
            "--backend",
            "tract",
        ],
        env,
    )
}

#[test]
fn the_fixture_itself_starts() {
    let dir = app_with(|m| m);
    let manifest = dir.path().join("spin.toml");
    let server = Server::start(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--backend",
        "tract",
    ]);
    assert_eq!(server.get("/classify/m").status, 405);
}

/// A name, an edit of the manifest, and what the error must mention.
type Case = (&'static str, fn(String) -> String, &'static [&'static str]);

#[test]
fn manifest_errors_name_the_file_the_key_and_the_problem() {
    let cases: [Case; 6] = [
        (
            "unknown key",
            |m| m.replace("ai_models", "ai_modles"),
            &["spin.toml", "ai_modles"],
        ),
        (
            "dangling route",
            |m| m.replace("component = \"classify\"", "component = \"nope\""),
            &["trigger.http[0].component", "nope"],
        ),
        (
            "missing source",
            |m| m.replace("classify.wasm", "gone.wasm"),
            &["component.classify.source", "gone.wasm"],
        ),
        (
            "unknown model",
            |m| m.replace("[\"m\"]", "[\"m\", \"ghost\"]"),
            &["component.classify.ai_models", "ghost"],
        ),
        (
            "bad route",
            |m| m.replace("/classify/...", "/classify/.../more"),
            &["trigger.http[0].route", "a wildcard may only end a route"],
        ),
        (
            "not TOML",
            |m| m.replace("[application]", "[application"),
            &["spin.toml"],
        ),
    ];
    for (case, edit, expected) in cases {
        let dir = app_with(edit);
        let stderr = error_for(&dir, &[]);
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{case}: {needle:?} not in:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_component_that_is_not_a_component_is_named() {
    let dir = app_with(|m| m);
    std::fs::write(dir.path().join("classify.wasm"), b"\0asm but not really").unwrap();
    let stderr = error_for(&dir, &[]);
    assert!(
        stderr.contains("component classify") && stderr.contains("classify.wasm"),
        "{stderr}"
    );
}

#[test]
fn model_errors_name_the_model_and_the_problem() {
    // Metadata that disagrees with the model.
    let dir = app_with(|m| m);
    let toml = dir.path().join("models/m/model.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("name = \"logits\"", "name = \"probabilities\""),
    )
    .unwrap();
    let stderr = error_for(&dir, &[]);
    assert!(
        stderr.contains("probabilities") && stderr.contains("logits"),
        "{stderr}"
    );

    // A corrupt weights file.
    let dir = app_with(|m| m);
    std::fs::write(dir.path().join("models/m/model.onnx"), b"garbage").unwrap();
    let stderr = error_for(&dir, &[]);
    assert!(stderr.contains("model.onnx"), "{stderr}");

    // A missing weights file (OpenVINO would read the model's IR instead).
    let dir = app_with(|m| m);
    std::fs::remove_file(dir.path().join("models/m/model.onnx")).unwrap();
    let manifest = dir.path().join("spin.toml");
    for backend in ["tract", "onnxruntime"] {
        let stderr = start_up_error(
            &[
                "--manifest",
                manifest.to_str().unwrap(),
                "--backend",
                backend,
            ],
            &[],
        );
        assert!(
            stderr.contains("model m") && stderr.contains("model.onnx"),
            "{backend}: {stderr}"
        );
    }

    // Limits that do not fit together.
    let dir = app_with(|m| m);
    let manifest = dir.path().join("spin.toml");
    let stderr = start_up_error(
        &[
            "--manifest",
            manifest.to_str().unwrap(),
            "--max-running",
            "8",
            "--max-instances",
            "4",
        ],
        &[],
    );
    assert!(stderr.contains("--max-instances"), "{stderr}");
}

#[test]
fn a_missing_native_library_is_named() {
    let dir = app_with(|m| m);
    let manifest = dir.path().join("spin.toml");
    for (backend, variable, library) in [
        (
            "onnxruntime",
            "ORT_DYLIB_PATH",
            "/nonexistent/libonnxruntime.so",
        ),
        (
            "openvino",
            "OPENVINO_DYLIB_PATH",
            "/nonexistent/libopenvino_c.so",
        ),
    ] {
        let args = [
            "--manifest",
            manifest.to_str().unwrap(),
            "--backend",
            backend,
        ];
        let stderr = start_up_error(&args, &[(variable, library)]);
        assert!(
            stderr.contains(backend) && stderr.contains(library),
            "{stderr}"
        );
    }
}

#[test]
fn auto_times_the_native_backends_keeps_the_fastest_and_remembers_it() {
    let dir = app_with(|m| m);
    let manifest = dir.path().join("spin.toml");
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "--manifest",
        manifest.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ];
    let server = Server::start(&args);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("auto: fastest backend chosen"))
        .unwrap_or_else(|| panic!("{log}"));
    for backend in ["onnxruntime", "openvino"] {
        assert!(line.contains(&format!("{backend} ")), "{line}");
    }
    let chosen = if line.contains("backend=onnxruntime") {
        "onnxruntime"
    } else {
        "openvino"
    };
    let reply = server.post("/classify/m", &crate::server::photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    drop(server);

    // A restart with the same cache loads the backend chosen, untimed.
    let server = Server::start(&args);
    let log = server.log();
    assert!(!log.contains("auto: fastest backend chosen"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("auto: the backend its trials chose before"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&format!("backend={chosen}")), "{line}");
    let reply = server.post("/classify/m", &crate::server::photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn auto_falls_back_to_tract_without_native_libraries() {
    let dir = app_with(|m| m);
    let manifest = dir.path().join("spin.toml");
    let server = Server::start_with(
        &["--manifest", manifest.to_str().unwrap()],
        &[
            ("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so"),
            ("OPENVINO_DYLIB_PATH", "/nonexistent/libopenvino_c.so"),
        ],
    );
    let log = server.log();
    assert!(
        log.contains("auto: the only backend available") && log.contains("backend=tract"),
        "{log}"
    );
    assert_eq!(log.matches("backend not available").count(), 2, "{log}");
    let reply = server.post("/classify/m", &crate::server::photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn gpu_without_cuda_is_an_error_unless_the_fallback_is_asked_for() {
    // The ONNX Runtime from PyPI's `onnxruntime` wheel has no CUDA provider.
    let dir = app_with(|m| m);
    let toml = dir.path().join("models/m/model.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text}\n[onnxruntime]\ndevice = \"gpu\"\n")).unwrap();
    let manifest = dir.path().join("spin.toml");
    let args = [
        "--manifest",
        manifest.to_str().unwrap(),
        "--backend",
        "onnxruntime",
    ];
    let stderr = start_up_error(&args, &[]);
    assert!(
        stderr.contains("CUDA") && stderr.contains("cpu_fallback"),
        "{stderr}"
    );

    std::fs::write(
        &toml,
        format!("{text}\n[onnxruntime]\ndevice = \"gpu\"\ncpu_fallback = true\n"),
    )
    .unwrap();
    let server = Server::start(&args);
    assert!(
        server
            .log()
            .contains("running on the CPU (cpu_fallback = true)"),
        "{}",
        server.log()
    );
    let reply = server.post("/classify/m", &crate::server::photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn an_ir_only_model_runs_on_openvino_and_names_why_nothing_else_can() {
    let dir = app_with(|m| m);
    let toml = dir.path().join("models/m/model.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("format = \"onnx\"", "format = \"openvino\"")
        .replace(
            "file = \"model.onnx\"",
            "file = \"openvino/model-int8.xml\"",
        );
    std::fs::write(&toml, text).unwrap();
    let manifest = dir.path().join("spin.toml");
    let args = ["--manifest", manifest.to_str().unwrap()];

    let server = Server::start(&args);
    assert!(
        server.log().contains("backend=openvino"),
        "{}",
        server.log()
    );
    let reply = server.post("/classify/m", &crate::server::photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);

    let stderr = start_up_error(
        &args,
        &[("OPENVINO_DYLIB_PATH", "/nonexistent/libopenvino_c.so")],
    );
    assert!(
        stderr.contains("no backend can run it")
            && stderr.contains("/nonexistent/libopenvino_c.so"),
        "{stderr}"
    );
}
