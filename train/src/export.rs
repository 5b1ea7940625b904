//! Export to ONNX, as the model folder the server serves: each batch
//! normalisation folded into the convolution before it (inference needs no
//! separate normalisation), written as ONNX's protobuf messages (tract's
//! generated types, encoded by prost), beside its `model.toml`, labels and
//! provenance.

use std::path::Path;

use anyhow::Context;
use burn::prelude::*;
use prost::Message;
use tract_onnx::pb;

use crate::data::{CLASSES, SIDE};
use crate::model::Net;

/// Fashion-MNIST's class names, in label order.
pub const LABELS: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// ONNX's element type code for f32.
const FLOAT: i32 = 1;

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

/// A convolution's weights and bias with its batch normalisation folded in:
/// `gamma * (conv(x) - mean) / sqrt(var + eps) + beta` is a convolution with
/// each output channel's weights scaled and a bias.
pub fn folded(net: &Net, layer: usize) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let (conv, norm) = (&net.convs[layer], &net.norms[layer]);
    let weight = conv.weight.val();
    let dims = weight.dims().to_vec();
    let mut weight = values(weight);
    let gamma = values(norm.gamma.val());
    let beta = values(norm.beta.val());
    let mean = values(norm.running_mean.value());
    let var = values(norm.running_var.value());
    let per_channel = weight.len() / gamma.len();
    let mut bias = Vec::with_capacity(gamma.len());
    for c in 0..gamma.len() {
        let scale = gamma[c] / (var[c] + norm.epsilon as f32).sqrt();
        for w in &mut weight[c * per_channel..(c + 1) * per_channel] {
            *w *= scale;
        }
        bias.push(beta[c] - mean[c] * scale);
    }
    (dims, weight, bias)
}

fn initializer(name: &str, dims: &[usize], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attributes: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|i| i.to_string()).collect(),
        output: vec![output.into()],
        attribute: attributes,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Result<usize, &str>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = |d: &Result<usize, &str>| Dimension {
        value: Some(match d {
            Ok(size) => Value::DimValue(*size as i64),
            Err(param) => Value::DimParam(param.to_string()),
        }),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: dims.iter().map(dim).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The network as an ONNX model (opset 13): input `input` f32
/// `[batch, 1, 28, 28]` (pixel / 255), output `logits` f32 `[batch, 10]`.
/// `properties` go into its metadata (how it was made).
pub fn onnx(net: &Net, properties: &[(&str, String)]) -> pb::ModelProto {
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut x = "input".to_string();
    for layer in 0..net.convs.len() {
        let (dims, weight, bias) = folded(net, layer);
        let (w, b) = (format!("conv{layer}.weight"), format!("conv{layer}.bias"));
        initializers.push(initializer(&w, &dims, weight));
        initializers.push(initializer(&b, &dims[..1], bias));
        let conv = format!("conv{layer}");
        nodes.push(node(
            "Conv",
            &conv,
            &[&x, &w, &b],
            &conv,
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ));
        let relu = format!("relu{layer}");
        nodes.push(node("Relu", &relu, &[&conv], &relu, vec![]));
        x = relu;
        if layer % 2 == 1 {
            let pool = format!("pool{}", layer / 2);
            nodes.push(node(
                "MaxPool",
                &pool,
                &[&x],
                &pool,
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ));
            x = pool;
        }
    }
    nodes.push(node(
        "Flatten",
        "flatten",
        &[&x],
        "flatten",
        vec![int("axis", 1)],
    ));
    for (name, layer, input, output) in [
        ("hidden", &net.hidden, "flatten", "hidden"),
        ("logits", &net.logits, "hidden_relu", "logits"),
    ] {
        // Burn keeps a dense layer's weights as [inputs, outputs]: Gemm's B
        // as it is, without transB.
        let weight = layer.weight.val();
        let dims = weight.dims().to_vec();
        initializers.push(initializer(
            &format!("{name}.weight"),
            &dims,
            values(weight),
        ));
        let bias = layer
            .bias
            .as_ref()
            .map(|b| values(b.val()))
            .unwrap_or_else(|| vec![0.0; dims[1]]);
        initializers.push(initializer(&format!("{name}.bias"), &dims[1..], bias));
        nodes.push(node(
            "Gemm",
            name,
            &[input, &format!("{name}.weight"), &format!("{name}.bias")],
            output,
            vec![],
        ));
        if name == "hidden" {
            nodes.push(node(
                "Relu",
                "hidden_relu",
                &["hidden"],
                "hidden_relu",
                vec![],
            ));
        }
    }
    let graph = pb::GraphProto {
        name: "fashion-mnist-cnn".into(),
        node: nodes,
        initializer: initializers,
        input: vec![value_info(
            "input",
            &[Err("batch"), Ok(1), Ok(SIDE), Ok(SIDE)],
        )],
        output: vec![value_info("logits", &[Err("batch"), Ok(CLASSES)])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        producer_name: "wasi-infer-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        metadata_props: properties
            .iter()
            .map(|(key, value)| pb::StringStringEntryProto {
                key: key.to_string(),
                value: value.clone(),
            })
            .collect(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// What a model folder says about itself.
pub struct Folder<'a> {
    /// `model.toml`'s description.
    pub description: &'a str,
    /// The README's body: what the model is and how it was made.
    pub readme: String,
}

/// Writes `model` as a model folder at `dir`: `model.onnx`, `model.toml`,
/// `labels.txt`, `README.md` (the model card; its evaluation section is
/// written by `wasi-infer eval --card`, and kept if there is one).
pub fn write_folder(dir: &Path, model: &pb::ModelProto, folder: &Folder) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write(&dir.join("model.onnx"), &model.encode_to_vec())?;
    write_model_files(dir, folder)
}

/// `model.toml`, `labels.txt` and `README.md` of a model folder whose
/// `model.onnx` is already there.
pub fn write_model_files(dir: &Path, folder: &Folder) -> anyhow::Result<()> {
    let toml = format!(
        r#"# Read by the host (format, file, backend, inputs, outputs) and by the
# image-classify function (labels, preprocess). Written by wasi-infer-train;
# see README.md for how the model was made.
description = "{description}"
format = "onnx"
file = "model.onnx"
backend = "auto"
labels = "labels.txt"
# Served at /classify/<model> when the folder is served without a manifest.
task = "image-classification"

[[inputs]]
name = "input"
type = "f32"
# The ONNX graph has a dynamic batch; the function sends one image.
shape = [1, 1, {SIDE}, {SIDE}]

[[outputs]]
name = "logits"
type = "f32"
shape = [1, {CLASSES}]

[preprocess]
# The model was trained on 28x28 images, pixel / 255.
resize_shorter_side = {SIDE}
crop = [{SIDE}, {SIDE}]
color = "gray"
mean = [0.0]
std = [255.0]
layout = "nchw"
"#,
        description = folder.description
    );
    write(&dir.join("model.toml"), toml.as_bytes())?;
    write(
        &dir.join("labels.txt"),
        (LABELS.join("\n") + "\n").as_bytes(),
    )?;
    let card = dir.join("README.md");
    let evaluation = std::fs::read_to_string(&card)
        .ok()
        .and_then(|text| text.find(EVAL_BEGIN).map(|at| text[at..].to_string()))
        .unwrap_or_else(|| {
            format!(
                "{EVAL_BEGIN}\n_Not evaluated yet: `train/scripts/model-cards.sh` writes this section._\n{EVAL_END}\n"
            )
        });
    write(&card, format!("{}\n{evaluation}", folder.readme).as_bytes())
}

/// Where `wasi-infer eval --card` writes its section of a model card.
const EVAL_BEGIN: &str = "<!-- wasi-infer eval: begin -->";
const EVAL_END: &str = "<!-- wasi-infer eval: end -->";

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
