//! Answers with what it saw of the request, so a test can check that a
//! `wasi:http/handler@0.3` component gets the method, path, Spin route headers
//! (all of them, under `spin_headers`) and the streamed body.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let path_info = request
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Every header Spin gives about the route (spin-path-match-*, spin-base-path, ...).
    let spin_headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("spin-"))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value.into())
        })
        .collect();
    let body = match request.into_body().bytes().await {
        Ok(body) => body,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("cannot read body: {e:?}")).into_response();
        }
    };
    let description = serde_json::json!({
        "world": "wasi:http@0.3",
        "method": method,
        "path": path,
        "path_info": path_info,
        "body_bytes": body.len(),
        "spin_headers": spin_headers,
    });
    (StatusCode::OK, description.to_string()).into_response()
}
