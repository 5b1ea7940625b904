//! Does what a test asks of the host, as a spin-sdk 5 function meets it:
//!
//! - `GET /...?url=<url>` sends `GET <url>` with spin-sdk's `http::send`
//!   (`wasi:http/outgoing-handler@0.2`) and answers what came back:
//!   `{"status": 200, "body": "..."}`, or, when the host refused or the
//!   request failed, 502 with `{"error": "<the wasi:http error code>"}`;
//! - `GET /...?file=<guest path>` answers `{"text": "..."}` with the file's
//!   text, or 404 with `{"error": "..."}` (its `files`).

use spin_sdk::http::{Request, Response, send};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> Response {
    let param = |name: &str| {
        request
            .query()
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(percent_decode)
    };
    if let Some(path) = param("file") {
        return match std::fs::read_to_string(&path) {
            Ok(text) => answer(200, serde_json::json!({ "text": text })),
            Err(e) => answer(404, serde_json::json!({ "error": format!("{path}: {e}") })),
        };
    }
    let Some(url) = param("url") else {
        return answer(400, serde_json::json!({ "error": "give ?url= or ?file=" }));
    };
    match send::<_, Response>(Request::get(&url)).await {
        Ok(response) => {
            let body = String::from_utf8_lossy(response.body()).into_owned();
            answer(
                200,
                serde_json::json!({ "status": response.status(), "body": body }),
            )
        }
        Err(error) => answer(502, serde_json::json!({ "error": format!("{error:?}") })),
    }
}

fn answer(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// `%3A` and friends, so a test can pass any URL in the query.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
