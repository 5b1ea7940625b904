//! The host as a library: an application handles a request in-process.

use http_body_util::BodyExt;
use wasi_infer::{App, AppOptions, BackendKind, request_body};

use crate::server::{photo, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_app_classifies_in_process() {
    let options = AppOptions {
        backend: Some(BackendKind::Tract),
        ..AppOptions::new(root().join("spin.toml"))
    };
    let app = tokio::task::spawn_blocking(move || App::load(&options))
        .await
        .unwrap()
        .expect("the example application loads");
    let request = http::Request::post("/classify/efficientnet-lite0-int8?top_k=1")
        .body(request_body(photo("coffee.png")))
        .unwrap();
    let response = app.handle(request, None).await;
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["predictions"][0]["index"], 967, "{json}");

    let request = http::Request::get("/missing")
        .body(request_body(""))
        .unwrap();
    assert_eq!(app.handle(request, None).await.status(), 404);
}
