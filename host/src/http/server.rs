//! The HTTP/1.1 server: accepts connections and hands each request to the
//! [`App`], or answers it itself: its own endpoints ([`HOST_PATHS`]), and
//! every request while the application is still loading.
//!
//! The server listens before the application is loaded, so that a probe
//! sees it live but not ready (and a client gets 503 with `Retry-After`,
//! not a refused connection) while models load and components compile.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiBody;

use super::access_log::Arrival;
use super::body;
use super::connection::{ConnectionTimeouts, InFlight, TimedIo, TrackedBody};
use crate::app::{App, AppOptions};
use crate::health::{Health, STILL_LOADING};
use crate::json_error;
use crate::limits::Limits;
use crate::metrics::{self, Metrics};

/// A request head past this many times `max_header_bytes` is refused by the
/// HTTP parser itself (431, without a body), before it is buffered whole;
/// below that the answer is a 431 with a JSON error.
const HEAD_PARSER_SLACK: usize = 4;

/// The parser's own limit on a head (see [`HEAD_PARSER_SLACK`]). It
/// saturates: a limit past what memory can hold is no tighter than that.
fn head_parser_limit(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_mul(HEAD_PARSER_SLACK).max(8192)
}

/// The paths the host answers itself, before any route: a manifest route to
/// the same path is shadowed (`wasi-infer check` says so).
pub const HOST_PATHS: [&str; 3] = ["/metrics", "/health/live", "/health/ready"];

/// What the server serves: the application once it is loaded, and the
/// metrics and health it reports from the start.
pub struct Frontend {
    app: OnceLock<Arc<App>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Frontend {
    /// A front for the application `options` will load; [`Frontend::set_app`]
    /// completes it.
    pub fn loading(options: &AppOptions) -> Self {
        Self {
            app: OnceLock::new(),
            limits: options.limits.clone(),
            metrics: options.metrics.clone(),
            health: options.health.clone(),
        }
    }

    /// A front for an application already loaded.
    pub fn ready(app: Arc<App>) -> Self {
        let frontend = Self {
            app: OnceLock::new(),
            limits: app.limits.clone(),
            metrics: app.metrics.clone(),
            health: app.health.clone(),
        };
        frontend.set_app(app);
        frontend
    }

    /// The application is loaded: requests go to it from now on.
    pub fn set_app(&self, app: Arc<App>) {
        // An App is loaded (and its health says so) by the time it exists.
        let _ = self.app.set(app);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves (see [`run`]).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run(Arc::new(Frontend::ready(app)), listener, shutdown).await
}

/// Serves `frontend` on `listener` until `shutdown` resolves; then reports
/// not ready while it keeps serving for the limits' drain delay (so a load
/// balancer stops sending before connections are refused), stops accepting,
/// and lets in-flight requests finish, for at most the shutdown grace.
pub async fn run(
    frontend: Arc<Frontend>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = frontend.limits.clone();
    let acceptor = Acceptor::new(frontend.clone());
    acceptor.serve_until(&listener, shutdown).await;
    frontend.health.set_draining();
    if !limits.drain_delay.is_zero() {
        tracing::info!(
            drain_delay_ms = limits.drain_delay.as_millis() as u64,
            "shutting down: not ready, still serving while the load balancer lets go"
        );
        acceptor
            .serve_until(&listener, tokio::time::sleep(limits.drain_delay))
            .await;
    }
    // New clients are refused from here on; idle keep-alive connections close.
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, acceptor.graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {grace:?}");
    }
    Ok(())
}

/// Accepts connections and serves them, each watched for the graceful
/// shutdown.
struct Acceptor {
    frontend: Arc<Frontend>,
    http: http1::Builder,
    timeouts: ConnectionTimeouts,
    connections: Arc<Semaphore>,
    graceful: GracefulShutdown,
}

impl Acceptor {
    fn new(frontend: Arc<Frontend>) -> Self {
        let limits = &frontend.limits;
        let mut http = http1::Builder::new();
        http.keep_alive(true)
            .timer(TokioTimer::new())
            // From when hyper starts waiting for a head (a new connection, or
            // one gone idle after an answer) until the head is whole: this also
            // closes idle keep-alive connections (see `connection`, which keeps
            // the write and idle timeouts hyper does not).
            .header_read_timeout(limits.client_timeout)
            .max_header_size(head_parser_limit(limits.max_header_bytes));
        let timeouts = ConnectionTimeouts::new(limits);
        // `Limits::check` refuses more than a semaphore can count; an embedder
        // that did not check gets the most there can be, not a panic.
        let connections = Arc::new(Semaphore::new(
            limits.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        Self {
            frontend,
            http,
            timeouts,
            connections,
            graceful: GracefulShutdown::new(),
        }
    }

    /// Accepts and serves connections until `stop` resolves.
    async fn serve_until(&self, listener: &TcpListener, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            // At the connection limit, stop accepting: clients wait in the backlog.
            let connection_slot = tokio::select! {
                permit = self.connections.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => return,
                },
                () = &mut stop => return,
            };
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // E.g. out of file descriptors: wait a little rather than spin.
                        tracing::warn!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => return,
            };
            let _ = stream.set_nodelay(true);
            let frontend = self.frontend.clone();
            let in_flight = InFlight::default();
            let io = TimedIo::new(stream, self.timeouts, in_flight.clone());
            let service = service_fn(move |request| {
                // Entered before the request's future first runs, and left when
                // its answer has been handed to hyper whole or it is dropped.
                let request_in_flight = in_flight.enter();
                let frontend = frontend.clone();
                async move {
                    let response = handle(frontend, request, client).await?;
                    Ok::<_, Infallible>(
                        response.map(|body| TrackedBody::new(body, request_in_flight)),
                    )
                }
            });
            let connection = self
                .graceful
                .watch(self.http.serve_connection(TokioIo::new(io), service));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%client, "connection closed: {error}");
                }
                drop(connection_slot);
            });
        }
    }
}

async fn handle(
    frontend: Arc<Frontend>,
    request: hyper::Request<hyper::body::Incoming>,
    client: SocketAddr,
) -> Result<http::Response<WasiBody>, Infallible> {
    let path = request.uri().path();
    let head = head_size(&request);
    let host_path = HOST_PATHS.iter().find(|p| **p == path).copied();
    let app = match frontend.app.get() {
        Some(app) if head <= frontend.limits.max_header_bytes && host_path.is_none() => app,
        // The application logs and counts its own requests.
        _ => return Ok(frontend.answer_itself(request, head, host_path).await),
    };
    Ok(app.handle(request.map(body::incoming), Some(client)).await)
}

impl Frontend {
    /// The requests the host answers without the application.
    async fn answer_itself(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
        head: usize,
        host_path: Option<&'static str>,
    ) -> http::Response<WasiBody> {
        let arrival = Arrival::of(&request);
        // Like every early answer, after what the client sends (see body::linger).
        body::linger(&mut body::incoming(request.into_body())).await;
        let (route, response) = if head > self.limits.max_header_bytes {
            let error = json_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "the request head has {head} bytes; the limit is {}",
                    self.limits.max_header_bytes
                ),
            );
            ("unmatched", error)
        } else if let Some(path) = host_path {
            (path, self.host_endpoint(arrival.method(), path))
        } else {
            // Only while loading: from then on the application answers.
            let mut error = json_error(StatusCode::SERVICE_UNAVAILABLE, STILL_LOADING);
            error
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            ("unmatched", error)
        };
        arrival.answered(&self.metrics, route, "", response)
    }

    /// Why requests cannot be served now, if they cannot. The application
    /// says it is loaded a moment before it is handed over here.
    fn not_ready(&self) -> Option<&'static str> {
        match self.app.get() {
            None => Some(STILL_LOADING),
            Some(_) => self.health.not_ready_reason(),
        }
    }

    /// `/metrics` and the health checks.
    fn host_endpoint(&self, method: &Method, path: &str) -> http::Response<WasiBody> {
        if method != Method::GET && method != Method::HEAD {
            let mut error = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} answers GET, not {method}"),
            );
            error
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return error;
        }
        let json = |status: StatusCode, value: serde_json::Value| {
            http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body::full(value.to_string().into()))
                .expect("a static status and header make a valid response")
        };
        match path {
            "/metrics" => http::Response::builder()
                .header(http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)
                .body(body::full(self.metrics.render().into()))
                .expect("a static header makes a valid response"),
            "/health/live" => json(StatusCode::OK, serde_json::json!({ "live": true })),
            _ => match self.not_ready() {
                None => json(StatusCode::OK, serde_json::json!({ "ready": true })),
                Some(reason) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "ready": false, "error": reason }),
                ),
            },
        }
    }
}

/// The size of a request's head as sent: request line and header lines.
fn head_size<B>(request: &hyper::Request<B>) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |pq| pq.as_str().len());
    // "METHOD target HTTP/1.1\r\n"
    let line = request.method().as_str().len() + target + 12;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_parser_limit_saturates() {
        assert_eq!(head_parser_limit(64 << 10), 256 << 10);
        assert_eq!(head_parser_limit(16), 8192);
        assert_eq!(head_parser_limit(usize::MAX), usize::MAX);
    }
}
