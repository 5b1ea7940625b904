//! The rest of Triton's protocol that its clients call, with tritonclient
//! (`tests/oip/extensions_check.py`): the model configuration, classification
//! and statistics extensions, compressed requests, the raw binary request and
//! a refused `sequence_id`, on the Fashion-MNIST CNN with and without a batch
//! dimension; then Triton's `perf_analyzer`, which needs the configuration
//! before it starts and reads the statistics when it ends.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::open_inference::test_python;
use crate::server::{Server, root};

/// The CNN at `dir`, its batch dimension `batch` (-1: dynamic, a batch
/// dimension; 1: pinned, none), with its labels and image layout.
fn write_cnn(dir: &Path, batch: i64) {
    let source = root().join("models/fashion-mnist-cnn");
    std::fs::create_dir_all(dir).unwrap();
    for file in ["model.onnx", "labels.txt"] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let toml = format!(
        "format = \"onnx\"\nfile = \"model.onnx\"\nlabels = \"labels.txt\"\n\
         [[inputs]]\nname = \"input\"\ntype = \"f32\"\nshape = [{batch}, 1, 28, 28]\n\
         [[outputs]]\nname = \"logits\"\ntype = \"f32\"\nshape = [{batch}, 10]\n\
         [preprocess]\nlayout = \"nchw\"\n"
    );
    std::fs::write(dir.join("model.toml"), toml).unwrap();
}

/// A server of the CNN as `batched` and as `pinned` (on tract: the
/// extensions are the function's and the host's, the same on every backend).
fn cnn_server() -> (tempfile::TempDir, Server) {
    let repo = tempfile::tempdir().unwrap();
    write_cnn(&repo.path().join("batched"), -1);
    write_cnn(&repo.path().join("pinned"), 1);
    let server = Server::start(&[
        "--models",
        repo.path().to_str().unwrap(),
        "--backend",
        "tract",
    ]);
    (repo, server)
}

#[test]
fn tritonclient_uses_configuration_classification_statistics_and_compression() {
    let (_repo, server) = cnn_server();
    let output = Command::new(test_python())
        .current_dir(root())
        .arg(root().join("tests/oip/extensions_check.py"))
        .arg(server.address())
        .output()
        .expect("run tests/oip/extensions_check.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "tests/oip/extensions_check.py failed:\n{stdout}\n{}\nthe server's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    // Nothing it sent hurt the server.
    assert_eq!(server.get("/v2/health/ready").status, 200);
}

/// perf_analyzer as tests/run.sh fetches it (tests/oip/fetch-perf-analyzer.sh).
fn perf_analyzer() -> PathBuf {
    let path = std::env::var_os("WASI_INFER_TEST_PERF_ANALYZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/perf-analyzer/perf_analyzer"));
    assert!(
        path.exists(),
        "{} is missing: run tests/run.sh, or tests/oip/fetch-perf-analyzer.sh",
        path.display()
    );
    path
}

/// A figure perf_analyzer prints as `<name>: <number>` in its report's
/// server section.
fn server_figure(report: &str, name: &str) -> u64 {
    let server = report
        .split_once("Server:")
        .unwrap_or_else(|| panic!("no Server: section in perf_analyzer's report:\n{report}"))
        .1;
    server
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{name}: ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in perf_analyzer's report:\n{report}"))
}

#[test]
fn perf_analyzer_measures_batched_and_unbatched_models_with_the_servers_statistics() {
    let (_repo, server) = cnn_server();
    let binary = perf_analyzer();
    let lib = binary.parent().unwrap().join("lib");
    for (model, batch) in [("batched", 4u64), ("pinned", 1)] {
        // A fixed number of requests per window, so that the run's length
        // does not depend on the machine's speed.
        let output = Command::new(&binary)
            .env("LD_LIBRARY_PATH", &lib)
            .args(["-m", model, "-u", server.address(), "-i", "http"])
            .args(["-b", &batch.to_string(), "--concurrency-range", "2"])
            .args(["--measurement-mode", "count_windows"])
            .args(["--measurement-request-count", "50"])
            // What is checked is that the server counts what the client
            // sent, not how fast: on a shared machine, beside other tests,
            // latency moves by more than perf_analyzer's default 10% from
            // one window to the next, and it would give up on "stability".
            .args(["--stability-percentage", "100", "--max-trials", "20"])
            .output()
            .expect("run perf_analyzer");
        let report = String::from_utf8_lossy(&output.stdout);
        println!("{report}");
        assert!(
            output.status.success(),
            "perf_analyzer -m {model} failed ({}):\n{report}\n{}\nthe server's log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            server.log()
        );
        let executions = server_figure(&report, "Execution count");
        let inferences = server_figure(&report, "Inference count");
        let succeeded = server_figure(&report, "Successful request count");
        assert!(
            executions >= 50,
            "{model}: {executions} executions\n{report}"
        );
        assert_eq!(inferences, executions * batch, "{model}\n{report}");
        assert_eq!(succeeded, executions, "{model}\n{report}");
    }
}
