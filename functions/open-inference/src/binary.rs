//! The binary tensor data extension: a body that is JSON followed by raw
//! tensor bytes, split where `Inference-Header-Content-Length` says; binary
//! inputs' chunks; BYTES elements' framing (a 4-byte little-endian length,
//! then the bytes); and a response body with outputs' bytes after its JSON.
//!
//! Binary inputs are not copied: their chunks are borrowed from the body and
//! handed to wasi-nn as they are.

use wasi_infer_guest::ApiError;

use crate::datatype::Datatype;
use crate::tensor_json::shape_text;

/// The header, lower case as spin-sdk looks headers up.
pub const HEADER: &str = "inference-header-content-length";

/// Splits `body` into its JSON part and, when the header is present, the
/// binary part after it (`None` without the header, so that a binary input
/// can be told what is missing).
pub fn split_body<'a>(
    body: &'a [u8],
    header: Option<&str>,
) -> Result<(&'a [u8], Option<&'a [u8]>), ApiError> {
    let Some(value) = header else {
        return Ok((body, None));
    };
    let value = value.trim();
    // Digits only: `u64::from_str` would also take "+12".
    let length = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Past u64 is past any body: the length check below refuses it.
        value.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        return Err(ApiError::bad_request(format!(
            "Inference-Header-Content-Length must be the JSON part's length in bytes, got {value:?}"
        )));
    };
    match usize::try_from(length) {
        Ok(json_len) if json_len <= body.len() => {
            let (json, binary) = body.split_at(json_len);
            Ok((json, Some(binary)))
        }
        _ => Err(ApiError::bad_request(format!(
            "Inference-Header-Content-Length is {length}, but the body has only {} bytes",
            body.len()
        ))),
    }
}

/// Hands each binary input (name and `binary_data_size`, in the order of
/// `inputs`) its consecutive chunk of `binary`. The sizes must account for
/// every byte: a mismatch means the client and this server disagree about
/// where one tensor ends, and every tensor after it would be garbage.
pub fn take_chunks<'a>(
    binary: Option<&'a [u8]>,
    sizes: &[(&str, u64)],
) -> Result<Vec<&'a [u8]>, ApiError> {
    let Some(mut rest) = binary else {
        return match sizes.iter().find(|(_, size)| *size > 0) {
            Some((name, _)) => Err(ApiError::bad_request(format!(
                "input {name:?} has parameters.binary_data_size, but the request has no \
                 Inference-Header-Content-Length header to say where its bytes begin"
            ))),
            None => Ok(sizes.iter().map(|_| &[][..]).collect()),
        };
    };
    let total = sizes
        .iter()
        .try_fold(0u64, |sum, (_, size)| sum.checked_add(*size));
    if total != u64::try_from(rest.len()).ok() {
        let total = total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string());
        return Err(ApiError::bad_request(if sizes.is_empty() {
            format!(
                "{} bytes follow the JSON part (Inference-Header-Content-Length), but no input \
                 has parameters.binary_data_size",
                rest.len()
            )
        } else {
            format!(
                "the binary inputs' binary_data_size add up to {total} bytes, but {} bytes \
                 follow the JSON part (Inference-Header-Content-Length)",
                rest.len()
            )
        }));
    }
    let mut chunks = Vec::with_capacity(sizes.len());
    for (_, size) in sizes {
        // The total equals the length, so each size fits.
        let (chunk, after) = rest.split_at(usize::try_from(*size).unwrap_or(rest.len()));
        chunks.push(chunk);
        rest = after;
    }
    Ok(chunks)
}

/// Checks a binary input's chunk against its datatype and `elements` (the
/// product of `shape`): exactly that many elements' bytes.
pub fn check_input(
    input: &str,
    dtype: Datatype,
    shape: &[i64],
    elements: u64,
    chunk: &[u8],
) -> Result<(), ApiError> {
    let Some(size) = dtype.element_size() else {
        let mut count = 0u64;
        for element in bytes_elements(chunk) {
            element
                .map_err(|e| ApiError::bad_request(format!("input {input:?}: binary data: {e}")))?;
            count += 1;
        }
        return if count == elements {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "input {input:?}: binary data has {count} BYTES elements, but shape {} holds {elements}",
                shape_text(shape)
            )))
        };
    };
    let expected = elements.checked_mul(size as u64);
    if expected == u64::try_from(chunk.len()).ok() {
        Ok(())
    } else {
        let expected = expected.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string());
        Err(ApiError::bad_request(format!(
            "input {input:?}: binary_data_size is {} bytes, but shape {} of {dtype} takes {expected} \
             ({elements} elements of {size} bytes)",
            chunk.len(),
            shape_text(shape)
        )))
    }
}

/// Appends one BYTES element in the extension's framing.
pub fn push_bytes_element(out: &mut Vec<u8>, element: &[u8]) {
    // A request body is far below 4 GiB: the host bounds it.
    let len = u32::try_from(element.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(element);
}

/// Where a BYTES tensor's framing breaks.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than 4 bytes left where element `index`'s length belongs.
    Length { index: u64, left: usize },
    /// Element `index` says `len` bytes, but only `left` remain.
    Element { index: u64, len: u32, left: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Length { index, left } => write!(
                f,
                "element {index}'s 4-byte length is cut short: only {left} bytes remain"
            ),
            FrameError::Element { index, len, left } => write!(
                f,
                "element {index} is {len} bytes long, but only {left} bytes remain"
            ),
        }
    }
}

/// A BYTES tensor's elements, in order; stops after the first broken frame.
pub fn bytes_elements(bytes: &[u8]) -> impl Iterator<Item = Result<&[u8], FrameError>> {
    let mut rest = bytes;
    let mut index = 0u64;
    let mut broken = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || broken {
            return None;
        }
        let item = match rest.split_first_chunk::<4>() {
            None => Err(FrameError::Length {
                index,
                left: rest.len(),
            }),
            Some((len, after)) => {
                let len = u32::from_le_bytes(*len);
                match usize::try_from(len).ok().filter(|&n| n <= after.len()) {
                    Some(n) => {
                        let (element, after) = after.split_at(n);
                        rest = after;
                        Ok(element)
                    }
                    None => Err(FrameError::Element {
                        index,
                        len,
                        left: after.len(),
                    }),
                }
            }
        };
        broken = item.is_err();
        index += 1;
        Some(item)
    })
}

/// A response body: the JSON, then each binary output's bytes in order.
pub fn assemble(json: Vec<u8>, chunks: &[&[u8]]) -> Vec<u8> {
    let mut body = json;
    body.reserve_exact(chunks.iter().map(|c| c.len()).sum());
    for chunk in chunks {
        body.extend_from_slice(chunk);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: Result<impl std::fmt::Debug, ApiError>) -> (u16, String) {
        let e = r.unwrap_err();
        (e.status, e.message)
    }

    #[test]
    fn the_header_splits_the_body() {
        let body = b"{\"a\":1}\x01\x02\x03";
        assert_eq!(split_body(body, None).unwrap(), (&body[..], None));
        assert_eq!(
            split_body(body, Some("7")).unwrap(),
            (&body[..7], Some(&body[7..]))
        );
        assert_eq!(
            split_body(body, Some(" 10 ")).unwrap(),
            (&body[..], Some(&[][..]))
        );
        assert_eq!(
            split_body(body, Some("0")).unwrap(),
            (&[][..], Some(&body[..]))
        );
    }

    #[test]
    fn a_bad_header_is_400() {
        let body = b"{}abc";
        for bad in ["", "abc", "-1", "+2", "1.5", "0x2", "2 3"] {
            let (code, m) = status(split_body(body, Some(bad)));
            assert_eq!(code, 400, "{bad:?}");
            assert!(m.contains("must be the JSON part's length"), "{m}");
        }
        for past in ["6", "18446744073709551615", "99999999999999999999999"] {
            let (code, m) = status(split_body(body, Some(past)));
            assert_eq!(code, 400);
            assert!(m.ends_with("but the body has only 5 bytes"), "{m}");
        }
    }

    #[test]
    fn chunks_follow_the_inputs_in_order() {
        let binary = [1, 2, 3, 4, 5, 6];
        assert_eq!(
            take_chunks(Some(&binary[..]), &[("a", 2), ("b", 0), ("c", 4)]).unwrap(),
            [&binary[..2], &[][..], &binary[2..]]
        );
        assert!(take_chunks(Some(&[][..]), &[]).unwrap().is_empty());
        assert!(take_chunks(None, &[]).unwrap().is_empty());
        // Zero bytes need no header.
        assert_eq!(take_chunks(None, &[("a", 0)]).unwrap(), [&[0u8; 0][..]]);
    }

    #[test]
    fn chunk_sizes_must_add_up_exactly() {
        let binary = [0u8; 6];
        for sizes in [
            &[("a", 2), ("b", 3)][..],
            &[("a", 2), ("b", 5)],
            &[("a", 7)],
            &[("a", u64::MAX), ("b", 7)],
        ] {
            let (code, m) = status(take_chunks(Some(&binary[..]), sizes));
            assert_eq!(code, 400);
            assert!(m.contains("add up to"), "{m}");
            assert!(m.contains("but 6 bytes follow the JSON part"), "{m}");
        }
        let (_, m) = status(take_chunks(Some(&binary[..]), &[("a", u64::MAX), ("b", 7)]));
        assert!(m.contains("more than 2^64"), "{m}");
        let (code, m) = status(take_chunks(Some(&binary[..]), &[]));
        assert_eq!(code, 400);
        assert!(
            m.contains("no input has parameters.binary_data_size"),
            "{m}"
        );
        let (code, m) = status(take_chunks(None, &[("a", 0), ("b", 4)]));
        assert_eq!(code, 400);
        assert!(
            m.starts_with("input \"b\" has parameters.binary_data_size, but the request has no Inference-Header-Content-Length"),
            "{m}"
        );
    }

    #[test]
    fn fixed_size_chunks_must_hold_the_shape() {
        assert!(check_input("x", Datatype::Fp32, &[2, 3], 6, &[0; 24]).is_ok());
        assert!(check_input("x", Datatype::Bool, &[2], 2, &[1, 0]).is_ok());
        assert!(check_input("x", Datatype::Fp16, &[0], 0, &[]).is_ok());
        let (code, m) = status(check_input("x", Datatype::Fp32, &[2, 3], 6, &[0; 23]));
        assert_eq!(code, 400);
        assert_eq!(
            m,
            "input \"x\": binary_data_size is 23 bytes, but shape [2, 3] of FP32 takes 24 (6 elements of 4 bytes)"
        );
        let (_, m) = status(check_input(
            "x",
            Datatype::Int64,
            &[1 << 62],
            1 << 62,
            &[0; 8],
        ));
        assert!(m.contains("takes more than 2^64"), "{m}");
    }

    #[test]
    fn bytes_chunks_are_length_framed() {
        let two = [&[2, 0, 0, 0][..], b"ab", &[0, 0, 0, 0]].concat();
        assert_eq!(
            bytes_elements(&two).collect::<Vec<_>>(),
            [Ok(&b"ab"[..]), Ok(&b""[..])]
        );
        assert!(check_input("s", Datatype::Bytes, &[2], 2, &two).is_ok());
        assert!(check_input("s", Datatype::Bytes, &[0], 0, &[]).is_ok());
        let (code, m) = status(check_input("s", Datatype::Bytes, &[3], 3, &two));
        assert_eq!(code, 400);
        assert_eq!(
            m,
            "input \"s\": binary data has 2 BYTES elements, but shape [3] holds 3"
        );
        let (code, m) = status(check_input("s", Datatype::Bytes, &[2], 2, &two[..5]));
        assert_eq!(code, 400);
        assert_eq!(
            m,
            "input \"s\": binary data: element 0 is 2 bytes long, but only 1 bytes remain"
        );
        let (_, m) = status(check_input("s", Datatype::Bytes, &[2], 2, &two[..8]));
        assert_eq!(
            m,
            "input \"s\": binary data: element 1's 4-byte length is cut short: only 2 bytes remain"
        );
        // A length past u32's worth of bytes remaining is not trusted.
        assert_eq!(
            bytes_elements(&[0xff, 0xff, 0xff, 0xff, 1]).collect::<Vec<_>>(),
            [Err(FrameError::Element {
                index: 0,
                len: u32::MAX,
                left: 1
            })]
        );
    }

    #[test]
    fn framing_round_trips() {
        let mut out = Vec::new();
        for e in [&b"x"[..], b"", "é".as_bytes()] {
            push_bytes_element(&mut out, e);
        }
        assert_eq!(
            bytes_elements(&out).collect::<Result<Vec<_>, _>>().unwrap(),
            [&b"x"[..], b"", "é".as_bytes()]
        );
    }

    #[test]
    fn a_response_body_is_json_then_chunks() {
        assert_eq!(
            assemble(b"{}".to_vec(), &[&[1, 2], &[], &[3]]),
            b"{}\x01\x02\x03"
        );
        assert_eq!(assemble(b"{}".to_vec(), &[]), b"{}");
    }
}
