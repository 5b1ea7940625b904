//! A model made slow on purpose, for the deadline and cancellation tests, and
//! the model repository of `tests/fixtures/slow.toml`.
//!
//! `slow-matmul` multiplies its one input `x`, f32 [n, n], by itself
//! [`MATMULS`] times in a chain: about 2n³ x [`MATMULS`] floating-point
//! operations (0.5 TFLOP at n = 1024, 4.4 TFLOP at n = 2048: seconds to
//! minutes on any backend at the larger), and every backend can stop between
//! two of its nodes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost::Message;
use tract_onnx::pb;

use crate::server::root;
use crate::tensors::{onnx_model, value_info};

/// MatMuls in the chain: at n = 1024, 2 GFLOP each; at n = 2048, 17.
pub const MATMULS: usize = 256;

/// The models `tests/fixtures/slow.toml` may load: the repository's, and
/// `slow-matmul`. Made once per test run, under `target/`.
pub fn slow_models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/test-models/slow");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["efficientnet-lite0-int8", "all-minilm-l6-v2"] {
            let link = dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(root().join("models").join(name), &link).unwrap();
            }
        }
        write_slow_model(&dir.join("slow-matmul"));
        dir
    })
}

fn write_slow_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    // f32 [n, n]
    let square = |name: &str| value_info(name, 1, &["n", "n"]);
    let node = |i: usize| pb::NodeProto {
        name: format!("matmul_{i}"),
        op_type: "MatMul".into(),
        input: vec![
            if i == 0 {
                "x".into()
            } else {
                format!("h{}", i - 1)
            },
            "x".into(),
        ],
        output: vec![if i + 1 == MATMULS {
            "y".into()
        } else {
            format!("h{i}")
        }],
        ..Default::default()
    };
    let model = onnx_model(pb::GraphProto {
        name: "slow-matmul".into(),
        node: (0..MATMULS).map(node).collect(),
        input: vec![square("x")],
        output: vec![square("y")],
        ..Default::default()
    });
    std::fs::write(dir.join("model.onnx"), model.encode_to_vec()).unwrap();
    // Bounds that let the slow request through: that is its purpose.
    std::fs::write(
        dir.join("model.toml"),
        "description = \"x multiplied by itself, many times: slow on purpose\"\n\
         format = \"onnx\"\nfile = \"model.onnx\"\n\
         [limits]\nmax_batch = 4096\nmax_elements = 16777216\n\
         [[inputs]]\nname = \"x\"\ntype = \"f32\"\nshape = [-1, -1]\n\
         [[outputs]]\nname = \"y\"\ntype = \"f32\"\nshape = [-1, -1]\n",
    )
    .unwrap();
}
