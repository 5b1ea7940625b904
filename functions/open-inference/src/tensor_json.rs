//! Tensor data as JSON: an input's `data` (flat or nested arrays, row-major)
//! read straight into the little-endian bytes wasi-nn takes, and an output's
//! bytes written back as a flat array of JSON values.
//!
//! Reading goes element by element from the raw JSON text into one byte
//! buffer, so a large tensor is never held as JSON values as well as bytes.
//! Each element is checked against the datatype, and a bad one is reported by
//! its index in the flattened data, which is what a client can find.

use std::fmt;

use half::{bf16, f16};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use wasi_infer_guest::ApiError;

use crate::binary;
use crate::datatype::Datatype;

/// Reads `data` of input `input` as `elements` elements of `dtype` (the
/// product of its `shape`, which the messages quote). BYTES elements are
/// written as the binary extension frames them: a 4-byte little-endian length,
/// then the bytes.
pub fn decode(
    input: &str,
    dtype: Datatype,
    shape: &[i64],
    elements: u64,
    data: &RawValue,
) -> Result<Vec<u8>, ApiError> {
    let text = data.get();
    if !text.trim_start().starts_with('[') {
        return Err(ApiError::bad_request(format!(
            "input {input:?}: data must be an array (flat or nested), got {}",
            excerpt(text)
        )));
    }
    // Every element takes at least two characters of JSON ("1,"), so the text
    // bounds the buffer even when the shape claims more than it holds.
    let bound = u64::try_from(text.len() / 2 + 1).unwrap_or(u64::MAX);
    let capacity = match dtype.element_size() {
        Some(size) => usize::try_from(elements.min(bound))
            .unwrap_or(0)
            .saturating_mul(size),
        None => text.len(),
    };
    let mut sink = Sink {
        dtype,
        bytes: Vec::with_capacity(capacity),
        count: 0,
        limit: elements,
        problem: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let read = Elements(&mut sink)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(problem) = sink.problem {
        return Err(ApiError::bad_request(match problem {
            Problem::Element(index, what) => {
                format!("input {input:?}: element {index} of data {what}")
            }
            Problem::TooMany => format!(
                "input {input:?}: data has more than the {elements} elements of shape {}",
                shape_text(shape)
            ),
        }));
    }
    // The text is a RawValue, so it is valid JSON: only the sink refuses it.
    read.map_err(|e| ApiError::bad_request(format!("input {input:?}: data: {e}")))?;
    if sink.count != elements {
        return Err(ApiError::bad_request(format!(
            "input {input:?}: data has {} elements, but shape {} holds {elements}",
            sink.count,
            shape_text(shape)
        )));
    }
    Ok(sink.bytes)
}

/// `[1, 3, 224, 224]`, as a client wrote it.
pub fn shape_text<T: fmt::Display>(shape: &[T]) -> String {
    let dims: Vec<String> = shape.iter().map(T::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// Where the elements go, and the first thing wrong with them: serde's errors
/// carry only a message, so the reason is kept here and the error only stops
/// the parse.
struct Sink {
    dtype: Datatype,
    bytes: Vec<u8>,
    count: u64,
    limit: u64,
    problem: Option<Problem>,
}

enum Problem {
    /// The element at this index (in the flattened data) is wrong: why.
    Element(u64, String),
    /// More elements than the shape holds: stopped there, so that a small
    /// shape cannot make a large body fill memory.
    TooMany,
}

impl Sink {
    fn push<E: de::Error>(&mut self, value: Scalar<'_>) -> Result<(), E> {
        let outcome = if self.count >= self.limit {
            Err(Problem::TooMany)
        } else {
            write_element(self.dtype, &value, &mut self.bytes)
                .map_err(|why| Problem::Element(self.count, format!("is {value}, {why}")))
        };
        match outcome {
            Ok(()) => {
                self.count += 1;
                Ok(())
            }
            Err(problem) => {
                self.problem = Some(problem);
                Err(E::custom("invalid tensor data"))
            }
        }
    }
}

/// One JSON value where an element belongs.
enum Scalar<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(&'a str),
    Object,
}

impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Unsigned(n) => write!(f, "{n}"),
            Scalar::Signed(n) => write!(f, "{n}"),
            // Debug writes 1e39 rather than forty digits, and 1.0 as 1.0.
            Scalar::Float(x) => write!(f, "{x:?}"),
            Scalar::Str(s) => write!(f, "{:?}", excerpt(s)),
            Scalar::Object => f.write_str("an object"),
        }
    }
}

/// Appends one element of `dtype`; the error completes "element i is <v>, ...".
fn write_element(dtype: Datatype, value: &Scalar<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    match dtype {
        Datatype::Bool => match value {
            Scalar::Bool(b) => {
                out.push(u8::from(*b));
                Ok(())
            }
            _ => Err("but BOOL takes true or false".into()),
        },
        Datatype::Bytes => match value {
            Scalar::Str(s) => {
                binary::push_bytes_element(out, s.as_bytes());
                Ok(())
            }
            _ => Err("but BYTES takes strings".into()),
        },
        Datatype::Fp16 => {
            let x = float(dtype, value)?;
            let h = f16::from_f64(x);
            in_range(dtype, h.is_infinite())?;
            out.extend_from_slice(&h.to_le_bytes());
            Ok(())
        }
        Datatype::Bf16 => {
            let x = float(dtype, value)?;
            let h = bf16::from_f64(x);
            in_range(dtype, h.is_infinite())?;
            out.extend_from_slice(&h.to_le_bytes());
            Ok(())
        }
        Datatype::Fp32 => {
            let x = float(dtype, value)? as f32;
            in_range(dtype, x.is_infinite())?;
            out.extend_from_slice(&x.to_le_bytes());
            Ok(())
        }
        Datatype::Fp64 => {
            let x = float(dtype, value)?;
            out.extend_from_slice(&x.to_le_bytes());
            Ok(())
        }
        _ => {
            let (min, max) = integer_range(dtype);
            let n = match value {
                Scalar::Unsigned(n) => i128::from(*n),
                Scalar::Signed(n) => i128::from(*n),
                // A JSON number with a fraction or an exponent is refused even
                // when it is whole (1.0, 1e3), as Triton does: the client's
                // data was then floating point, and silently truncating its
                // next value would be worse than saying so now.
                _ => {
                    return Err(format!(
                        "but {dtype} takes integers from {min} to {max}, written without a fraction or exponent"
                    ));
                }
            };
            if n < min || n > max {
                return Err(format!("out of {dtype}'s range ({min} to {max})"));
            }
            let size = dtype.element_size().unwrap_or(8);
            // Two's complement, little-endian: the low bytes are the value
            // in any integer type whose range holds it.
            out.extend_from_slice(&n.to_le_bytes()[..size]);
            Ok(())
        }
    }
}

/// Any JSON number is a float: integers are as good as `1.0`.
fn float(dtype: Datatype, value: &Scalar<'_>) -> Result<f64, String> {
    match value {
        Scalar::Unsigned(n) => Ok(*n as f64),
        Scalar::Signed(n) => Ok(*n as f64),
        Scalar::Float(x) => Ok(*x),
        _ => Err(format!("but {dtype} takes numbers")),
    }
}

/// A finite JSON number that the type can only hold as infinity.
fn in_range(dtype: Datatype, overflowed: bool) -> Result<(), String> {
    if overflowed {
        Err(format!("beyond {dtype}'s range"))
    } else {
        Ok(())
    }
}

fn integer_range(dtype: Datatype) -> (i128, i128) {
    match dtype {
        Datatype::Uint8 => (0, u8::MAX.into()),
        Datatype::Uint16 => (0, u16::MAX.into()),
        Datatype::Uint32 => (0, u32::MAX.into()),
        Datatype::Uint64 => (0, u64::MAX.into()),
        Datatype::Int8 => (i8::MIN.into(), i8::MAX.into()),
        Datatype::Int16 => (i16::MIN.into(), i16::MAX.into()),
        Datatype::Int32 => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

/// Reads a value where elements may be: an array (of elements or of arrays)
/// is flattened into the sink, anything else is an element.
struct Elements<'s>(&'s mut Sink);

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor elements, in flat or nested arrays")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Elements(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.0.push(Scalar::Object)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(Scalar::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(Scalar::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(Scalar::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(Scalar::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(Scalar::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(Scalar::Str(v))
    }
}

/// An output's bytes, checked by [`encodable`] to be writable as JSON.
#[derive(Debug)]
pub struct JsonData<'a> {
    dtype: Datatype,
    bytes: &'a [u8],
}

/// Checks that output `output`'s bytes can be written as JSON values: whole
/// elements, floats that are finite (JSON has no NaN or infinity), BYTES
/// elements that are framed and UTF-8 (JSON strings are text). What cannot is
/// the server's answer to give, so a 500 that says how to ask for it instead.
pub fn encodable<'a>(
    output: &str,
    dtype: Datatype,
    bytes: &'a [u8],
) -> Result<JsonData<'a>, ApiError> {
    let as_binary = "ask for it with \"parameters\": {\"binary_data\": true}";
    match dtype.element_size() {
        Some(size) => {
            if !bytes.len().is_multiple_of(size) {
                return Err(ApiError::internal(format!(
                    "output {output:?} has {} bytes, not a whole number of {dtype} elements",
                    bytes.len()
                )));
            }
            if dtype.is_float()
                && let Some(index) = floats(dtype, bytes).position(|x| !x.is_finite())
            {
                return Err(ApiError::internal(format!(
                    "output {output:?} holds NaN or infinity (element {index}), which JSON cannot carry: {as_binary}"
                )));
            }
        }
        None => {
            for (index, element) in binary::bytes_elements(bytes).enumerate() {
                let element = element.map_err(|e| {
                    ApiError::internal(format!("output {output:?}: BYTES framing: {e}"))
                })?;
                if std::str::from_utf8(element).is_err() {
                    return Err(ApiError::internal(format!(
                        "output {output:?}: element {index} is not UTF-8 text, which a JSON string cannot carry: {as_binary}"
                    )));
                }
            }
        }
    }
    Ok(JsonData { dtype, bytes })
}

/// A float tensor's elements, widened to f64 (exactly: every FP16, BF16 and
/// FP32 value is an f64 value).
fn floats(dtype: Datatype, bytes: &[u8]) -> impl Iterator<Item = f64> + '_ {
    let size = dtype.element_size().unwrap_or(1);
    bytes.chunks_exact(size).map(move |c| match (dtype, c) {
        (Datatype::Fp16, &[a, b]) => f16::from_le_bytes([a, b]).to_f64(),
        (Datatype::Bf16, &[a, b]) => bf16::from_le_bytes([a, b]).to_f64(),
        (Datatype::Fp32, &[a, b, c, d]) => f64::from(f32::from_le_bytes([a, b, c, d])),
        _ => f64::from_le_bytes(array(c)),
    })
}

/// An 8-byte chunk as an array; [`JsonData`]'s bytes are whole elements,
/// so the padding never shows.
fn array(chunk: &[u8]) -> [u8; 8] {
    let mut a = [0; 8];
    let n = chunk.len().min(8);
    a[..n].copy_from_slice(&chunk[..n]);
    a
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let dtype = self.dtype;
        let Some(size) = dtype.element_size() else {
            let mut seq = serializer.serialize_seq(None)?;
            for element in binary::bytes_elements(self.bytes) {
                let text = element
                    .ok()
                    .and_then(|e| std::str::from_utf8(e).ok())
                    .ok_or_else(|| serde::ser::Error::custom("BYTES element is not UTF-8"))?;
                seq.serialize_element(text)?;
            }
            return seq.end();
        };
        let mut seq = serializer.serialize_seq(Some(self.bytes.len() / size))?;
        for c in self.bytes.chunks_exact(size) {
            let a = array(c);
            match dtype {
                Datatype::Bool => seq.serialize_element(&(a[0] != 0))?,
                Datatype::Uint8 => seq.serialize_element(&a[0])?,
                Datatype::Int8 => seq.serialize_element(&i8::from_le_bytes([a[0]]))?,
                Datatype::Uint16 => seq.serialize_element(&u16::from_le_bytes([a[0], a[1]]))?,
                Datatype::Int16 => seq.serialize_element(&i16::from_le_bytes([a[0], a[1]]))?,
                Datatype::Uint32 => {
                    seq.serialize_element(&u32::from_le_bytes([a[0], a[1], a[2], a[3]]))?
                }
                Datatype::Int32 => {
                    seq.serialize_element(&i32::from_le_bytes([a[0], a[1], a[2], a[3]]))?
                }
                Datatype::Uint64 => seq.serialize_element(&u64::from_le_bytes(a))?,
                Datatype::Int64 => seq.serialize_element(&i64::from_le_bytes(a))?,
                // Half floats as the f32 they widen to exactly: JSON has one
                // number type, and f32 prints them shortest.
                Datatype::Fp16 => {
                    seq.serialize_element(&f16::from_le_bytes([a[0], a[1]]).to_f32())?
                }
                Datatype::Bf16 => {
                    seq.serialize_element(&bf16::from_le_bytes([a[0], a[1]]).to_f32())?
                }
                Datatype::Fp32 => {
                    seq.serialize_element(&f32::from_le_bytes([a[0], a[1], a[2], a[3]]))?
                }
                Datatype::Fp64 => seq.serialize_element(&f64::from_le_bytes(a))?,
                Datatype::Bytes => {}
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn dec(dtype: Datatype, shape: &[i64], json: &str) -> Result<Vec<u8>, ApiError> {
        let elements = shape.iter().map(|&d| d as u64).product();
        decode("x", dtype, shape, elements, &raw(json))
    }

    fn err(dtype: Datatype, shape: &[i64], json: &str) -> String {
        let e = dec(dtype, shape, json).unwrap_err();
        assert_eq!(e.status, 400, "{}", e.message);
        e.message
    }

    fn enc(dtype: Datatype, bytes: &[u8]) -> String {
        serde_json::to_string(&encodable("y", dtype, bytes).unwrap()).unwrap()
    }

    #[test]
    fn floats_flat_and_nested_are_row_major() {
        let flat = dec(Datatype::Fp32, &[2, 3], "[1, 2.5, -3, 4e2, 0, 1e-3]").unwrap();
        let nested = dec(Datatype::Fp32, &[2, 3], "[[1, 2.5, -3], [4e2, 0, 1e-3]]").unwrap();
        assert_eq!(flat, nested);
        let values: Vec<f32> = flat
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, [1.0, 2.5, -3.0, 400.0, 0.0, 0.001]);
        // Deeper nesting, and whitespace around the array.
        assert_eq!(
            dec(
                Datatype::Fp32,
                &[1, 2, 1, 3],
                " [[[[1],[2.5],[-3]]],[[[4e2],[0],[1e-3]]]] "
            )
            .unwrap(),
            flat
        );
    }

    #[test]
    fn every_numeric_type_is_little_endian() {
        assert_eq!(dec(Datatype::Uint8, &[2], "[0, 255]").unwrap(), [0, 255]);
        assert_eq!(
            dec(Datatype::Int8, &[2], "[-128, 127]").unwrap(),
            [0x80, 0x7f]
        );
        assert_eq!(dec(Datatype::Uint16, &[1], "[513]").unwrap(), [1, 2]);
        assert_eq!(dec(Datatype::Int16, &[1], "[-2]").unwrap(), [0xfe, 0xff]);
        assert_eq!(
            dec(Datatype::Uint32, &[1], "[4294967295]").unwrap(),
            [0xff; 4]
        );
        assert_eq!(dec(Datatype::Int32, &[1], "[-1]").unwrap(), [0xff; 4]);
        assert_eq!(
            dec(Datatype::Int32, &[1], "[-2147483648]").unwrap(),
            i32::MIN.to_le_bytes()
        );
        assert_eq!(
            dec(Datatype::Uint64, &[1], "[18446744073709551615]").unwrap(),
            u64::MAX.to_le_bytes()
        );
        assert_eq!(
            dec(
                Datatype::Int64,
                &[2],
                "[-9223372036854775808, 9223372036854775807]"
            )
            .unwrap(),
            [i64::MIN.to_le_bytes(), i64::MAX.to_le_bytes()].concat()
        );
        assert_eq!(
            dec(Datatype::Fp64, &[2], "[0.1, -7]").unwrap(),
            [0.1f64.to_le_bytes(), (-7.0f64).to_le_bytes()].concat()
        );
        assert_eq!(
            dec(Datatype::Fp16, &[3], "[1, -0.5, 65504]").unwrap(),
            [f16::ONE, f16::from_f32(-0.5), f16::MAX]
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            dec(Datatype::Bf16, &[2], "[1, 3e38]").unwrap(),
            [bf16::ONE, bf16::from_f64(3e38)]
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn bools_and_strings() {
        assert_eq!(
            dec(Datatype::Bool, &[3], "[true, false, true]").unwrap(),
            [1, 0, 1]
        );
        assert_eq!(
            dec(Datatype::Bytes, &[2], r#"["ab", "\u00e9"]"#).unwrap(),
            [&[2, 0, 0, 0][..], b"ab", &[2, 0, 0, 0], "é".as_bytes()].concat()
        );
        assert_eq!(dec(Datatype::Bytes, &[1], r#"[""]"#).unwrap(), [0, 0, 0, 0]);
    }

    #[test]
    fn integers_out_of_range_or_not_whole_are_refused_by_index() {
        assert_eq!(
            err(Datatype::Uint8, &[3], "[1, 2, 256]"),
            "input \"x\": element 2 of data is 256, out of UINT8's range (0 to 255)"
        );
        assert_eq!(
            err(Datatype::Uint8, &[2], "[[0], [-1]]"),
            "input \"x\": element 1 of data is -1, out of UINT8's range (0 to 255)"
        );
        for (dtype, bad) in [
            (Datatype::Int8, "-129"),
            (Datatype::Int8, "128"),
            (Datatype::Uint16, "65536"),
            (Datatype::Int16, "-32769"),
            (Datatype::Uint32, "4294967296"),
            (Datatype::Int32, "2147483648"),
            (Datatype::Int64, "9223372036854775808"),
            (Datatype::Uint64, "-1"),
        ] {
            let m = err(dtype, &[1], &format!("[{bad}]"));
            assert!(
                m.contains(&format!("is {bad}, out of {dtype}'s range")),
                "{m}"
            );
        }
        let m = err(Datatype::Int32, &[2], "[1, 1.5]");
        assert!(
            m.starts_with("input \"x\": element 1 of data is 1.5, but INT32 takes integers from -2147483648 to 2147483647"),
            "{m}"
        );
        // Past u64 a JSON integer is read as a float: still refused, with the range.
        let m = err(Datatype::Uint64, &[1], "[18446744073709551616]");
        assert!(
            m.contains("takes integers from 0 to 18446744073709551615"),
            "{m}"
        );
        assert!(err(Datatype::Int64, &[1], "[1.0]").contains("is 1.0, but INT64 takes integers"));
        assert!(err(Datatype::Int64, &[1], "[1e3]").contains("is 1000.0, but INT64"));
        for bad in ["true", "\"1\"", "null", "{}"] {
            let m = err(Datatype::Int32, &[1], &format!("[{bad}]"));
            assert!(m.contains("element 0 of data is"), "{m}");
            assert!(m.contains("INT32 takes integers"), "{m}");
        }
    }

    #[test]
    fn floats_beyond_the_types_range_and_non_numbers_are_refused() {
        assert_eq!(
            err(Datatype::Fp16, &[2], "[1, 65520]"),
            "input \"x\": element 1 of data is 65520, beyond FP16's range"
        );
        assert!(err(Datatype::Fp32, &[1], "[1e39]").contains("is 1e39, beyond FP32's range"));
        assert!(err(Datatype::Fp32, &[1], "[-1e39]").contains("beyond FP32's range"));
        assert!(err(Datatype::Bf16, &[1], "[1e39]").contains("beyond BF16's range"));
        // FP64 holds every number JSON can give; serde refuses the rest.
        assert!(err(Datatype::Fp64, &[1], "[1e400]").starts_with("input \"x\": data:"));
        for bad in ["true", "\"1.5\"", "null", "{\"a\": 1}"] {
            let m = err(Datatype::Fp32, &[1], &format!("[{bad}]"));
            assert!(m.contains("but FP32 takes numbers"), "{m}");
        }
        assert!(err(Datatype::Fp32, &[1], "[{}]").contains("is an object"));
    }

    #[test]
    fn bool_takes_only_true_or_false_and_bytes_only_strings() {
        for bad in ["0", "1", "\"true\"", "null"] {
            let m = err(Datatype::Bool, &[1], &format!("[{bad}]"));
            assert!(
                m.contains(&format!("is {bad}, but BOOL takes true or false")),
                "{m}"
            );
        }
        for bad in ["1", "true", "null", "[]"] {
            let m = err(Datatype::Bytes, &[2], &format!("[\"a\", {bad}]"));
            // An empty array adds no element: then the count is what is wrong.
            if bad == "[]" {
                assert!(m.contains("data has 1 elements"), "{m}");
            } else {
                assert!(m.contains("element 1 of data"), "{m}");
                assert!(m.contains("BYTES takes strings"), "{m}");
            }
        }
    }

    #[test]
    fn element_count_must_match_the_shape() {
        assert_eq!(
            err(Datatype::Fp32, &[2, 2], "[1, 2, 3]"),
            "input \"x\": data has 3 elements, but shape [2, 2] holds 4"
        );
        assert_eq!(
            err(Datatype::Fp32, &[2, 2], "[[1, 2], [3, 4], [5]]"),
            "input \"x\": data has more than the 4 elements of shape [2, 2]"
        );
        assert!(err(Datatype::Fp32, &[0], "[1]").contains("more than the 0 elements"));
        assert_eq!(
            dec(Datatype::Fp32, &[0, 3], "[]").unwrap(),
            Vec::<u8>::new()
        );
        assert_eq!(dec(Datatype::Fp32, &[], "[7]").unwrap(), 7f32.to_le_bytes());
        // A shape far larger than the data is not allocated for.
        let e = decode("x", Datatype::Fp64, &[1 << 40], 1 << 40, &raw("[1]")).unwrap_err();
        assert!(e.message.contains("data has 1 elements"), "{}", e.message);
    }

    #[test]
    fn an_image_tensor_is_read_into_one_buffer_of_its_size() {
        let values: Vec<String> = (0..150_528)
            .map(|i| format!("{}", i as f32 / 7.0))
            .collect();
        let json = format!("[{}]", values.join(","));
        let bytes = dec(Datatype::Fp32, &[1, 3, 224, 224], &json).unwrap();
        assert_eq!(bytes.len(), 602_112);
        assert_eq!(bytes.capacity(), 602_112, "reserved once, exactly");
        assert_eq!(bytes[4 * 7..4 * 8], 1f32.to_le_bytes());
    }

    #[test]
    fn data_must_be_an_array() {
        for bad in ["1", "\"abc\"", "{\"a\": [1]}", "true"] {
            let m = err(Datatype::Fp32, &[1], bad);
            assert!(m.starts_with("input \"x\": data must be an array"), "{m}");
        }
    }

    #[test]
    fn outputs_are_written_as_flat_json() {
        let f32s: Vec<u8> = [1.5f32, -0.1, 3e38]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(enc(Datatype::Fp32, &f32s), "[1.5,-0.1,3e+38]");
        let f16s: Vec<u8> = [f16::from_f32(0.5), f16::from_f32(-2.0), f16::MAX]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        assert_eq!(enc(Datatype::Fp16, &f16s), "[0.5,-2.0,65504.0]");
        let bf16s: Vec<u8> = [bf16::from_f32(0.5), bf16::from_f32(1.0)]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        assert_eq!(enc(Datatype::Bf16, &bf16s), "[0.5,1.0]");
        assert_eq!(enc(Datatype::Fp64, &0.1f64.to_le_bytes()), "[0.1]");
        assert_eq!(enc(Datatype::Uint8, &[0, 255]), "[0,255]");
        assert_eq!(enc(Datatype::Int8, &[0x80, 0x7f]), "[-128,127]");
        assert_eq!(enc(Datatype::Uint16, &[1, 2]), "[513]");
        assert_eq!(enc(Datatype::Int16, &[0xfe, 0xff]), "[-2]");
        assert_eq!(enc(Datatype::Uint32, &[0xff; 4]), "[4294967295]");
        assert_eq!(enc(Datatype::Int32, &[0xff; 4]), "[-1]");
        assert_eq!(enc(Datatype::Uint64, &[0xff; 8]), "[18446744073709551615]");
        assert_eq!(
            enc(Datatype::Int64, &i64::MIN.to_le_bytes()),
            "[-9223372036854775808]"
        );
        assert_eq!(enc(Datatype::Bool, &[1, 0, 2]), "[true,false,true]");
        assert_eq!(
            enc(
                Datatype::Bytes,
                &[&[2, 0, 0, 0][..], b"hi", &[0, 0, 0, 0]].concat()
            ),
            r#"["hi",""]"#
        );
        assert_eq!(enc(Datatype::Fp32, &[]), "[]");
    }

    #[test]
    fn decoding_what_encoding_wrote_gives_the_same_bytes() {
        let cases: [(Datatype, &[u8]); 5] = [
            (Datatype::Fp32, &[0, 0, 0xc0, 0x3f, 0xcd, 0xcc, 0xcc, 0x3d]),
            (Datatype::Fp16, &[0x00, 0x3c, 0x66, 0x2e]),
            (Datatype::Bf16, &[0x80, 0x3f, 0xcd, 0x3d]),
            (Datatype::Int16, &[0xfe, 0xff, 0x01, 0x00]),
            (Datatype::Bool, &[1, 0]),
        ];
        for (dtype, bytes) in cases {
            let json = enc(dtype, bytes);
            let n = (bytes.len() / dtype.element_size().unwrap()) as i64;
            assert_eq!(dec(dtype, &[n], &json).unwrap(), bytes, "{dtype} {json}");
        }
    }

    #[test]
    fn what_json_cannot_carry_is_a_500_that_says_to_ask_for_binary() {
        for (dtype, bytes) in [
            (
                Datatype::Fp32,
                [1f32, f32::NAN]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<_>>(),
            ),
            (Datatype::Fp64, f64::NEG_INFINITY.to_le_bytes().to_vec()),
            (Datatype::Fp16, f16::INFINITY.to_le_bytes().to_vec()),
            (Datatype::Bf16, bf16::NAN.to_le_bytes().to_vec()),
        ] {
            let e = encodable("logits", dtype, &bytes).unwrap_err();
            assert_eq!(e.status, 500);
            assert!(
                e.message
                    .starts_with("output \"logits\" holds NaN or infinity"),
                "{}",
                e.message
            );
            assert!(e.message.contains("binary_data"), "{}", e.message);
        }
        let e = encodable("logits", Datatype::Fp32, &[0; 4 * 3 + 1][..]).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("not a whole number of FP32 elements"));
        let e = encodable("s", Datatype::Bytes, &[1, 0, 0, 0, 0xff]).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(
            e.message.contains("element 0 is not UTF-8") && e.message.contains("binary_data"),
            "{}",
            e.message
        );
        for broken in [&[5, 0, 0, 0, b'a'][..], &[1, 0]] {
            let e = encodable("s", Datatype::Bytes, broken).unwrap_err();
            assert_eq!(e.status, 500);
            assert!(e.message.contains("BYTES framing"), "{}", e.message);
        }
    }
}
