//! `wasi-infer new`: each template written into a copy of this application,
//! built for wasm32-wasip2 and unit-tested natively as the README says, then
//! served beside the function it was modelled on, answering as it does.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use crate::server::{Server, copy_dir, form_upload, photo, root};

/// The functions the test writes: template, name, further arguments.
const NEW: [(&str, &str, &[&str]); 3] = [
    ("classifier", "new-classifier", &[]),
    ("text", "new-text", &[]),
    ("blank", "new-blank", &["--model", "fashion-mnist-cnn"]),
];

#[test]
fn every_template_builds_passes_its_unit_tests_and_serves() {
    let app = application_copy();
    for (template, name, more) in NEW {
        let out = new(app.path(), &[&[template, name], more].concat());
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "new {template} {name}: {}",
            text(&out)
        );
        assert!(said.contains(&format!("Routed /{name}/...")), "{said}");
        assert!(
            app.path()
                .join("functions")
                .join(name)
                .join("src/lib.rs")
                .is_file()
        );
    }
    refusals_change_nothing(app.path());

    // Built and tested as a user does (the README's "Adding a function"):
    // the build shares this run's target folders, so only the new crates
    // compile.
    let names: Vec<&str> = NEW.iter().map(|(_, name, _)| *name).collect();
    let built = cargo(
        app.path(),
        &["build", "--release", "--target", "wasm32-wasip2"],
        "functions",
        &names,
    );
    assert!(
        built.status.success(),
        "building the new functions: {}",
        text(&built)
    );
    let tested = cargo(app.path(), &["test", "--lib"], "functions-native", &names);
    let report = text(&tested);
    assert!(tested.status.success(), "their unit tests: {report}");
    let passed: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("test result: ok."))
        .collect();
    assert_eq!(passed.len(), NEW.len(), "{report}");
    assert!(
        passed.iter().all(|l| !l.contains("ok. 0 passed")),
        "{report}"
    );

    // Served from the copy's manifest. Each new function is compared with
    // the function of the example application it was modelled on, on the
    // same server and backend: they prepare the input with the same code
    // (image-prep, text-prep) and run the same model, so the answers are
    // the same numbers, exactly (tract computes deterministically, on one
    // thread per inference).
    let manifest = app.path().join("spin.toml");
    let server = Server::start(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--backend",
        "tract",
    ]);

    let image = photo("chelsea.png");
    let theirs = server.post("/classify/efficientnet-lite0", &image);
    let ours = server.post("/new-classifier/efficientnet-lite0", &image);
    assert_eq!(ours.status, 200, "{}", ours.text);
    assert_eq!(ours.json()["predictions"], theirs.json()["predictions"]);
    assert!(
        ours.header("server-timing")
            .is_some_and(|t| t.contains("inference;dur="))
    );
    let upload = form_upload("chelsea.png", "image/png", &image);
    let uploaded = server.send(
        "POST",
        "/new-classifier/efficientnet-lite0",
        &[("content-type", "multipart/form-data; boundary=XyZ")],
        &upload,
    );
    assert_eq!(uploaded.json(), ours.json(), "{}", uploaded.text);

    let texts =
        json!({ "input": ["A man is eating food.", "A man is riding a horse."] }).to_string();
    let theirs = server.post("/embed/all-minilm-l6-v2", texts.as_bytes());
    let ours = server.post("/new-text/all-minilm-l6-v2", texts.as_bytes());
    assert_eq!(ours.status, 200, "{}", ours.text);
    assert_eq!(ours.json()["outputs"], theirs.json()["embeddings"]);
    assert_eq!(ours.json()["tokens"], theirs.json()["tokens"]);

    // The blank function against the Open Inference Protocol's answer.
    let pixels: Vec<f32> = (0..784).map(|i| (i % 28) as f32 / 27.0).collect();
    let ours = server.post(
        "/new-blank/fashion-mnist-cnn",
        json!({ "data": pixels }).to_string().as_bytes(),
    );
    assert_eq!(ours.status, 200, "{}", ours.text);
    let oip = json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": pixels }] });
    let theirs = server.post(
        "/v2/models/fashion-mnist-cnn/infer",
        oip.to_string().as_bytes(),
    );
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(
        ours.json()["outputs"][0]["data"],
        theirs.json()["outputs"][0]["data"]
    );
    assert_eq!(ours.json()["outputs"][0]["shape"], json!([1, 10]));

    // The error conventions of every function: JSON errors naming the problem.
    for (method, path, body, status) in [
        ("GET", "/new-classifier/efficientnet-lite0", &b""[..], 405),
        ("POST", "/new-classifier/efficientnet-lite0", b"", 400),
        (
            "POST",
            "/new-classifier/efficientnet-lite0",
            b"not an image",
            400,
        ),
        ("POST", "/new-classifier/all-minilm-l6-v2", &image[..], 400),
        (
            "POST",
            "/new-text/all-minilm-l6-v2",
            b"{\"input\": []}",
            400,
        ),
        ("POST", "/new-text/nope", b"{\"input\": \"a\"}", 404),
        (
            "POST",
            "/new-blank/fashion-mnist-cnn",
            b"{\"data\": [1, 2]}",
            400,
        ),
        (
            "POST",
            "/new-blank/efficientnet-lite0",
            b"{\"data\": [1]}",
            404,
        ),
    ] {
        server.send(method, path, &[], body).assert_error(status);
    }
}

/// What `new` refuses, it refuses before writing anything.
fn refusals_change_nothing(app: &Path) {
    let manifest = std::fs::read(app.join("spin.toml")).unwrap();
    let workspace = std::fs::read(app.join("functions/Cargo.toml")).unwrap();
    for (args, says) in [
        (
            &["classifier", "new-classifier"][..],
            "already has a component",
        ),
        (&["classifier", "New_One"], "lower-case letters and digits"),
        (&["classifier", "fn"], "reserved"),
        (&["nope", "other"], "invalid value 'nope'"),
        (
            &["blank", "other", "--model", "nope"],
            "no model named \"nope\"",
        ),
        (
            &["blank", "other", "--route", "/classify"],
            "route /classify/... is taken",
        ),
        (&["blank", "other", "--route", "/a/../b"], "a route is"),
        (&["blank", "text-prep"], "already exists"),
    ] {
        let out = new(app, args);
        assert!(!out.status.success(), "new {args:?} was taken");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(error.contains(says), "new {args:?}: {error}");
    }
    assert_eq!(std::fs::read(app.join("spin.toml")).unwrap(), manifest);
    assert_eq!(
        std::fs::read(app.join("functions/Cargo.toml")).unwrap(),
        workspace
    );
    assert!(!app.join("functions/other").exists());
}

/// This application as a user's checkout holds it: the manifest, the
/// functions' workspace and what it builds from; the models and the build
/// folder are this checkout's own (linked), so the build reuses its work.
fn application_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["functions", "wit", "crates/tract-prep"] {
        copy_dir(&root().join(folder), &dir.path().join(folder));
    }
    std::fs::copy(root().join("spin.toml"), dir.path().join("spin.toml")).unwrap();
    for linked in ["models", "target"] {
        std::os::unix::fs::symlink(root().join(linked), dir.path().join(linked)).unwrap();
    }
    dir
}

fn new(app: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasi-infer"))
        .current_dir(app)
        .arg("new")
        .args(args)
        .output()
        .expect("run wasi-infer new")
}

/// Cargo in the copy's `functions/` on `packages`, into this checkout's
/// `target/<target_dir>`, without the flags of this test run.
fn cargo(app: &Path, args: &[&str], target_dir: &str, packages: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(app.join("functions"))
        .args(args)
        .arg("--target-dir")
        .arg(root().join("target").join(target_dir));
    for package in packages {
        command.args(["-p", package]);
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    command.output().expect("run cargo")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
