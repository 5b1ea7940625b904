//! One log line and one count per answered request, and the request's id.
//!
//! The id is the client's `X-Request-Id` when it sends a sensible one (a
//! proxy in front usually does), otherwise a new one; either way it goes to
//! the function in the request, back to the client in the response, and
//! into the log line, so one request can be followed through all three.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::metrics::Metrics;

pub const REQUEST_ID: &str = "x-request-id";

/// The status logged for a request whose client left before its answer.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request as it arrived: what its log line will need.
pub struct Arrival {
    method: http::Method,
    path: String,
    started: Instant,
    /// The request's id (see [`request_id`]).
    pub id: HeaderValue,
}

impl Arrival {
    pub fn of<B>(request: &http::Request<B>) -> Self {
        Self {
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            started: Instant::now(),
            id: request_id(request.headers()),
        }
    }

    pub fn method(&self) -> &http::Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records a request whose client went away before its answer, with
    /// nginx's status for it, 499 ("client closed request").
    pub fn abandoned(self, metrics: &Metrics, route: &str, component: &str) {
        self.record(metrics, route, component, CLIENT_CLOSED_REQUEST);
    }

    fn record(&self, metrics: &Metrics, route: &str, component: &str, status: u16) {
        record(
            metrics,
            &Answered {
                method: &self.method,
                path: &self.path,
                route,
                component,
                status,
                took: self.started.elapsed(),
                request_id: self.id.to_str().unwrap_or_default(),
            },
        );
    }

    /// Counts and logs the answer (`route` and `component` as in [`Answered`])
    /// and gives it the request's id.
    pub fn answered<B>(
        self,
        metrics: &Metrics,
        route: &str,
        component: &str,
        mut response: http::Response<B>,
    ) -> http::Response<B> {
        self.record(metrics, route, component, response.status().as_u16());
        response.headers_mut().insert(REQUEST_ID, self.id);
        response
    }
}

/// What became of one request.
pub struct Answered<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    /// The manifest's route, the host's own path, or `unmatched` (see [`Metrics::request`]).
    pub route: &'a str,
    /// The component that answered; empty when the host answered.
    pub component: &'a str,
    pub status: u16,
    pub took: Duration,
    pub request_id: &'a str,
}

/// Counts the request in `metrics` and logs its line. The host's own paths
/// answered well (a health probe, a metrics scrape) are logged at debug
/// level: under Kubernetes and Prometheus they come every few seconds and
/// would be most of the log; their failures (503 while loading or draining)
/// stay at info.
pub fn record(metrics: &Metrics, answered: &Answered<'_>) {
    metrics.request(
        answered.route,
        answered.component,
        answered.status,
        answered.took,
    );
    let routine =
        answered.component.is_empty() && answered.route == answered.path && answered.status < 400;
    let path = shortened(answered.path);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "wasi_infer::request",
                method = %answered.method,
                path = path.as_ref(),
                route = answered.route,
                component = answered.component,
                status = answered.status,
                ms = (answered.took.as_secs_f64() * 1e6).round() / 1e3,
                request_id = answered.request_id,
                "request"
            )
        };
    }
    if routine {
        line!(debug);
    } else {
        line!(info);
    }
}

/// The longest path a log line holds whole: a client may send up to the
/// head limit (64 KiB) of it, which a log collector need not store.
const LOGGED_PATH_BYTES: usize = 512;

/// The path, cut at [`LOGGED_PATH_BYTES`] with its length noted.
fn shortened(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= LOGGED_PATH_BYTES {
        return path.into();
    }
    let mut cut = LOGGED_PATH_BYTES;
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &path[..cut], path.len()).into()
}

/// The request's id: the client's, if it is 1 to 128 visible ASCII
/// characters of a safe kind, or a new one.
pub fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    let given = headers.get(REQUEST_ID).filter(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
    });
    match given {
        Some(value) => value.clone(),
        None => HeaderValue::from_str(&new_id()).expect("hex digits are a valid header value"),
    }
}

/// 16 hex digits, unique within the process and unlikely to repeat across
/// restarts: a counter, scrambled with a seed taken from the clock and the pid.
fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", splitmix64(seed.wrapping_add(n)))
}

/// A bijection on u64 that scatters consecutive inputs (Steele et al.'s SplitMix64).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_in_the_log() {
        assert_eq!(shortened("/classify/m"), "/classify/m");
        let long = format!("/classify/{}", "é".repeat(3000));
        let cut = shortened(&long);
        assert!(cut.len() < LOGGED_PATH_BYTES + 32, "{}", cut.len());
        assert!(cut.ends_with(&format!("({} bytes)", long.len())), "{cut}");
    }

    #[test]
    fn a_sensible_client_id_is_kept_and_others_replaced() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        let replaced = request_id(&headers);
        assert_eq!(replaced.len(), 16);
        headers.clear();
        let (a, b) = (request_id(&headers), request_id(&headers));
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
