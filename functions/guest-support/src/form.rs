//! The first file of a `multipart/form-data` body (RFC 7578): what an HTML
//! form, `curl -F file=@photo.jpg` and most HTTP client libraries send when a
//! user uploads a file.
//!
//! Only what an upload needs is read: the boundary, each part's
//! `Content-Disposition` and `Content-Type`, and the part's bytes, which are
//! borrowed from the body, never copied. The body is already bounded by the
//! host (`--max-body-size`), the search for each delimiter is linear
//! ([`memchr::memmem`]), and a part's headers may hold at most
//! [`MAX_PART_HEADER_BYTES`], so a hostile form costs no more than its size.

use memchr::memmem;

/// A part's header block larger than this is refused: real ones are a
/// `Content-Disposition` and a `Content-Type`, well under 1 KiB.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// RFC 2046 5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;

/// One file part of a form.
#[derive(Debug, PartialEq, Eq)]
pub struct FilePart<'a> {
    /// The form field's name (`file` in `curl -F file=@photo.jpg`).
    pub field: Option<String>,
    /// The file's name as the client gave it.
    pub filename: String,
    /// The part's own `Content-Type`, if it has one.
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

/// Why a form could not be read; the message says what to send instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error(
        "the multipart/form-data Content-Type has no valid boundary parameter (1 to 70 characters)"
    )]
    NoBoundary,
    #[error("the multipart/form-data body does not start with its boundary {0:?}")]
    NoFirstDelimiter(String),
    #[error("a part of the multipart/form-data body has no end of its headers")]
    UnterminatedHeaders,
    #[error(
        "a part of the multipart/form-data body has headers over {MAX_PART_HEADER_BYTES} bytes"
    )]
    HeadersTooLarge,
    #[error("a part of the multipart/form-data body is not closed by its boundary")]
    UnterminatedPart,
    #[error(
        "the multipart/form-data body has no file part (a part whose Content-Disposition has a filename): upload the file as a form field, e.g. curl -F file=@photo.jpg"
    )]
    NoFile,
}

/// True for a `Content-Type` of `multipart/form-data` (any parameters, any case).
pub fn is_multipart_form(content_type: &str) -> bool {
    essence(content_type) == "multipart/form-data"
}

/// What a client uploads, sent either way clients send a file: the first
/// file of a `multipart/form-data` body (`curl -F file=@x`, an HTML form),
/// or else the body itself (`curl --data-binary @x`), whatever its type
/// says. A malformed form is a 400 naming what is wrong.
pub fn file_or_body<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<&'a [u8], crate::ApiError> {
    match content_type {
        Some(ct) if is_multipart_form(ct) => first_file(ct, body)
            .map(|file| file.data)
            .map_err(|e| crate::ApiError::bad_request(e.to_string())),
        _ => Ok(body),
    }
}

/// The media type without parameters, lower-cased: `"Image/PNG; a=b"` is `"image/png"`.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The first part of a `multipart/form-data` body that carries a file.
pub fn first_file<'a>(content_type: &str, body: &'a [u8]) -> Result<FilePart<'a>, FormError> {
    let boundary = parameter(content_type, "boundary")
        .filter(|b| (1..=MAX_BOUNDARY_LEN).contains(&b.len()))
        .ok_or(FormError::NoBoundary)?;
    let delimiter = format!("--{boundary}");
    // Each later delimiter follows the previous part's data and its CRLF.
    let next_delimiter = format!("\r\n--{boundary}");
    let find_next = memmem::Finder::new(next_delimiter.as_bytes());

    // The first delimiter opens the body or follows a preamble's CRLF.
    let mut at = if body.starts_with(delimiter.as_bytes()) {
        delimiter.len()
    } else {
        find_next
            .find(body)
            .map(|i| i + next_delimiter.len())
            .ok_or_else(|| FormError::NoFirstDelimiter(boundary.clone()))?
    };
    loop {
        let rest = &body[at..];
        // `--boundary--` closes the body.
        if rest.starts_with(b"--") {
            return Err(FormError::NoFile);
        }
        // Transport padding (spaces and tabs) may follow a delimiter, then CRLF.
        let line_end = memmem::find(rest, b"\r\n").ok_or(FormError::UnterminatedPart)?;
        if !rest[..line_end].iter().all(|b| matches!(b, b' ' | b'\t')) {
            return Err(FormError::UnterminatedPart);
        }
        let part = &rest[line_end + 2..];
        let (headers, data_start) = if part.starts_with(b"\r\n") {
            // A part with no headers at all.
            (&part[..0], 2)
        } else {
            let end = memmem::find(part, b"\r\n\r\n").ok_or(FormError::UnterminatedHeaders)?;
            (&part[..end], end + 4)
        };
        if headers.len() > MAX_PART_HEADER_BYTES {
            return Err(FormError::HeadersTooLarge);
        }
        let content = &part[data_start..];
        let data_len = find_next.find(content).ok_or(FormError::UnterminatedPart)?;
        let data = &content[..data_len];
        if let Some(file) = file_part(headers, data) {
            return Ok(file);
        }
        // Past this part's data, its CRLF and the next delimiter.
        at = body.len() - content.len() + data_len + next_delimiter.len();
    }
}

/// The part, if its `Content-Disposition` names a file.
fn file_part<'a>(headers: &[u8], data: &'a [u8]) -> Option<FilePart<'a>> {
    let headers = String::from_utf8_lossy(headers);
    let mut disposition = None;
    let mut content_type = None;
    for line in headers.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => disposition = Some(value.trim().to_string()),
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let disposition = disposition?;
    let filename = parameter(&disposition, "filename")?;
    Some(FilePart {
        field: parameter(&disposition, "name"),
        filename,
        content_type,
        data,
    })
}

/// A parameter of a header value (`name=value` or `name="value"`, the name in
/// any case), after the first `;`.
fn parameter(value: &str, wanted: &str) -> Option<String> {
    let (_, params) = value.split_once(';')?;
    let mut rest = params;
    while !rest.trim_start().is_empty() {
        let trimmed = rest.trim_start_matches([' ', '\t', ';']);
        let (name, after) = trimmed.split_once('=')?;
        let name = name.trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            // A quoted string; `\"` and `\\` are escapes.
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        if name.eq_ignore_ascii_case(wanted) {
            return Some(value);
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What curl 7.88 sends for `curl -F file=@photo.png -F note=hi`.
    fn curl_form(boundary: &str, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    }

    #[test]
    fn reads_the_first_file_part_as_curl_sends_it() {
        let boundary = "------------------------d74496d66958873e";
        // Data holding CRLFs and a near-boundary must come back whole.
        let data = b"\x89PNG\r\n\x1a\n--------\r\n--not-the-boundary\r\n";
        let body = curl_form(boundary, data);
        let ct = format!("multipart/form-data; boundary={boundary}");
        let file = first_file(&ct, &body).unwrap();
        assert_eq!(file.data, data);
        assert_eq!(file.filename, "photo.png");
        assert_eq!(file.field.as_deref(), Some("file"));
        assert_eq!(file.content_type.as_deref(), Some("image/png"));
    }

    #[test]
    fn quoted_boundaries_preambles_and_padding() {
        let body = b"preamble\r\n--b 1 \t\r\nContent-Disposition: form-data; name=f; filename=\"a \\\"b\\\".jpg\"\r\n\r\nDATA\r\n--b 1--";
        let file =
            first_file("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"b 1\"", body).unwrap();
        assert_eq!(file.data, b"DATA");
        assert_eq!(file.filename, "a \"b\".jpg");
        assert_eq!(file.field.as_deref(), Some("f"));
    }

    #[test]
    fn malformed_forms_are_named_errors() {
        let ct = "multipart/form-data; boundary=xyz";
        assert_eq!(
            first_file("multipart/form-data", b""),
            Err(FormError::NoBoundary)
        );
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert_eq!(first_file(&long, b""), Err(FormError::NoBoundary));
        assert!(matches!(
            first_file(ct, b"\x89PNG..."),
            Err(FormError::NoFirstDelimiter(_))
        ));
        assert_eq!(
            first_file(ct, b"--xyz\r\nContent-Type: a"),
            Err(FormError::UnterminatedHeaders)
        );
        assert_eq!(
            first_file(
                ct,
                b"--xyz\r\nContent-Disposition: form-data; filename=a\r\n\r\nno end"
            ),
            Err(FormError::UnterminatedPart)
        );
        assert_eq!(
            first_file(
                ct,
                b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--xyz--\r\n"
            ),
            Err(FormError::NoFile)
        );
        let huge = format!(
            "--xyz\r\nX: {}\r\n\r\nv\r\n--xyz--",
            "a".repeat(MAX_PART_HEADER_BYTES)
        );
        assert_eq!(
            first_file(ct, huge.as_bytes()),
            Err(FormError::HeadersTooLarge)
        );
        assert_eq!(
            first_file(ct, b"--xyzGARBAGE\r\n\r\n"),
            Err(FormError::UnterminatedPart)
        );
    }

    #[test]
    fn media_type_essence() {
        assert!(is_multipart_form("Multipart/Form-Data; boundary=x"));
        assert!(!is_multipart_form("multipart/mixed; boundary=x"));
        assert_eq!(essence(" Image/PNG ; q=1"), "image/png");
    }
}
