//! The errors a function answers with: an HTTP status and a message for the
//! `{"error": "..."}` body.

use spin_sdk::http::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// A header the status calls for: `Allow` for a 405, `Accept-Encoding`
    /// for a 501 about an encoding.
    pub header: Option<(&'static str, &'static str)>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            header: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            header: Some(("allow", allow)),
            ..Self::new(405, format!("method not allowed: use {allow}"))
        }
    }

    /// 413: the request's content is larger than the function handles (a body,
    /// or an image whose pixels would be).
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, message)
    }

    /// 415: the request's `Content-Type` is not one the function reads.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, message)
    }

    /// 501 naming the `Content-Encoding`s the function reads, in
    /// `Accept-Encoding` (RFC 9110 section 12.5.3), for a body in another.
    pub fn unsupported_encoding(message: impl Into<String>, accepted: &'static str) -> Self {
        Self {
            header: Some(("accept-encoding", accepted)),
            ..Self::new(501, message)
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    /// 503, with `Retry-After`: what was asked for exists but cannot be had
    /// now (a model that failed to load, or that has no room to load).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut builder = Response::builder();
        builder
            .status(self.status)
            .header("content-type", "application/json");
        if let Some((name, value)) = self.header {
            builder.header(name, value);
        }
        if self.status == 503 {
            builder.header("retry-after", "1");
        }
        builder.body(body).build()
    }
}

/// A JSON answer.
pub fn json_response(status: u16, body: &[u8]) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .build()
}
