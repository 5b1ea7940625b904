//! Compressed requests: a body sent with `Content-Encoding: gzip` or
//! `deflate` (what tritonclient's `request_compression_algorithm` sends) is
//! decompressed before anything reads it, and may expand to no more than the
//! server takes as a body (`--max-body-size`), so that a small compressed
//! body cannot become a large one. Decompression runs in the sandbox, in
//! pure Rust (miniz_oxide through flate2).

use std::borrow::Cow;
use std::io::Read;

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use wasi_infer_guest::ApiError;

/// The encodings read, for a 501's `Accept-Encoding`.
pub const ACCEPTED: &str = "gzip, deflate";

/// `body` decoded as `content_encoding` says (codings applied in the order
/// listed, so undone in reverse), at most `max_bytes` long.
pub fn decode<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    max_bytes: u64,
) -> Result<Cow<'a, [u8]>, ApiError> {
    let Some(header) = content_encoding else {
        return Ok(Cow::Borrowed(body));
    };
    let codings: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        .collect();
    let mut data = Cow::Borrowed(body);
    for coding in codings.into_iter().rev() {
        data = Cow::Owned(decode_one(coding, &data, max_bytes)?);
    }
    Ok(data)
}

fn decode_one(coding: &str, body: &[u8], max_bytes: u64) -> Result<Vec<u8>, ApiError> {
    let lower = coding.to_ascii_lowercase();
    let result = match lower.as_str() {
        "gzip" | "x-gzip" => read_bounded(MultiGzDecoder::new(body), max_bytes),
        // HTTP's deflate is zlib's format (RFC 9110 section 8.4.1.2), as
        // tritonclient sends it. Bare deflate data (no zlib header) is not
        // guessed at: almost any bytes decode as deflate into garbage.
        "deflate" => read_bounded(ZlibDecoder::new(body), max_bytes),
        _ => {
            return Err(ApiError::unsupported_encoding(
                format!(
                    "Content-Encoding {coding:?} is not supported: send the body as {ACCEPTED} or uncompressed"
                ),
                ACCEPTED,
            ));
        }
    };
    result.map_err(|problem| match problem {
        Problem::TooLarge => ApiError::payload_too_large(format!(
            "the {lower} body expands to more than {max_bytes} bytes, the most the server takes as a body"
        )),
        Problem::Corrupt(e) => {
            ApiError::bad_request(format!("the body is not valid {lower} data: {e}"))
        }
    })
}

enum Problem {
    TooLarge,
    Corrupt(std::io::Error),
}

fn read_bounded(reader: impl Read, max_bytes: u64) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(Problem::Corrupt)?;
    if out.len() as u64 > max_bytes {
        return Err(Problem::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use std::io::Write;

    const TEXT: &[u8] =
        br#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}"#;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_deflate_and_identity_are_read() {
        assert_eq!(decode(None, TEXT, 1000).unwrap(), TEXT);
        assert_eq!(decode(Some("identity"), TEXT, 1000).unwrap(), TEXT);
        assert_eq!(decode(Some("gzip"), &gzip(TEXT), 1000).unwrap(), TEXT);
        assert_eq!(decode(Some("GZIP"), &gzip(TEXT), 1000).unwrap(), TEXT);
        assert_eq!(decode(Some("deflate"), &zlib(TEXT), 1000).unwrap(), TEXT);
        // Applied gzip then deflate: undone in reverse.
        let twice = zlib(&gzip(TEXT));
        assert_eq!(decode(Some("gzip, deflate"), &twice, 1000).unwrap(), TEXT);
    }

    #[test]
    fn unknown_encodings_are_501_with_accept_encoding() {
        let e = decode(Some("br"), TEXT, 1000).unwrap_err();
        assert_eq!(e.status, 501);
        assert_eq!(e.header, Some(("accept-encoding", ACCEPTED)));
        assert!(e.message.contains("\"br\""), "{}", e.message);
    }

    #[test]
    fn bombs_are_413_and_garbage_400() {
        let zeros = gzip(&vec![0u8; 1 << 20]);
        assert!(zeros.len() < 2048);
        let e = decode(Some("gzip"), &zeros, 1000).unwrap_err();
        assert_eq!(e.status, 413, "{}", e.message);
        assert!(e.message.contains("more than 1000 bytes"), "{}", e.message);
        assert_eq!(
            decode(Some("gzip"), &zeros, 1 << 20).unwrap().len(),
            1 << 20
        );
        for coding in ["gzip", "deflate"] {
            let e = decode(Some(coding), TEXT, 1000).unwrap_err();
            assert_eq!(e.status, 400, "{coding}: {}", e.message);
            assert!(e.message.contains("not valid"), "{}", e.message);
        }
    }
}
