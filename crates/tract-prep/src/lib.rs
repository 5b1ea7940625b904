//! Prepares an ONNX graph for tract, in the same way wherever tract runs it:
//! in the host's pure-Rust backend (`host/src/nn/tract/`) and inside a
//! self-contained function (`functions/guest-support`, feature
//! `self-contained`), so both compute the same arithmetic.
//!
//! - [`as_float_matmuls`]: integer matrix products (dynamic int8
//!   quantisation) as exact f32 products, which tract runs ~20x faster;
//! - [`graph_axis_names`]: the names the graph gives its inputs' dynamic
//!   axes, so that axes of one name share one symbol.

mod integer_matmul;

use std::collections::HashMap;

pub use integer_matmul::as_float_matmuls;
use tract_onnx::pb;

/// The names the ONNX graph gives its inputs' axes (`dim_param`), by input
/// name and axis: axes of one name have one length, which tract must know to
/// keep a shared symbol (a text's `sequence` in its ids and its mask).
pub fn graph_axis_names(proto: &pb::ModelProto) -> HashMap<(String, usize), String> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    use pb::type_proto::Value;
    let mut names = HashMap::new();
    for input in proto.graph.iter().flat_map(|g| &g.input) {
        let Some(Value::TensorType(tensor)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            continue;
        };
        for (axis, dim) in tensor.shape.iter().flat_map(|s| &s.dim).enumerate() {
            if let Some(Dim::DimParam(name)) = &dim.value
                && !name.is_empty()
            {
                names.insert((input.name.clone(), axis), name.clone());
            }
        }
    }
    names
}
