//! Every tensor type wasi-nn names, in and out, with dynamic dimensions, on
//! every backend; and clear errors for a wrong type or shape. The model is an
//! ONNX graph made here: one `Identity` per type, each `[batch, n]`.

use prost::Message;
use tract_onnx::pb;
use wasi_infer::nn::tensor::copy_named;
use wasi_infer::nn::{BackendKind, LoadedModel};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;

/// wasi-nn's types, their ONNX type codes and element sizes.
const TYPES: [(&str, TensorType, i32, usize); 7] = [
    ("f16", TensorType::Fp16, 10, 2),
    ("bf16", TensorType::Bf16, 16, 2),
    ("f32", TensorType::Fp32, 1, 4),
    ("f64", TensorType::Fp64, 11, 8),
    ("u8", TensorType::U8, 2, 1),
    ("i32", TensorType::I32, 6, 4),
    ("i64", TensorType::I64, 7, 8),
];

/// An ONNX model (opset 14) of `graph`.
pub fn onnx_model(graph: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        producer_name: "wasi-infer tests".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 14,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// An ONNX tensor `name` of element type `code`, with the named dynamic
/// dimensions `dims`.
pub fn value_info(name: &str, code: i32, dims: &[&str]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = |param: &str| Dimension {
        value: Some(Value::DimParam(param.into())),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: code,
                shape: Some(pb::TensorShapeProto {
                    dim: dims.iter().map(|d| dim(d)).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model directory with an `Identity` from `in_<type>` to `out_<type>` for each type.
pub fn identity_model(types: &[&str]) -> tempfile::TempDir {
    let chosen: Vec<_> = TYPES.iter().filter(|t| types.contains(&t.0)).collect();
    let graph = pb::GraphProto {
        name: "identities".into(),
        node: chosen
            .iter()
            .map(|(ty, ..)| pb::NodeProto {
                name: format!("identity_{ty}"),
                op_type: "Identity".into(),
                input: vec![format!("in_{ty}")],
                output: vec![format!("out_{ty}")],
                ..Default::default()
            })
            .collect(),
        input: chosen
            .iter()
            .map(|(ty, _, code, _)| value_info(&format!("in_{ty}"), *code, &["batch", "n"]))
            .collect(),
        output: chosen
            .iter()
            .map(|(ty, _, code, _)| value_info(&format!("out_{ty}"), *code, &["batch", "n"]))
            .collect(),
        ..Default::default()
    };
    let model = onnx_model(graph);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.onnx"), model.encode_to_vec()).unwrap();
    let mut toml = String::from("format = \"onnx\"\nfile = \"model.onnx\"\n");
    for (what, prefix) in [("inputs", "in"), ("outputs", "out")] {
        for (ty, ..) in &chosen {
            toml += &format!(
                "[[{what}]]\nname = \"{prefix}_{ty}\"\ntype = \"{ty}\"\nshape = [-1, -1]\n"
            );
        }
    }
    std::fs::write(dir.path().join("model.toml"), toml).unwrap();
    dir
}

/// Distinct bytes for a `[batch, n]` tensor of each type (valid numbers for all).
fn inputs(types: &[&str], batch: u32, n: u32) -> Vec<NamedTensor> {
    TYPES
        .iter()
        .filter(|t| types.contains(&t.0))
        .map(|&(ty, wasi, _, size)| {
            let count = (batch * n) as usize;
            let data: Vec<u8> = match ty {
                // 1.0, 2.0, ... in each encoding, so every value is a number.
                "f16" => (0..count)
                    .flat_map(|i| half::f16::from_f32(i as f32 + 1.0).to_le_bytes())
                    .collect(),
                "bf16" => (0..count)
                    .flat_map(|i| half::bf16::from_f32(i as f32 + 1.0).to_le_bytes())
                    .collect(),
                "f32" => (0..count)
                    .flat_map(|i| (i as f32 + 0.5).to_le_bytes())
                    .collect(),
                "f64" => (0..count)
                    .flat_map(|i| (i as f64 + 0.25).to_le_bytes())
                    .collect(),
                "u8" => (0..count).map(|i| (i * 7 % 256) as u8).collect(),
                "i32" => (0..count)
                    .flat_map(|i| (i as i32 * -3).to_le_bytes())
                    .collect(),
                // Within i32's range: OpenVINO's CPU plugin computes i64 as i32
                // (larger values are refused, see below).
                "i64" => (0..count)
                    .flat_map(|i| (i as i64 * -200_000_033).to_le_bytes())
                    .collect(),
                _ => unreachable!(),
            };
            assert_eq!(data.len(), count * size);
            NamedTensor {
                name: format!("in_{ty}"),
                tensor: Tensor::new(vec![batch, n], wasi, data),
            }
        })
        .collect()
}

fn round_trip(model: &LoadedModel, types: &[&str], backend: BackendKind) {
    // Two shapes: the dimensions are dynamic, on every backend.
    for (batch, n) in [(1, 3), (2, 5)] {
        let given = inputs(types, batch, n);
        let outputs = model
            .run(copy_named(&given))
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(outputs.len(), given.len(), "{backend}");
        for input in &given {
            let ty = &input.name[3..];
            let output = outputs
                .iter()
                .find(|o| o.name == format!("out_{ty}"))
                .unwrap_or_else(|| panic!("{backend}: no out_{ty}"));
            assert_eq!(output.tensor.ty, input.tensor.ty, "{backend} {ty}");
            assert_eq!(
                output.tensor.dimensions, input.tensor.dimensions,
                "{backend} {ty}"
            );
            assert_eq!(
                output.tensor.data, input.tensor.data,
                "{backend} {ty}: values changed"
            );
        }
    }
}

#[test]
fn every_tensor_type_in_and_out_with_dynamic_dimensions() {
    let all: Vec<&str> = TYPES.iter().map(|t| t.0).collect();
    let all_but_bf16: Vec<&str> = all.iter().copied().filter(|t| *t != "bf16").collect();
    let full = identity_model(&all);
    let no_bf16 = identity_model(&all_but_bf16);

    for backend in [BackendKind::OnnxRuntime, BackendKind::OpenVino] {
        let model = LoadedModel::load("identities", full.path(), Some(backend))
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        let interface = &model.interface().inputs;
        assert_eq!(interface.len(), 7, "{backend}");
        assert_eq!(interface[0].shape, Some(vec![-1, -1]), "{backend}");
        round_trip(&model, &all, backend);
    }

    // OpenVINO's CPU plugin would wrap i64 values beyond i32: refused, not wrong.
    let model =
        LoadedModel::load("identities", no_bf16.path(), Some(BackendKind::OpenVino)).unwrap();
    let mut big = inputs(&all_but_bf16, 1, 2);
    let i64_input = big.iter_mut().find(|t| t.name == "in_i64").unwrap();
    i64_input.tensor.data[8..16].copy_from_slice(&(1i64 << 40).to_le_bytes());
    let message = chain(&model.run(big).err().expect("i64 beyond i32 on OpenVINO"));
    assert!(message.contains("1099511627776"), "{message}");

    // tract has no bf16: a model with it is refused at load, with a reason.
    let error = LoadedModel::load("identities", full.path(), Some(BackendKind::Tract))
        .err()
        .expect("tract cannot load bf16")
        .to_string();
    assert!(error.contains("bf16") && error.contains("tract"), "{error}");
    let model = LoadedModel::load("identities", no_bf16.path(), Some(BackendKind::Tract)).unwrap();
    round_trip(&model, &all_but_bf16, BackendKind::Tract);
}

#[test]
fn a_wrong_type_or_shape_is_a_clear_error_on_every_backend() {
    let dir = identity_model(&["f16", "f32"]);
    for backend in BackendKind::ALL {
        let model = LoadedModel::load("identities", dir.path(), Some(backend)).unwrap();
        let good = inputs(&["f16", "f32"], 1, 4);
        let error = |inputs: Vec<NamedTensor>| {
            let error = model
                .run(inputs)
                .err()
                .unwrap_or_else(|| panic!("{backend}: expected an error"));
            chain(&error)
        };

        // f32 data where the model takes f16.
        let mut wrong_type = copy_named(&good);
        wrong_type[0].tensor = Tensor::new(vec![1, 2], TensorType::Fp32, vec![0; 8]);
        let message = error(wrong_type);
        assert!(
            message.contains("f32") && message.contains("f16"),
            "{backend}: {message}"
        );

        // A rank the model does not take.
        let mut wrong_rank = copy_named(&good);
        wrong_rank[1].tensor = Tensor::new(vec![4], TensorType::Fp32, vec![0; 16]);
        let message = error(wrong_rank);
        assert!(message.contains("[?, ?]"), "{backend}: {message}");

        // Fewer bytes than the shape needs.
        let mut short = copy_named(&good);
        short[1].tensor = Tensor::new(vec![1, 4], TensorType::Fp32, vec![0; 15]);
        let message = error(short);
        assert!(message.contains("15 bytes"), "{backend}: {message}");

        // A missing input, an unknown one.
        let message = error(copy_named(&good[..1]));
        assert!(
            message.contains("in_f32") && message.contains("missing"),
            "{backend}: {message}"
        );
        let mut unknown = copy_named(&good);
        unknown[0].name = "nope".into();
        let message = error(unknown);
        assert!(message.contains("nope"), "{backend}: {message}");

        // And the model still serves.
        assert_eq!(model.run(good).unwrap().len(), 2, "{backend}");
    }
}

/// An error and its causes, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}
