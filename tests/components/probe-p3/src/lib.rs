//! The WASIp3 twin of `probe-p2`, with spin-sdk 7:
//!
//! - `GET /...?url=<url>` sends `GET <url>` with `spin_sdk::http::send`
//!   (`wasi:http/handler@0.3`) and answers `{"status", "body"}`, or 502 with
//!   `{"error": "<the wasi:http error code>"}`;
//! - `GET /...?variable=<name>` answers `{"value": "..."}` from
//!   `spin:variables@3.0.0`, or 404 with `{"error": "..."}`.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    if let Some(name) = param("variable") {
        return match spin_sdk::variables::get(&name).await {
            Ok(value) => answer(StatusCode::OK, serde_json::json!({ "value": value })),
            Err(error) => answer(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": format!("{error:?}") }),
            ),
        };
    }
    let Some(url) = param("url") else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "give ?url= or ?variable=" }),
        );
    };
    let url = url.replace("%3A", ":").replace("%2F", "/");
    let outgoing = match spin_sdk::http::Request::get(&url).body(String::new()) {
        Ok(request) => request,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": e.to_string() }),
            );
        }
    };
    match spin_sdk::http::send(outgoing).await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.into_body().bytes().await {
                Ok(body) => answer(
                    StatusCode::OK,
                    serde_json::json!({ "status": status, "body": String::from_utf8_lossy(&body) }),
                ),
                Err(error) => answer(
                    StatusCode::BAD_GATEWAY,
                    serde_json::json!({ "error": format!("{error:?}") }),
                ),
            }
        }
        Err(error) => answer(
            StatusCode::BAD_GATEWAY,
            serde_json::json!({ "error": format!("{error:?}") }),
        ),
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> impl IntoResponse {
    (status, body.to_string())
}
