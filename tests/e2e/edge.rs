//! The edge: the self-contained functions (tract compiled into the
//! component, no wasi-nn) on our host and on stock `wasmtime serve`,
//! pre-initialised components (`wasi-infer preinit`), and applications
//! shipped as one bundle (`wasi-infer bundle`, `serve --bundle`).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::classify::{check_predictions, reference};
use crate::conformance::{MIN_COSINE_BETWEEN_BACKENDS, classify_photos, cosine, embed_sentences};
use crate::server::{Server, photo, root, start_up_error};

/// The classifiers the self-contained build is made for.
const CLASSIFIERS: [&str; 2] = ["efficientnet-lite0", "fashion-mnist-cnn"];
const EMBEDDER: &str = "all-minilm-l6-v2";

/// The components these tests serve, pre-initialised once per test run.
struct Built {
    /// Self-contained, pre-initialised with `CLASSIFIERS`.
    classify: PathBuf,
    /// Self-contained, pre-initialised with `EMBEDDER`.
    embed: PathBuf,
    /// The wasi-nn builds, pre-initialised (metadata, labels, tokenizer).
    classify_wasi_nn: PathBuf,
    embed_wasi_nn: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = work_dir("components");
        let functions = root().join("target/functions");
        let self_contained = functions.join("self-contained");
        let wasi_nn = functions.join("wasm32-wasip2/release");
        Built {
            classify: preinit(
                &self_contained.join("image_classify.wasm"),
                &out.join("image_classify.sc.wasm"),
                &CLASSIFIERS,
            ),
            embed: preinit(
                &self_contained.join("text_embed.wasm"),
                &out.join("text_embed.sc.wasm"),
                &[EMBEDDER],
            ),
            classify_wasi_nn: preinit(
                &wasi_nn.join("image_classify.wasm"),
                &out.join("image_classify.nn.wasm"),
                &[],
            ),
            embed_wasi_nn: preinit(
                &wasi_nn.join("text_embed.wasm"),
                &out.join("text_embed.nn.wasm"),
                &[],
            ),
        }
    })
}

/// A fresh folder under target/test-edge/.
fn work_dir(name: &str) -> PathBuf {
    let dir = root().join("target/test-edge").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wasi_infer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wasi-infer"))
        .current_dir(root())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run wasi-infer")
}

fn preinit(input: &Path, output: &Path, models: &[&str]) -> PathBuf {
    let mut args = vec![
        "preinit".to_string(),
        input.display().to_string(),
        "-o".into(),
        output.display().to_string(),
    ];
    for model in models {
        args.extend(["--model".to_string(), model.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = wasi_infer(&args);
    assert!(
        out.status.success(),
        "wasi-infer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    output.to_path_buf()
}

/// A manifest serving `classify` at /classify and `embed` at /embed, with
/// the repository's models mounted; the wasi-nn builds also name their
/// models for the host to load.
fn manifest(dir: &Path, classify: &Path, embed: &Path, wasi_nn: bool) -> PathBuf {
    let models = root().join("models");
    let ai_models = |names: &[&str]| {
        if wasi_nn {
            format!("ai_models = {names:?}")
        } else {
            String::new()
        }
    };
    let text = format!(
        r#"spin_manifest_version = 2

[application]
name = "edge-test"

[[trigger.http]]
route = "/classify/..."
component = "image-classify"

[component.image-classify]
source = {classify:?}
files = [{{ source = {models:?}, destination = "/models" }}]
{classify_models}

[[trigger.http]]
route = "/embed/..."
component = "text-embed"

[component.text-embed]
source = {embed:?}
files = [{{ source = {models:?}, destination = "/models" }}]
{embed_models}
"#,
        classify_models = ai_models(&CLASSIFIERS),
        embed_models = ai_models(&[EMBEDDER]),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Each photo's top-1 on `model`, in photo order.
fn top_ones(server: &Server, model: &str) -> Vec<(String, u64, f64)> {
    let mut names: Vec<&str> = reference().keys().copied().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let reply = server.post(&format!("/classify/{model}"), &photo(name));
            assert_eq!(reply.status, 200, "{model} {name}: {}", reply.text);
            let json = reply.json();
            let top = &json["predictions"][0];
            (
                name.to_string(),
                top["index"].as_u64().unwrap(),
                top["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// tract and ONNX Runtime compute the same fp32 model with different
/// kernels: their logits differ by ~1e-5 (see conformance.rs), so a top-1
/// probability moves by far less than this. A different model, label file or
/// preprocessing moves it by tenths.
const MAX_PROBABILITY_SHIFT: f64 = 0.01;

fn assert_same_top_ones(what: &str, got: &[(String, u64, f64)], want: &[(String, u64, f64)]) {
    assert_eq!(got.len(), 6);
    for ((photo, index, p), (_, want_index, want_p)) in got.iter().zip(want) {
        assert_eq!(
            index, want_index,
            "{what}: {photo}: top-1 {index}, the wasi-nn build says {want_index}"
        );
        assert!(
            (p - want_p).abs() <= MAX_PROBABILITY_SHIFT,
            "{what}: {photo}: top-1 probability {p:.4}, the wasi-nn build {want_p:.4}"
        );
    }
}

/// The self-contained functions on our host: the reference photos as the
/// conformance test checks them, the same top-1 as the wasi-nn build on
/// every photo, and embeddings as close to the wasi-nn build's as two
/// backends must be. The pre-initialised wasi-nn builds answer exactly as the
/// plain ones.
#[test]
fn self_contained_and_preinitialised_functions_answer_as_the_wasi_nn_build() {
    let built = built();
    // One backend for both wasi-nn servers ("auto" may choose differently
    // in each), so that their answers are comparable exactly.
    let plain = Server::start(&["--backend", "onnxruntime"]);

    let dir = work_dir("self-contained");
    let spin = manifest(&dir, &built.classify, &built.embed, false);
    let models = root().join("models");
    let self_contained = Server::start(&[
        "--manifest",
        spin.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
    ]);
    let dir = work_dir("preinit-wasi-nn");
    let spin = manifest(&dir, &built.classify_wasi_nn, &built.embed_wasi_nn, true);
    let preinitialised = Server::start(&[
        "--manifest",
        spin.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--backend",
        "onnxruntime",
    ]);

    classify_photos(&self_contained, "self-contained", "efficientnet-lite0");
    for model in CLASSIFIERS {
        let want = top_ones(&plain, model);
        assert_same_top_ones(
            &format!("{model} self-contained"),
            &top_ones(&self_contained, model),
            &want,
        );
        let pre = top_ones(&preinitialised, model);
        assert_eq!(pre, want, "{model}: pre-initialised wasi-nn build");
    }
    // A model the snapshot does not hold is read from /models on request.
    let reply = self_contained.post("/classify/efficientnet-lite0-int8", &photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    check_predictions(&reply.json(), "efficientnet-lite0-int8", 5);

    let sc = embed_sentences(&self_contained, "self-contained (tract)");
    let nn = embed_sentences(&plain, "wasi-nn");
    for (i, (a, b)) in sc.iter().zip(&nn).enumerate() {
        let cos = cosine(a, b);
        assert!(
            cos >= MIN_COSINE_BETWEEN_BACKENDS,
            "sentence {i}: self-contained and wasi-nn embeddings have cosine {cos:.4}"
        );
    }
    // The same tokens into the same loaded model: the same numbers.
    assert_eq!(
        embed_sentences(&preinitialised, "wasi-nn, pre-initialised"),
        nn
    );
    // Errors are the function's, as ever: an unknown model is a 404.
    for server in [&self_contained, &preinitialised] {
        let reply = server.post("/classify/no-such-model", &photo("coffee.png"));
        reply.assert_error(404);
        let reply = server.post("/embed/no-such-model", br#"{"input": "x"}"#);
        reply.assert_error(404);
    }
}

/// The wasmtime CLI tests/run.sh installs (`host/scripts/fetch-wasmtime-cli.sh`).
fn wasmtime_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("WASI_INFER_TEST_WASMTIME") {
        return PathBuf::from(path);
    }
    let path = root().join(".deps/wasmtime/wasmtime");
    assert!(
        path.is_file(),
        "the wasmtime CLI is not installed: run host/scripts/fetch-wasmtime-cli.sh (tests/run.sh \
         does), or set WASI_INFER_TEST_WASMTIME"
    );
    path
}

/// `wasmtime serve`, killed on drop.
struct StockHost {
    child: Child,
    base: String,
}

impl StockHost {
    /// Serves `component` with nothing but WASI (`-Scli`: no wasi-nn) and
    /// the models at /models.
    fn start(component: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let models = format!("{}::/models", root().join("models").display());
        let mut child = Command::new(wasmtime_cli())
            .args(["serve", "-Scli", "--addr", &address, "--dir", &models])
            .arg(component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmtime serve");
        // It compiles the component before it listens.
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut log = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut log);
                panic!("wasmtime serve exited ({status}): {log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "wasmtime serve did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            base: format!("http://{address}"),
        }
    }

    fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut response = agent
            .post(&format!("{}{path}", self.base))
            .send(body)
            .expect("a response");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Drop for StockHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The self-contained, pre-initialised image-classify on stock `wasmtime
/// serve`, which has no wasi-nn here: the six photos get the same top-1 as
/// from our host's wasi-nn build, on both classifiers.
#[test]
fn self_contained_classifier_runs_on_stock_wasmtime_serve() {
    let built = built();
    let plain = Server::start(&[]);
    let stock = StockHost::start(&built.classify);
    let mut names: Vec<&str> = reference().keys().copied().collect();
    names.sort();
    for model in CLASSIFIERS {
        let want = top_ones(&plain, model);
        let got: Vec<(String, u64, f64)> = names
            .iter()
            .map(|name| {
                let (status, json) = stock.post(&format!("/classify/{model}"), &photo(name));
                assert_eq!(status, 200, "{model} {name} on wasmtime serve: {json}");
                assert_eq!(json["model"], model, "{json}");
                let top = &json["predictions"][0];
                (
                    name.to_string(),
                    top["index"].as_u64().unwrap(),
                    top["score"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_same_top_ones(&format!("{model} on wasmtime serve"), &got, &want);
    }
    let (status, json) = stock.post("/classify/no-such-model", &photo("coffee.png"));
    assert_eq!(status, 404, "{json}");
}

/// The example application from one tar with its components precompiled:
/// served without compiling, and answering as ever.
#[test]
fn the_example_application_serves_from_a_precompiled_bundle() {
    let dir = work_dir("bundle-tar");
    let tar = dir.join("app.tar");
    let out = wasi_infer(&["bundle", "--precompile", "-o", tar.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&["--bundle", tar.to_str().unwrap(), "--no-cache"]);
    let log = server.log();
    for component in ["image-classify", "text-embed", "open-inference"] {
        assert!(
            log.lines().any(|l| l.contains("component ready")
                && l.contains(&format!("component={component}"))
                && l.contains("precompiled in the bundle")),
            "{component} was not loaded from the bundle's precompiled code: {log}"
        );
    }
    let reply = server.post("/classify/efficientnet-lite0", &photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        check_predictions(&reply.json(), "efficientnet-lite0", 5)[0],
        967
    );
    let reply = server.post("/embed/all-minilm-l6-v2", br#"{"input": "hello"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// A folder bundle of the example application, as `wasi-infer bundle` writes it.
fn folder_bundle(name: &str, precompile: bool) -> PathBuf {
    let dir = work_dir(name).join("app.oci");
    let mut args = vec!["bundle", "-o", dir.to_str().unwrap()];
    if precompile {
        args.push("--precompile");
    }
    let out = wasi_infer(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(bundle: &Path, digest: &str) -> PathBuf {
    bundle
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// One changed byte in any layer, a layer missing, or a tar entry outside
/// the layout: the bundle is refused whole, saying what and why, and the
/// server does not start.
#[test]
fn a_tampered_bundle_is_refused() {
    let bundle = folder_bundle("bundle-tampered", false);
    let index = read_json(&bundle.join("index.json"));
    let image = read_json(&blob(
        &bundle,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layer = image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["annotations"]["org.opencontainers.image.title"]
                == "models/efficientnet-lite0/labels.txt"
        })
        .expect("the labels are a layer");
    let path = blob(&bundle, layer["digest"].as_str().unwrap());
    let original = std::fs::read(&path).unwrap();
    let mut tampered = original.clone();
    tampered[0] ^= 1;
    std::fs::write(&path, &tampered).unwrap();
    let error = start_up_error(&["--bundle", bundle.to_str().unwrap()], &[]);
    assert!(
        error.contains("models/efficientnet-lite0/labels.txt does not match its digest")
            && error.contains("nothing from it was run"),
        "{error}"
    );

    std::fs::remove_file(&path).unwrap();
    let error = start_up_error(&["--bundle", bundle.to_str().unwrap()], &[]);
    assert!(error.contains("is missing"), "{error}");
    std::fs::write(&path, &original).unwrap();

    // A tar whose entry would land outside the unpacked folder.
    let tar_path = bundle.with_extension("tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    let mut header = tar::Header::new_old();
    // Written raw: the tar crate itself refuses to write such a name.
    let name = b"blobs/sha256/../../evil";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(2);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, &b"{}"[..]).unwrap();
    builder.finish().unwrap();
    drop(builder);
    let error = start_up_error(&["--bundle", tar_path.to_str().unwrap()], &[]);
    assert!(error.contains("not part of an OCI image layout"), "{error}");
}

/// Precompiled code for another engine or CPU is never run: the component
/// is compiled here instead, with a warning, and serves.
#[test]
fn precompiled_code_for_another_engine_is_compiled_again() {
    let bundle = folder_bundle("bundle-other-engine", true);
    let index_path = bundle.join("index.json");
    let mut index = read_json(&index_path);
    let image_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut image = read_json(&blob(&bundle, &image_digest));
    let mut changed = 0;
    for layer in image["layers"].as_array_mut().unwrap() {
        if layer["mediaType"] == "application/vnd.wasi-infer.precompiled.v1" {
            layer["annotations"]["dev.wasi-infer.precompiled.engine"] = "0123456789abcdef".into();
            layer["annotations"]["dev.wasi-infer.precompiled.host"] = "another host".into();
            changed += 1;
        }
    }
    // One per component of spin.toml: image-classify, text-embed, vad, ocr,
    // open-inference.
    assert_eq!(changed, 5);
    // A consistent bundle: the new image manifest under its own digest.
    let bytes = serde_json::to_vec(&image).unwrap();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let digest = format!("sha256:{digest}");
    std::fs::write(blob(&bundle, &digest), &bytes).unwrap();
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let server = Server::start(&["--bundle", bundle.to_str().unwrap()]);
    let log = server.log();
    assert!(
        log.contains("precompiled code is for another engine or CPU (another host"),
        "{log}"
    );
    assert!(!log.contains("precompiled in the bundle"), "{log}");
    let reply = server.post("/classify/efficientnet-lite0", &photo("coffee.png"));
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// `preinit` says what is wrong: a component that has no initialiser, a
/// repository that is not there, a model the function cannot prepare.
#[test]
fn preinit_refuses_what_it_cannot_do() {
    let dir = work_dir("preinit-errors");
    let functions = root().join("target/functions/wasm32-wasip2/release");
    let out_path = dir.join("out.wasm");
    let out = out_path.to_str().unwrap();

    let open_inference = functions.join("open_inference.wasm");
    let run = wasi_infer(&["preinit", open_inference.to_str().unwrap(), "-o", out]);
    let error = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(error.contains("exports no `wizer-initialize`"), "{error}");

    let classify = functions.join("image_classify.wasm");
    let classify = classify.to_str().unwrap();
    let run = wasi_infer(&[
        "preinit",
        classify,
        "-o",
        out,
        "--models",
        "/no/such/folder",
    ]);
    let error = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(error.contains("is not a folder"), "{error}");

    let run = wasi_infer(&["preinit", classify, "-o", out, "--model", "no-such-model"]);
    let error = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        error.contains("no-such-model") && error.contains("pre-initialisation failed"),
        "{error}"
    );
    // A text model only: nothing for a classifier to prepare.
    let run = wasi_infer(&["preinit", classify, "-o", out, "--model", EMBEDDER]);
    let error = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(error.contains("none of the models"), "{error}");
    assert!(
        !out_path.exists(),
        "a failed pre-initialisation wrote a component"
    );
}
