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

/// How much of a refused body is read and discarded before the answer.
const LINGER_BYTES: usize = 64 << 20;
/// How long a refused body is read and discarded before the answer.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads a whole body, refusing it past `limit` bytes or `timeout`.
pub async fn read_limited(
    mut body: WasiBody,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    let read = async {
        let mut bytes = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > limit {
                    linger(&mut body).await;
                    return Err(BodyError::TooLarge { limit });
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(bytes.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut(timeout)))
}

/// Reads and discards what is left of a refused body, for a while (as
/// nginx's lingering close does): a connection closed with unread data is
/// reset, and a client still sending would never read its 413.
pub async fn linger(body: &mut WasiBody) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => drained += frame.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
}
