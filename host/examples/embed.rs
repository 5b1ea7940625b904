//! Embeds wasi-infer in another Rust program: loads the example application and
//! classifies one image in-process, with no HTTP server or socket.
//!
//! ```text
//! cargo run --release --example embed -- tests/data/images/chelsea.png
//! ```

use anyhow::Context;
use http_body_util::BodyExt;
use wasi_infer::{App, AppOptions, request_body};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let image = std::env::args()
        .nth(1)
        .context("usage: embed <image file> [model]")?;
    let model = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "efficientnet-lite0".into());
    let bytes = std::fs::read(&image).with_context(|| format!("cannot read {image}"))?;

    let app = App::load(&AppOptions::new("spin.toml"))?;
    let request =
        http::Request::post(format!("/classify/{model}?top_k=3")).body(request_body(bytes))?;
    let response = app.handle(request, None).await;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("{status} {}", String::from_utf8_lossy(&body));
    Ok(())
}
