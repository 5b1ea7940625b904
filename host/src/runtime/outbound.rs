//! Outbound HTTP: the requests a component sends (`wasi:http/outgoing-handler`
//! in WASIp2, `wasi:http/handler` in WASIp3, and spin-sdk's `http::send` over
//! either), allowed only to the destinations of its `allowed_outbound_hosts`
//! (see [`OutboundPolicy`]), with Spin's semantics:
//!
//! - `http://self.alt/...` (or host `self`) goes to the application's own
//!   routes, in-process, when `self` (or `self.alt`) is allowed;
//! - `http://<component>.spin.internal/...` goes to that component, in-process
//!   (its route may be private), when the host is allowed
//!   (`http://*.spin.internal`, or the component's own name);
//! - any other destination goes over the network when allowed.
//!
//! Everything else gets `HttpRequestDenied`, the error spin-sdk and wasi:http
//! guests expect. A request counts against its function's deadline (its
//! timeouts are cut to what is left), a response body is bounded, and
//! in-process requests nest at most [`MAX_DEPTH`] deep.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::manifest::outbound::{OutboundPolicy, SERVICE_CHAINING_SUFFIX};

/// How deep in-process requests may nest (a function calling itself, or two
/// calling each other, stop here with `LoopDetected`).
pub const MAX_DEPTH: u8 = 8;

/// Where an in-process request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InProcessTarget {
    /// The application's own routes, by path (`self.alt`).
    Routes,
    /// One component, whatever its route (`<id>.spin.internal`).
    Component(String),
}

/// A boxed in-process answer.
pub type InProcessFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send>>;

/// The application, as its components reach it in-process.
pub trait InProcess: Send + Sync {
    /// Serves `request` (at nesting `depth`) without a network hop.
    fn send(
        self: Arc<Self>,
        target: InProcessTarget,
        request: http::Request<WasiBody>,
        depth: u8,
    ) -> InProcessFuture;
}

/// Set once the application is built: its components are built before it,
/// so they hold this link rather than the application itself (and do not
/// keep it alive).
#[derive(Clone, Default)]
pub struct AppLink(Arc<OnceLock<Weak<dyn InProcess>>>);

impl AppLink {
    pub fn connect(&self, app: Weak<dyn InProcess>) {
        let _ = self.0.set(app);
    }

    fn get(&self) -> Option<Arc<dyn InProcess>> {
        self.0.get()?.upgrade()
    }
}

/// A component's outbound settings, shared by its instances.
#[derive(Clone)]
pub struct OutboundConfig {
    pub policy: Arc<OutboundPolicy>,
    pub app: AppLink,
    /// The most bytes of a response body a component may read.
    pub max_response_bytes: u64,
}

/// An instance's outbound state: [`WasiHttpHooks`] for its `wasi:http` calls.
pub struct Outbound {
    config: OutboundConfig,
    /// When the instance's function must have answered.
    deadline: Instant,
    /// How many in-process requests led to this instance.
    pub(crate) depth: u8,
}

impl Outbound {
    pub fn new(config: OutboundConfig, deadline: Instant) -> Self {
        Self {
            config,
            deadline,
            depth: 0,
        }
    }

    /// What to do with a request to `uri`, or why it is refused.
    fn route(&self, uri: &http::Uri) -> Result<Destination, HttpError> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host() else {
            return Err(HttpError::HttpRequestUriInvalid);
        };
        let host = host.to_ascii_lowercase();
        let policy = &self.config.policy;
        let allowed = if host == "self" || host == "self.alt" {
            policy
                .allows_self(&scheme)
                .then_some(Destination::InProcess(InProcessTarget::Routes))
        } else if let Some(id) = host.strip_suffix(SERVICE_CHAINING_SUFFIX) {
            policy
                .allows(&scheme, &host, uri.port_u16())
                .then(|| Destination::InProcess(InProcessTarget::Component(id.to_string())))
        } else {
            policy
                .allows(&scheme, &host, uri.port_u16())
                .then_some(Destination::Network)
        };
        allowed.ok_or_else(|| {
            tracing::info!(%uri, "outbound request denied: not in allowed_outbound_hosts");
            HttpError::HttpRequestDenied
        })
    }
}

enum Destination {
    Network,
    InProcess(InProcessTarget),
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let destination = self.route(request.uri());
        let left = self.deadline.saturating_duration_since(Instant::now());
        let limit = self.config.max_response_bytes;
        let app = self.config.app.get();
        let depth = self.depth;
        Box::new(async move {
            let no_io = || Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>;
            if left.is_zero() {
                return Err(HttpError::ConnectionTimeout);
            }
            let response = match destination? {
                Destination::InProcess(target) => {
                    if depth >= MAX_DEPTH {
                        return Err(HttpError::LoopDetected);
                    }
                    let app = app.ok_or(HttpError::DestinationUnavailable)?;
                    let sent = app.send(target, request, depth + 1);
                    tokio::time::timeout(left, sent)
                        .await
                        .map_err(|_| HttpError::HttpResponseTimeout)??
                }
                Destination::Network => {
                    let options = within(options.unwrap_or_default(), left);
                    let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
                    let (response, io) = tokio::time::timeout(left, sent)
                        .await
                        .map_err(|_| HttpError::ConnectionTimeout)??;
                    // The connection's own task: it ends with the response.
                    tokio::spawn(async move {
                        if let Err(error) = io.await {
                            tracing::debug!("outbound connection ended: {error}");
                        }
                    });
                    response.map(http_body_util::BodyExt::boxed_unsync)
                }
            };
            let response = response.map(|body| {
                http_body_util::BodyExt::boxed_unsync(Bounded {
                    inner: body,
                    left: limit,
                    limit,
                })
            });
            Ok((response, no_io()))
        })
    }
}

/// No outbound request at all: for running a component outside a request
/// (pre-initialisation), where no allow-list applies.
pub struct DenyAll;

impl WasiHttpHooks for DenyAll {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

/// The request's own timeouts, none longer than the time its function has left.
fn within(options: RequestOptions, left: Duration) -> RequestOptions {
    let cut = |t: Option<Duration>| Some(t.map_or(left, |t| t.min(left)));
    RequestOptions {
        connect_timeout: cut(options.connect_timeout),
        first_byte_timeout: cut(options.first_byte_timeout),
        between_bytes_timeout: cut(options.between_bytes_timeout),
    }
}

/// A response body that fails with `HttpResponseBodySize` past `limit` bytes.
struct Bounded {
    inner: WasiBody,
    left: u64,
    limit: u64,
}

impl Body for Bounded {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let len = data.len() as u64;
            if len > self.left {
                self.left = 0;
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.limit)))));
            }
            self.left -= len;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::outbound::AllowedHost;

    fn outbound(allowed: &[&str]) -> Outbound {
        let hosts = allowed
            .iter()
            .map(|h| AllowedHost::parse(h).unwrap())
            .collect();
        Outbound::new(
            OutboundConfig {
                policy: Arc::new(OutboundPolicy::new(hosts)),
                app: AppLink::default(),
                max_response_bytes: 1 << 20,
            },
            Instant::now() + Duration::from_secs(5),
        )
    }

    fn target(o: &Outbound, uri: &str) -> Option<Option<InProcessTarget>> {
        match o.route(&uri.parse().unwrap()) {
            Ok(Destination::Network) => Some(None),
            Ok(Destination::InProcess(t)) => Some(Some(t)),
            Err(_) => None,
        }
    }

    #[test]
    fn destinations_follow_the_allow_list() {
        let o = outbound(&[
            "http://127.0.0.1:8080",
            "http://self",
            "http://*.spin.internal",
        ]);
        assert_eq!(target(&o, "http://127.0.0.1:8080/x"), Some(None));
        assert_eq!(target(&o, "http://127.0.0.1:8081/x"), None);
        assert_eq!(target(&o, "https://127.0.0.1:8080/x"), None);
        assert_eq!(
            target(&o, "http://self.alt/classify/m"),
            Some(Some(InProcessTarget::Routes))
        );
        assert_eq!(
            target(&o, "http://back.spin.internal/"),
            Some(Some(InProcessTarget::Component("back".into())))
        );
        let none = outbound(&[]);
        assert_eq!(target(&none, "http://self.alt/"), None);
        assert_eq!(target(&none, "http://back.spin.internal/"), None);
        assert_eq!(target(&none, "http://127.0.0.1:8080/"), None);
    }
}
