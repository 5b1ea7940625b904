//! Conversions between hyper's bodies and the body type wasi:http uses.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiBody;

/// A complete body from bytes.
pub fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A streaming body from a hyper connection.
pub fn incoming(body: Incoming) -> WasiBody {
    body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync()
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("cannot read the request body: {0}")]
    Read(String),
}

/// Reads a whole body, refusing it past `limit` bytes or `timeout`.
pub async fn read_limited(
    body: WasiBody,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(error)) => Err(BodyError::Read(error.to_string())),
    }
}
