//! `wasi-infer eval` as a user runs it: the real binary against the real
//! server (the example app, which serves the Fashion-MNIST CNN), on the first
//! 300 images of the Fashion-MNIST test split, by both protocols; its JSON
//! report recomputed independently with scikit-learn
//! (`tests/eval/check_report.py`, in the test venv), its PNG and HTML looked
//! at, and its errors provoked.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::cli::wasi_infer;
use crate::open_inference::test_python;
use crate::server::{Server, root};

const DATASET: &str = "tests/data/fashion-mnist";
const ITEMS: &str = "300";

/// Runs `tests/eval/check_report.py` on a report (and PNGs); panics with
/// its output if a figure differs from scikit-learn's.
fn check_with_scikit_learn(report: &Path, pngs: &[&Path]) {
    let python = test_python();
    let mut command = Command::new(&python);
    command
        .current_dir(root())
        .arg(root().join("tests/eval/check_report.py"))
        .arg(report);
    for png in pngs {
        command.arg("--png").arg(png);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "tests/eval/check_report.py failed ({}): {stdout}\n{stderr}\n\
         (scikit-learn comes from tests/oip/requirements.txt: tests/run.sh installs it)",
        output.status
    );
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Each item's predicted class, by id.
fn predictions(report: &Value) -> HashMap<String, u64> {
    report["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["pred"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Both protocols, scored as scikit-learn scores them, agreeing with each
/// other item by item.
#[test]
fn eval_scores_both_protocols_as_scikit_learn_does() {
    let server = Server::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for protocol in ["classify", "oip"] {
        let file = |ext: &str| out.path().join(format!("{protocol}.{ext}"));
        let (json, png, html) = (file("json"), file("png"), file("html"));
        let (ok, stdout, stderr) = wasi_infer(&[
            "eval",
            "--url",
            &server.base,
            "--model",
            "fashion-mnist-cnn",
            "--dataset",
            DATASET,
            "--limit",
            ITEMS,
            "--protocol",
            protocol,
            "-c",
            "4",
            "--json",
            json.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ]);
        assert!(
            ok,
            "{protocol}: {stderr}\n{stdout}\nserver log:\n{}",
            server.log()
        );
        println!("{protocol}:\n{stdout}");
        assert!(
            stdout.contains("accuracy") && stdout.contains("Ankle boot"),
            "{stdout}"
        );
        check_with_scikit_learn(&json, &[&png]);

        let report = read_json(&json);
        assert_eq!(report["items"], 300, "{protocol}");
        assert_eq!(report["failed"], 0, "{protocol}: {}", report["failures"]);
        assert_eq!(report["protocol"], protocol);
        assert_eq!(report["model"], "fashion-mnist-cnn");
        assert_eq!(report["per_class"][9]["label"], "Ankle boot");
        // The model's accuracy on the whole test split is 89% (conformance.rs);
        // chance is 10%. 300 images leave room for the sample's luck, not for
        // a broken pipeline.
        let accuracy = report["accuracy"].as_f64().unwrap();
        assert!(accuracy > 0.7, "{protocol}: accuracy {accuracy}");
        // The server told its backend.
        assert!(
            report["backend"].as_str().is_some_and(|b| !b.is_empty()),
            "{report}"
        );
        println!(
            "{protocol}: accuracy {accuracy:.4}, top-5 {:.4}, p50 {:.2} ms, {:.1} req/s",
            report["top5_accuracy"].as_f64().unwrap(),
            report["latency_ms"]["p50"].as_f64().unwrap(),
            report["throughput_rps"].as_f64().unwrap()
        );

        let page = std::fs::read_to_string(&html).unwrap();
        assert!(
            page.contains("data:image/png;base64,iVBORw0KGgo"),
            "the PNG is embedded"
        );
        for external in ["src=\"http", "href=\"http", "<link", "<script"] {
            assert!(
                !page.contains(external),
                "{protocol}: the page loads {external}"
            );
        }
        assert!(page.contains("T-shirt/top") && page.contains("weighted avg"));
        reports.push(report);
    }

    // The same preprocessing on both sides (the function's image-prep,
    // here and in the sandbox), the same model and backend in the same
    // server: the same tensor, the same logits, the same class, every time.
    let (classify, oip) = (predictions(&reports[0]), predictions(&reports[1]));
    assert_eq!(classify.len(), 300);
    let differing: Vec<&String> = classify
        .iter()
        .filter(|(id, pred)| oip.get(*id) != Some(pred))
        .map(|(id, _)| id)
        .collect();
    assert!(
        differing.is_empty(),
        "classify and oip disagree on {} items: {differing:?}",
        differing.len()
    );
    assert_eq!(reports[0]["accuracy"], reports[1]["accuracy"]);
}

/// fp32 against int8 on the same items; the comparison recomputed; the
/// evaluation written into a model card without touching the rest of it.
#[test]
fn eval_compares_deployments_and_writes_a_model_card() {
    let server = Server::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let (json, png, html) = (
        out.path().join("compare.json"),
        out.path().join("cm.png"),
        out.path().join("compare.html"),
    );
    let card = out.path().join("README.md");
    // A card of its own (the models' READMEs may hold a section already).
    let original =
        "# Fashion-MNIST CNN\n\nA card without an evaluation yet.\n\n## Licence\n\nMIT.\n";
    std::fs::write(&card, original).unwrap();

    let args = |card_path: &Path| {
        vec![
            "eval".to_string(),
            "--url".into(),
            server.base.clone(),
            "--compare".into(),
            "--model".into(),
            "fashion-mnist-cnn".into(),
            "--model".into(),
            "fashion-mnist-cnn-int8".into(),
            "--dataset".into(),
            DATASET.into(),
            "--limit".into(),
            ITEMS.into(),
            "--protocol".into(),
            "oip".into(),
            "--json".into(),
            json.to_str().unwrap().into(),
            "--png".into(),
            png.to_str().unwrap().into(),
            "--html".into(),
            html.to_str().unwrap().into(),
            "--card".into(),
            card_path.to_str().unwrap().into(),
        ]
    };
    let run = |card_path: &Path| {
        let args = args(card_path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = wasi_infer(&args);
        assert!(ok, "{stderr}\n{stdout}\nserver log:\n{}", server.log());
        stdout
    };
    let stdout = run(&card);
    println!("{stdout}");
    assert!(stdout.contains("comparison"), "{stdout}");
    let second_png = out.path().join("cm-2.png");
    check_with_scikit_learn(&json, &[&png, &second_png]);

    let report = read_json(&json);
    let deployments = report["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2);
    for (deployment, model) in deployments
        .iter()
        .zip(["fashion-mnist-cnn", "fashion-mnist-cnn-int8"])
    {
        assert_eq!(deployment["model"], model);
        assert_eq!(deployment["url"], server.base);
        // Its size from models/<model>/model.toml's file.
        let size = std::fs::metadata(root().join("models").join(model).join("model.onnx"))
            .unwrap()
            .len();
        assert_eq!(deployment["model_bytes"], size, "{model}");
    }
    let rows = report["comparison"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["agreement"], 1.0);
    // int8 static quantisation of this model agrees with fp32 on about 99%
    // of the test images (89.12% and 89.06% accuracy, conformance.rs).
    let agreement = rows[1]["agreement"].as_f64().unwrap();
    assert!(agreement > 0.9, "fp32 and int8 agree on {agreement}");
    println!(
        "int8 against fp32: agreement {agreement:.4}, accuracy diff {:+.4}, p50 x{:.2}, req/s x{:.2}",
        rows[1]["accuracy_diff"].as_f64().unwrap(),
        rows[1]["p50_ratio"].as_f64().unwrap(),
        rows[1]["throughput_ratio"].as_f64().unwrap()
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>Comparison</h2>"));
    assert_eq!(page.matches("data:image/png;base64,").count(), 2);

    // The card: the original text, then the section; a second run replaces
    // the section and leaves the rest alone.
    let begin = "<!-- wasi-infer eval: begin -->";
    let end = "<!-- wasi-infer eval: end -->";
    let written = std::fs::read_to_string(&card).unwrap();
    assert!(written.starts_with(original), "the card's text is kept");
    let section = &written[written.find(begin).unwrap()..];
    assert!(section.trim_end().ends_with(end), "{section}");
    for want in [
        "wasi-infer eval --url",
        "300 items",
        "| 9 Ankle boot |",
        "](cm.png)",
        "| fashion-mnist-cnn-int8 |",
    ] {
        assert!(
            section.contains(want),
            "{want} missing from the card's section:\n{section}"
        );
    }
    let edited =
        written.replace(begin, &format!("Text added by hand.\n\n{begin}")) + "\n## Added after\n";
    std::fs::write(&card, &edited).unwrap();
    run(&card);
    let again = std::fs::read_to_string(&card).unwrap();
    assert_eq!(again.matches(begin).count(), 1);
    assert!(
        again.starts_with(&format!("{original}\nText added by hand.")),
        "{again}"
    );
    assert!(again.ends_with("\n## Added after\n"), "{again}");
}

/// What stops an evaluation stops it before it starts, non-zero, naming the
/// problem.
#[test]
fn eval_errors_name_the_problem() {
    let eval = |url: &str, model: &str, dataset: &str, protocol: &str| {
        let (ok, stdout, stderr) = wasi_infer(&[
            "eval",
            "--url",
            url,
            "--model",
            model,
            "--dataset",
            dataset,
            "--protocol",
            protocol,
            "--limit",
            "5",
        ]);
        assert!(!ok, "expected a failure: {stdout}");
        assert!(!stdout.contains("accuracy"), "no report: {stdout}");
        stderr
    };

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    for protocol in ["classify", "oip"] {
        let e = eval(&nowhere, "fashion-mnist-cnn", DATASET, protocol);
        assert!(
            e.contains(&format!("cannot reach the server at {nowhere}")),
            "{e}"
        );
    }

    // A dataset that is missing, or corrupt, is named before any server is
    // contacted (the URL here answers nothing).
    let e = eval(
        &nowhere,
        "fashion-mnist-cnn",
        "tests/data/no-such-set",
        "classify",
    );
    assert!(
        e.contains("tests/data/no-such-set: no such file or folder"),
        "{e}"
    );
    let broken = tempfile::tempdir().unwrap();
    let images = std::fs::read(root().join(DATASET).join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(broken.path().join("t10k-images-idx3-ubyte.gz"), images).unwrap();
    // Labels for 3 images, where there are 10,000.
    std::fs::write(
        broken.path().join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3],
    )
    .unwrap();
    let e = eval(
        &nowhere,
        "fashion-mnist-cnn",
        broken.path().to_str().unwrap(),
        "classify",
    );
    assert!(
        e.contains("t10k-labels-idx1-ubyte: holds 3 labels, but") && e.contains("10000 images"),
        "{e}"
    );

    // A model the server does not have, by each protocol's own check.
    let server = Server::start(&[]);
    for (protocol, check) in [
        ("classify", "POST /classify/no-such-model"),
        ("oip", "GET /v2/models/no-such-model/ready"),
    ] {
        let e = eval(&server.base, "no-such-model", DATASET, protocol);
        assert!(
            e.contains("has no model \"no-such-model\"") && e.contains(check) && e.contains("404"),
            "{protocol}: {e}"
        );
    }
    // Several deployments without --compare.
    let (ok, _, e) = wasi_infer(&[
        "eval",
        "--url",
        &server.base,
        "--model",
        "a",
        "--model",
        "b",
        "--dataset",
        DATASET,
    ]);
    assert!(!ok && e.contains("--compare"), "{e}");
}
