//! Conversions between hyper's bodies and the body type wasi:http uses.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiBody;

use super::body_budget::{BudgetExhausted, Reservation};

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
    /// The server's budget of buffered bodies had no room in time.
    #[error(transparent)]
    Busy(#[from] BudgetExhausted),
}

/// How much of a refused body is read and discarded before the answer.
const LINGER_BYTES: usize = 64 << 20;
/// How long a refused body is read and discarded before the answer.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads a whole body into `reservation`'s bytes, refusing it past `limit`
/// bytes, when the budget has no room, or when the client has taken
/// `timeout` to send it. Time spent waiting for the budget is the server's,
/// not the client's: it does not count against `timeout`. `expected` is
/// the declared length, if any, so the buffer is allocated once.
pub async fn read_limited(
    mut body: WasiBody,
    limit: usize,
    timeout: std::time::Duration,
    reservation: &mut Reservation<'_>,
    expected: Option<usize>,
) -> Result<Bytes, BodyError> {
    let mut bytes = bytes::BytesMut::with_capacity(expected.unwrap_or(0).min(limit));
    let mut client_time_left = timeout;
    loop {
        let asked = std::time::Instant::now();
        let frame = tokio::time::timeout(client_time_left, body.frame())
            .await
            .map_err(|_| BodyError::TimedOut(timeout))?;
        client_time_left = client_time_left.saturating_sub(asked.elapsed());
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let total = bytes.len().saturating_add(data.len());
        if total > limit {
            linger(&mut body).await;
            return Err(BodyError::TooLarge { limit });
        }
        if let Err(busy) = reservation.grow_to(total).await {
            linger(&mut body).await;
            return Err(busy.into());
        }
        bytes.extend_from_slice(data);
    }
    Ok(bytes.freeze())
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
