//! The request body: `{"input": "a text"}` or `{"input": ["text one", ...]}`.
//!
//! Parsed through `serde_json::Value` rather than a derived struct so that each
//! mistake gets its own message (which item is empty, which is not a string).
//! Other fields of the object are ignored, so clients that also send e.g. a
//! `"model"` field (as OpenAI-style clients do) are accepted.

use serde_json::Value;
use wasi_infer_guest::ApiError;

/// More texts than this in one request are refused: they all go into one
/// batch, whose memory and time grow with its size.
pub const MAX_TEXTS: usize = 64;

/// The texts to embed, in request order; at least one, none empty.
pub fn texts(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            r#"the body is not JSON ({e}): send {{"input": "a text"}} or {{"input": ["text", ...]}}"#
        ))
    })?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(
            r#"the body must be a JSON object: {"input": "a text"} or {"input": ["text", ...]}"#,
        ));
    };
    let texts = match object.remove("input") {
        None => {
            return Err(ApiError::bad_request(
                r#"the body has no "input": send {"input": "a text"} or {"input": ["text", ...]}"#,
            ));
        }
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text),
                other => Err(ApiError::bad_request(format!(
                    "input[{i}] must be a string, got {}",
                    kind(&other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"input\" must be a string or a list of strings, got {}",
                kind(&other)
            )));
        }
    };
    if texts.is_empty() {
        return Err(ApiError::bad_request("\"input\" is an empty list"));
    }
    if texts.len() > MAX_TEXTS {
        return Err(ApiError::bad_request(format!(
            "\"input\" has {} texts; at most {MAX_TEXTS} per request",
            texts.len()
        )));
    }
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(ApiError::bad_request(if texts.len() == 1 {
            "\"input\" is an empty string".to_string()
        } else {
            format!("input[{i}] is an empty string")
        }));
    }
    Ok(texts)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: &str) -> u16 {
        texts(body.as_bytes()).unwrap_err().status
    }

    #[test]
    fn one_text_or_a_list_in_order() {
        assert_eq!(texts(br#"{"input": "hello"}"#).unwrap(), ["hello"]);
        assert_eq!(
            texts(br#"{"input": ["b", "a"], "model": "ignored"}"#).unwrap(),
            ["b", "a"]
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for body in [
            "",
            "not json",
            r#"["a"]"#,
            r#"{}"#,
            r#"{"text": "a"}"#,
            r#"{"input": null}"#,
            r#"{"input": 3}"#,
            r#"{"input": []}"#,
            r#"{"input": ""}"#,
            r#"{"input": ["a", ""]}"#,
            r#"{"input": ["a", 1]}"#,
            r#"{"input": [["a"]]}"#,
        ] {
            assert_eq!(status(body), 400, "{body}");
        }
    }

    #[test]
    fn at_most_max_texts() {
        let list = |n: usize| format!(r#"{{"input": {:?}}}"#, vec!["t"; n]);
        assert_eq!(texts(list(MAX_TEXTS).as_bytes()).unwrap().len(), MAX_TEXTS);
        assert_eq!(status(&list(MAX_TEXTS + 1)), 400);
    }

    #[test]
    fn messages_name_the_bad_item() {
        let err = texts(br#"{"input": ["a", "b", 7]}"#).unwrap_err();
        assert_eq!(err.message, "input[2] must be a string, got a number");
        let err = texts(br#"{"input": ["a", ""]}"#).unwrap_err();
        assert_eq!(err.message, "input[1] is an empty string");
    }
}
