//! The rest of Triton's protocol that its clients call, with tritonclient
//! (`tests/oip/extensions_check.py`): the model configuration, classification
//! and statistics extensions, compressed requests, the raw binary request and
//! a refused `sequence_id`, on the Fashion-MNIST CNN with and without a batch
//! dimension.

use std::path::Path;
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

#[test]
fn tritonclient_uses_configuration_classification_statistics_and_compression() {
    let repo = tempfile::tempdir().unwrap();
    write_cnn(&repo.path().join("batched"), -1);
    write_cnn(&repo.path().join("pinned"), 1);
    let server = Server::start(&[
        "--models",
        repo.path().to_str().unwrap(),
        "--backend",
        "tract",
    ]);
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
