//! Integer matrix products as float ones, for tract.
//!
//! A dynamically quantised model (onnxruntime's `quantize_dynamic`, as our
//! all-MiniLM-L6-v2 int8 is) multiplies its activations by its weights with
//! `MatMulInteger`: `(A - a_zp) × (B - b_zp)` in 32-bit integers, with `A`
//! quantised per request and `B` a stored int8 or uint8 weight. tract 0.23
//! computes it as a generic integer einsum, many times slower than its float
//! kernels: all-MiniLM-L6-v2 took 250 ms an inference, and takes 11.7 ms
//! once rewritten (`backend-bench`, one thread, on a 2-core AVX2 machine).
//!
//! The rewrite keeps the model's arithmetic. Each `MatMulInteger` whose `B`
//! (and zero point) is stored in the file becomes
//! `MatMul(Cast<f32>(A) - Cast<f32>(a_zp), f32(B - b_zp))`, so the activations
//! are still quantised exactly as the model says and every product and partial
//! sum of two 8-bit integers is exact in f32 up to 2²⁴; beyond that, a sum is
//! rounded to f32's 24 bits, a relative error of 6·10⁻⁸, far below the int8
//! quantisation's own. The rewritten weights take four times the memory
//! (MiniLM's 10.6 M of them: 10.6 MB of int8 become 42.5 MB of f32).
//!
//! A node is rewritten only where the result is the same by construction: `B`
//! and its zero point are initialisers of a shape the spec allows (a matrix,
//! and a scalar or per-column zero point), and every consumer of the integer
//! product immediately casts it to f32. Anything else is left to tract as is.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// Rewrites the graph's eligible `MatMulInteger` nodes; answers how many.
pub fn as_float_matmuls(graph: &mut GraphProto) -> usize {
    let initializers: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let graph_outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();

    // Decide every node first, against the graph as the file has it.
    let mut plans: Vec<(usize, Vec<f32>, Vec<i64>)> = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op_type != "MatMulInteger" || !is_default_domain(&node.domain) {
            continue;
        }
        let Some(output) = node.output.first() else {
            continue;
        };
        if graph_outputs.contains(output.as_str()) || !only_cast_to_f32(graph, output) {
            continue;
        }
        let weight = |slot: usize| {
            input(node, slot)
                .and_then(|name| initializers.get(name).map(|&i| &graph.initializer[i]))
        };
        let Some(b) = weight(1) else { continue };
        let b_zero = match input(node, 3) {
            None => None,
            Some(_) => match weight(3) {
                Some(zp) => Some(zp),
                // A zero point computed at run time: leave the node alone.
                None => continue,
            },
        };
        if let Some(values) = centred_weights(b, b_zero) {
            plans.push((i, values, b.dims.clone()));
        }
    }
    if plans.is_empty() {
        return 0;
    }

    let mut names = Names::of(graph);
    let mut replaced: HashSet<String> = HashSet::new();
    let mut centred_activations: HashMap<(String, Option<String>), String> = HashMap::new();
    let mut new_nodes: Vec<(usize, NodeProto)> = Vec::new();
    let rewritten = plans.len();
    for (i, values, dims) in plans {
        let node = &graph.node[i];
        replaced.extend(node.input.iter().skip(1).step_by(2).cloned());
        let a = node.input[0].clone();
        let a_zero = input(node, 2).map(str::to_string);
        let b_name = names.fresh(&format!("{}_as_f32", node.input[1]));
        let output = node.output[0].clone();
        let node_name = node.name.clone();

        let a_f32 = match centred_activations.get(&(a.clone(), a_zero.clone())) {
            Some(name) => name.clone(),
            None => {
                let a_cast = names.fresh(&format!("{a}_as_f32"));
                let cast = names.fresh(&format!("{a_cast}_cast"));
                new_nodes.push((i, cast_to_f32(cast, &a, &a_cast)));
                let centred = match &a_zero {
                    None => a_cast,
                    Some(zp) => {
                        let zp_cast = names.fresh(&format!("{zp}_as_f32"));
                        let cast = names.fresh(&format!("{zp_cast}_cast"));
                        new_nodes.push((i, cast_to_f32(cast, zp, &zp_cast)));
                        let centred = names.fresh(&format!("{a}_centred_f32"));
                        new_nodes.push((
                            i,
                            NodeProto {
                                name: names.fresh(&format!("{node_name}_centre")),
                                op_type: "Sub".into(),
                                input: vec![a_cast, zp_cast],
                                output: vec![centred.clone()],
                                ..Default::default()
                            },
                        ));
                        centred
                    }
                };
                centred_activations.insert((a.clone(), a_zero.clone()), centred.clone());
                centred
            }
        };

        graph.initializer.push(TensorProto {
            name: b_name.clone(),
            dims,
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        graph.node[i] = NodeProto {
            name: node_name,
            op_type: "MatMul".into(),
            input: vec![a_f32, b_name],
            output: vec![output],
            ..Default::default()
        };
    }

    // The new nodes go just before the first node that uses them, which keeps
    // the graph in topological order.
    let mut nodes = Vec::with_capacity(graph.node.len() + new_nodes.len());
    let mut pending = new_nodes.into_iter().peekable();
    for (i, node) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        while let Some((_, new)) = pending.next_if(|(at, _)| *at == i) {
            nodes.push(new);
        }
        nodes.push(node);
    }
    graph.node = nodes;
    drop_unused(graph, &replaced);
    rewritten
}

fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The node's input in `slot`, if it is given (optional inputs may be absent
/// or named "").
fn input(node: &NodeProto, slot: usize) -> Option<&str> {
    node.input
        .get(slot)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether every node that reads `value` is a `Cast` to f32.
fn only_cast_to_f32(graph: &GraphProto, value: &str) -> bool {
    graph
        .node
        .iter()
        .filter(|n| n.input.iter().any(|i| i == value))
        .all(|n| {
            n.op_type == "Cast"
                && is_default_domain(&n.domain)
                && n.attribute
                    .iter()
                    .any(|a| a.name == "to" && a.i == DataType::Float as i64)
        })
}

fn cast_to_f32(name: String, from: &str, to: &str) -> NodeProto {
    NodeProto {
        name,
        op_type: "Cast".into(),
        input: vec![from.into()],
        output: vec![to.into()],
        attribute: vec![AttributeProto {
            name: "to".into(),
            r#type: AttributeType::Int as i32,
            i: DataType::Float as i64,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `B - b_zp` as f32, row-major in `B`'s shape, for a matrix `B` with a scalar
/// or per-column zero point of its type; `None` for anything else.
fn centred_weights(b: &TensorProto, zero: Option<&TensorProto>) -> Option<Vec<f32>> {
    let [rows, columns] = b.dims[..] else {
        return None;
    };
    let (rows, columns) = (usize::try_from(rows).ok()?, usize::try_from(columns).ok()?);
    let weights = integers(b)?;
    if weights.len() != rows.checked_mul(columns)? {
        return None;
    }
    let zero_points = match zero {
        None => vec![0; columns],
        Some(zp) => {
            if zp.data_type != b.data_type {
                return None;
            }
            let values = integers(zp)?;
            match (zp.dims.as_slice(), values.as_slice()) {
                ([] | [1], &[z]) => vec![z; columns],
                ([n], _) if usize::try_from(*n).ok()? == columns && values.len() == columns => {
                    values
                }
                _ => return None,
            }
        }
    };
    Some(
        weights
            .chunks_exact(columns)
            .flat_map(|row| row.iter().zip(&zero_points).map(|(w, z)| (w - z) as f32))
            .collect(),
    )
}

/// An int8 or uint8 tensor's values, stored in the file itself.
fn integers(t: &TensorProto) -> Option<Vec<i32>> {
    if t.data_location == Some(DataLocation::External as i32) {
        return None;
    }
    let from_byte: fn(u8) -> i32 = match DataType::try_from(t.data_type).ok()? {
        DataType::Int8 => |b| i32::from(b as i8),
        DataType::Uint8 => i32::from,
        _ => return None,
    };
    if !t.raw_data.is_empty() {
        Some(t.raw_data.iter().map(|&b| from_byte(b)).collect())
    } else {
        // Without raw_data, 8-bit values are stored one per int32.
        Some(t.int32_data.clone())
    }
}

/// The replaced 8-bit weights and zero points that nothing reads any more, so
/// they are not loaded beside their f32 copies.
fn drop_unused(graph: &mut GraphProto, replaced: &HashSet<String>) {
    let used: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(graph.output.iter().map(|o| o.name.clone()))
        .collect();
    graph
        .initializer
        .retain(|t| !replaced.contains(&t.name) || used.contains(&t.name));
}

/// Value and node names not yet taken in the graph.
struct Names(HashSet<String>);

impl Names {
    fn of(graph: &GraphProto) -> Self {
        let mut taken: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        taken.extend(graph.input.iter().map(|i| i.name.clone()));
        for node in &graph.node {
            taken.insert(node.name.clone());
            taken.extend(node.output.iter().cloned());
        }
        Self(taken)
    }

    fn fresh(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut n = 1;
        while self.0.contains(&name) {
            n += 1;
            name = format!("{wanted}_{n}");
        }
        self.0.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{ModelProto, OperatorSetIdProto, TypeProto, ValueInfoProto};
    use tract_onnx::prelude::*;

    fn tensor(name: &str, ty: DataType, dims: &[i64], bytes: Vec<u8>) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: ty as i32,
            raw_data: bytes,
            ..Default::default()
        }
    }

    fn value(name: &str, ty: DataType, dims: &[i64]) -> ValueInfoProto {
        use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension::Value as Dim};
        use tract_onnx::pb::type_proto::{Tensor, Value};
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(Value::TensorType(Tensor {
                    elem_type: ty as i32,
                    shape: Some(tract_onnx::pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                value: Some(Dim::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `y = f32(MatMulInteger(a, B, a_zp, b_zp))` with `a` u8 `[2,3]` and
    /// `B` i8 `[3,4]` with per-column zero points, as quantize_dynamic writes it;
    /// `then` is the op that reads the integer product.
    fn model(then: &str) -> ModelProto {
        let b: Vec<i8> = vec![-128, -7, 0, 127, 3, 100, -100, 1, 55, -55, 127, -128];
        let b_zero: Vec<i8> = vec![0, -3, 5, -128];
        let mut consumer = NodeProto {
            name: "then".into(),
            op_type: then.into(),
            input: vec!["product".into()],
            output: vec!["y".into()],
            ..Default::default()
        };
        if then == "Cast" {
            consumer.attribute.push(AttributeProto {
                name: "to".into(),
                r#type: AttributeType::Int as i32,
                i: DataType::Float as i64,
                ..Default::default()
            });
        }
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 14,
            }],
            graph: Some(GraphProto {
                name: "g".into(),
                node: vec![
                    NodeProto {
                        name: "mm".into(),
                        op_type: "MatMulInteger".into(),
                        input: vec!["a".into(), "b".into(), "a_zp".into(), "b_zp".into()],
                        output: vec!["product".into()],
                        ..Default::default()
                    },
                    consumer,
                ],
                initializer: vec![
                    tensor("b", DataType::Int8, &[3, 4], bytemuck::cast_vec(b)),
                    tensor("b_zp", DataType::Int8, &[4], bytemuck::cast_vec(b_zero)),
                    tensor("a_zp", DataType::Uint8, &[], vec![131]),
                ],
                input: vec![value("a", DataType::Uint8, &[2, 3])],
                output: vec![value("y", DataType::Float, &[2, 4])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(proto: &ModelProto) -> Vec<f32> {
        let a = Tensor::from_shape(&[2, 3], &[0u8, 255, 131, 17, 200, 64]).unwrap();
        let outputs = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .and_then(|plan| plan.run(tvec![a.into()]))
            .unwrap();
        let plain = outputs[0].try_as_plain_ram().unwrap();
        plain.as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn gives_what_the_integer_product_gives() {
        let original = model("Cast");
        let mut rewritten = original.clone();
        let graph = rewritten.graph.as_mut().unwrap();
        assert_eq!(as_float_matmuls(graph), 1);
        assert!(graph.node.iter().all(|n| n.op_type != "MatMulInteger"));
        // The 8-bit weights went with the node; the activations' zero point
        // is still read, by a cast.
        let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a_zp", "b_as_f32"]);
        // Exact: every product and sum here is a small integer.
        assert_eq!(run(&rewritten), run(&original));
    }

    #[test]
    fn leaves_a_product_read_as_an_integer() {
        let mut proto = model("Identity");
        let graph = proto.graph.as_mut().unwrap();
        assert_eq!(as_float_matmuls(graph), 0);
        assert_eq!(graph.node[0].op_type, "MatMulInteger");
    }

    #[test]
    fn leaves_weights_computed_at_run_time() {
        let mut proto = model("Cast");
        let graph = proto.graph.as_mut().unwrap();
        graph.initializer.retain(|t| t.name != "b");
        graph.input.push(value("b", DataType::Int8, &[3, 4]));
        assert_eq!(as_float_matmuls(graph), 0);
    }
}

#[cfg(test)]
mod example_model {
    use std::path::Path;

    use tract_onnx::prelude::Framework;

    /// Every integer product of the served MiniLM is rewritten: tract would
    /// otherwise take it at about 20 times the time (see the module's note).
    #[test]
    fn minilm_has_no_integer_product_left() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/all-minilm-l6-v2/model-int8.onnx");
        let mut proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        assert_eq!(super::as_float_matmuls(graph), 36);
        assert!(graph.node.iter().all(|n| n.op_type != "MatMulInteger"));
    }
}
