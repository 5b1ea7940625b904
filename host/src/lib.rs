//! wasi-infer: serverless WebAssembly inference functions.
//!
//! A Spin-style application (`spin.toml`) of WASI HTTP components that run
//! models through wasi-nn, served by wasmtime with native backends.
//!
//! - [`manifest`]: reads `spin.toml`; [`routing`]: which component a path goes to.
//! - [`runtime`]: the engine, pre-instantiated components, a fresh instance per request.
//! - [`nn`]: the model repository and the backends behind wasi-nn.
//! - [`app`]: all of the above, ready to [`App::handle`] a request in-process.
//! - [`limits`]: every bound on what a request or a function may use.
//! - [`http`]: the HTTP server around an [`App`] (connections, bodies,
//!   admission), with `/metrics`, health checks and the request log.
//! - [`metrics`], [`health`]: what the server tells operators.
//! - [`edge`]: pre-initialised components, and an application as one bundle.
//! - [`eval`]: evaluates a deployed image classifier over HTTP (`wasi-infer eval`).
//! - [`scaffold`]: a new function from a template (`wasi-infer new`).
//!
//! Embedding, without a socket:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use wasi_infer::{App, AppOptions, request_body};
//! let app = App::load(&AppOptions::new("spin.toml"))?;
//! let request = http::Request::post("/classify/efficientnet-lite0")
//!     .body(request_body(std::fs::read("cat.png")?))?;
//! let response = app.handle(request, None).await;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```

pub mod app;
pub mod edge;
pub mod eval;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod nn;
pub mod runtime;
pub mod scaffold;
pub mod variables;

/// The manifest (and its routes), in a crate of its own: free of any runtime,
/// so that tools and the fuzzer can parse manifests cheaply.
pub use wasi_infer_manifest::{self as manifest, routing};

pub use app::{App, AppError, AppOptions, LoadObserver, LoadStep, request_body};
pub use limits::Limits;
pub use nn::BackendKind;

use ::http::StatusCode;
use wasmtime_wasi_http::WasiBody;

/// A `{"error": "..."}` response, the shape of every error the host answers.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> ::http::Response<WasiBody> {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    ::http::Response::builder()
        .status(status)
        .header(::http::header::CONTENT_TYPE, "application/json")
        .body(http::body::full(body.into()))
        .expect("a static status and header make a valid response")
}
