//! The classification extension (Triton's): an output requested with
//! `"parameters": {"classification": k}` comes back as its k highest values,
//! each as the BYTES string `"<value>:<index>[:<label>]"`, highest first,
//! instead of the values themselves. For a model with a batch dimension
//! (`max_batch_size` > 0) each batch item is ranked on its own and the shape
//! is `[batch, k]`; otherwise the whole output is ranked and the shape is
//! `[k]`. k larger than the classes is taken as all of them, as Triton does.
//!
//! The labels are the model's labels file, line by line, and are given when
//! it has a line for every class of the output (so that a model's labels are
//! not pinned on an output that is not its classes).

use half::{bf16, f16};
use serde_json::Value;
use wasi_infer_guest::ApiError;

use crate::binary;
use crate::datatype::Datatype;
use crate::protocol::Parameters;

/// The most classes a request may ask for: past it the answer alone
/// (a string per class and item) would dwarf any sensible use.
pub const MAX_CLASSES: u64 = 1 << 16;

/// `parameters.classification` of a requested output: `None` for none (or
/// 0, which tritonclient never sends but means none), else k.
pub fn requested(parameters: Option<&Parameters>, output: &str) -> Result<Option<u32>, ApiError> {
    match parameters.and_then(|p| p.get("classification")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(k) if k <= MAX_CLASSES => Ok(Some(k as u32)),
            _ => Err(ApiError::bad_request(format!(
                "output {output:?}: parameters.classification must be a whole number of classes from 0 to {MAX_CLASSES}, got {n}"
            ))),
        },
        Some(other) => Err(ApiError::bad_request(format!(
            "output {output:?}: parameters.classification must be a whole number of classes, got {other}"
        ))),
    }
}

/// An output ranked: its BYTES tensor in the binary extension's framing.
#[derive(Debug, PartialEq)]
pub struct Classified {
    pub dims: Vec<u32>,
    pub bytes: Vec<u8>,
}

/// Ranks output `name` (`dtype`, `dims`, little-endian `data`), keeping
/// the `k` highest of each batch item (`batched`) or of the whole output.
pub fn classify(
    name: &str,
    dtype: Datatype,
    dims: &[u32],
    data: &[u8],
    k: u32,
    batched: bool,
    labels: Option<&[String]>,
) -> Result<Classified, ApiError> {
    let values = values(dtype, data).ok_or_else(|| {
        ApiError::bad_request(format!(
            "output {name:?} is {dtype}, which the classification extension cannot rank: ask for it without parameters.classification"
        ))
    })?;
    let batch = match (batched, dims.first()) {
        (true, Some(&b)) if b > 0 => b as usize,
        _ => 1,
    };
    if values.is_empty() || values.len() % batch != 0 {
        return Err(ApiError::bad_request(format!(
            "output {name:?} has no classes to rank: its shape is {dims:?}"
        )));
    }
    let classes = values.len() / batch;
    let k = (k as usize).min(classes);
    let labels = labels.filter(|l| l.len() == classes);
    let mut bytes = Vec::new();
    for item in values.chunks(classes) {
        let mut order: Vec<usize> = (0..classes).collect();
        // Highest first; ties (and NaNs, ranked last) keep the lower index
        // first, as a stable sort does.
        order.sort_by(|&a, &b| item[b].rank().total_cmp(&item[a].rank()));
        for &index in &order[..k] {
            let mut text = format!("{}:{index}", item[index]);
            if let Some(label) = labels.and_then(|l| l.get(index)) {
                text.push(':');
                text.push_str(label);
            }
            binary::push_bytes_element(&mut bytes, text.as_bytes());
        }
    }
    let k = k as u32;
    let dims = if batched {
        vec![batch as u32, k]
    } else {
        vec![k]
    };
    Ok(Classified { dims, bytes })
}

/// A value as the extension writes it: floats as C's `%f` does (what
/// Triton's `std::to_string` gives), integers as they are.
#[derive(Debug, Clone, Copy)]
enum Number {
    Float(f64),
    Int(i64),
}

impl Number {
    fn rank(self) -> f64 {
        match self {
            Number::Float(x) if x.is_nan() => f64::NEG_INFINITY,
            Number::Float(x) => x,
            Number::Int(i) => i as f64,
        }
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Float(x) => write!(f, "{x:.6}"),
            Number::Int(i) => write!(f, "{i}"),
        }
    }
}

/// The output's values, for the types wasi-nn returns.
fn values(dtype: Datatype, data: &[u8]) -> Option<Vec<Number>> {
    let size = dtype.element_size()?;
    if !data.len().is_multiple_of(size) {
        return None;
    }
    let chunks = data.chunks_exact(size);
    let read = |c: &[u8]| -> Option<Number> {
        Some(match dtype {
            Datatype::Uint8 => Number::Int(i64::from(c[0])),
            Datatype::Int32 => Number::Int(i64::from(i32::from_le_bytes(c.try_into().ok()?))),
            Datatype::Int64 => Number::Int(i64::from_le_bytes(c.try_into().ok()?)),
            Datatype::Fp16 => Number::Float(f16::from_le_bytes(c.try_into().ok()?).to_f64()),
            Datatype::Bf16 => Number::Float(bf16::from_le_bytes(c.try_into().ok()?).to_f64()),
            Datatype::Fp32 => Number::Float(f64::from(f32::from_le_bytes(c.try_into().ok()?))),
            Datatype::Fp64 => Number::Float(f64::from_le_bytes(c.try_into().ok()?)),
            _ => return None,
        })
    };
    chunks.map(read).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(c: &Classified) -> Vec<String> {
        binary::bytes_elements(&c.bytes)
            .map(|e| String::from_utf8(e.unwrap().to_vec()).unwrap())
            .collect()
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn the_top_k_as_triton_writes_them_with_labels_that_fit() {
        // Triton's own example: [1, 5, 10, 4] ranks as indexes 2, 1, 3, 0.
        let data = f32s(&[1.0, 5.0, 10.0, 4.0]);
        let c = classify("y", Datatype::Fp32, &[1, 4], &data, 2, false, None).unwrap();
        assert_eq!(c.dims, [2]);
        assert_eq!(strings(&c), ["10.000000:2", "5.000000:1"]);
        let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let c = classify("y", Datatype::Fp32, &[1, 4], &data, 9, false, Some(&labels)).unwrap();
        assert_eq!(c.dims, [4], "k past the classes is all of them");
        assert_eq!(
            strings(&c),
            [
                "10.000000:2:c",
                "5.000000:1:b",
                "4.000000:3:d",
                "1.000000:0:a"
            ]
        );
        // Labels of another length are not these classes'.
        let c = classify(
            "y",
            Datatype::Fp32,
            &[1, 4],
            &data,
            1,
            false,
            Some(&labels[..3]),
        )
        .unwrap();
        assert_eq!(strings(&c), ["10.000000:2"]);
    }

    #[test]
    fn batch_items_are_ranked_each_and_integers_written_whole() {
        let data = f32s(&[0.1, 0.7, 0.2, 0.9, 0.05, 0.05]);
        let c = classify("y", Datatype::Fp32, &[2, 3], &data, 1, true, None).unwrap();
        assert_eq!(c.dims, [2, 1]);
        assert_eq!(strings(&c), ["0.700000:1", "0.900000:0"]);
        let ints: Vec<u8> = [3i64, -1, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let c = classify("y", Datatype::Int64, &[3], &ints, 2, false, None).unwrap();
        assert_eq!(strings(&c), ["7:2", "3:0"]);
        // Ties keep the lower index first; NaN ranks last.
        let data = f32s(&[f32::NAN, 1.0, 1.0]);
        let c = classify("y", Datatype::Fp32, &[3], &data, 3, false, None).unwrap();
        assert_eq!(strings(&c), ["1.000000:1", "1.000000:2", "NaN:0"]);
    }

    #[test]
    fn bad_requests_are_400() {
        let params = |v: Value| {
            let mut p = Parameters::new();
            p.insert("classification".into(), v);
            p
        };
        assert_eq!(requested(Some(&params(3.into())), "y").unwrap(), Some(3));
        assert_eq!(requested(Some(&params(0.into())), "y").unwrap(), None);
        assert_eq!(requested(None, "y").unwrap(), None);
        for bad in [
            Value::from(-1),
            Value::from(1.5),
            Value::from("3"),
            Value::from(1u64 << 20),
        ] {
            let e = requested(Some(&params(bad.clone())), "y").unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert!(
                e.message.contains("parameters.classification"),
                "{}",
                e.message
            );
        }
        let e = classify("y", Datatype::Fp32, &[0], &[], 1, false, None).unwrap_err();
        assert!(e.message.contains("no classes"), "{}", e.message);
    }
}
