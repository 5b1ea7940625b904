//! Where a request goes: the application's routes (each to a component or a
//! static response), and the components reached in-process by the
//! application's own requests (`self.alt` and `<id>.spin.internal`, see
//! [`crate::runtime::outbound`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiBody;

use crate::http::body;
use crate::json_error;
use crate::manifest::{Manifest, ManifestError, Route, RouteTarget, StaticResponse};
use crate::routing::{RouteMatch, Router};
use crate::runtime::outbound::InProcessFuture;
use crate::runtime::{ComponentRuntime, InProcess, InProcessTarget};

/// What answers a route.
pub(crate) enum Answer {
    Component(Arc<ComponentRuntime>),
    Static(Prepared),
}

/// A static response, checked at start-up.
pub(crate) struct Prepared {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl Prepared {
    fn new(
        manifest: &Manifest,
        key: &str,
        response: &StaticResponse,
    ) -> Result<Self, ManifestError> {
        let invalid = |problem: String| manifest.error(format!("{key}.static_response"), problem);
        let status = StatusCode::from_u16(response.status)
            .map_err(|_| invalid(format!("{} is not an HTTP status code", response.status)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &response.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid(format!("{name:?} is not a header name")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| invalid(format!("{value:?} is not a valid value of {name}")))?;
            headers.append(name, value);
        }
        Ok(Self {
            status,
            headers,
            body: bytes::Bytes::from(response.body.clone()),
        })
    }

    pub fn response(&self) -> http::Response<WasiBody> {
        let mut response = http::Response::new(body::full(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

pub(crate) struct Routes {
    router: Router,
    /// What answers each public route, in the router's order.
    answers: Vec<Answer>,
    /// Each public route as written (`/classify/...`), for metrics and logs.
    labels: Vec<String>,
    /// Components that answer a trigger, public or private, with their
    /// route's label: what `<id>.spin.internal` reaches.
    triggered: HashMap<String, (Arc<ComponentRuntime>, String)>,
    /// `[application.trigger.http] base`, told to components.
    base: String,
    /// Running slots for in-process requests: the pool's instances beyond
    /// those kept for clients' requests (a caller holds its own slot while
    /// it waits, so sharing the clients' would let callers starve callees).
    nested: Arc<Semaphore>,
}

impl Routes {
    pub fn new(
        manifest: &Manifest,
        components: &[Arc<ComponentRuntime>],
        nested_slots: usize,
    ) -> Result<Self, ManifestError> {
        let component = |id: &str| {
            components
                .iter()
                .find(|c| c.id == id)
                .cloned()
                .expect("the manifest checks that every route names a component")
        };
        let mut patterns = Vec::new();
        let mut answers = Vec::new();
        let mut labels = Vec::new();
        let mut triggered = HashMap::new();
        for (i, route) in manifest.routes.iter().enumerate() {
            if let RouteTarget::Component(id) = &route.target {
                triggered
                    .entry(id.clone())
                    .or_insert_with(|| (component(id), route.label()));
            }
            let Route::Path(pattern) = &route.route else {
                continue;
            };
            patterns.push(pattern.clone());
            labels.push(pattern.as_route());
            answers.push(match &route.target {
                RouteTarget::Component(id) => Answer::Component(component(id)),
                RouteTarget::Static(response) => Answer::Static(Prepared::new(
                    manifest,
                    &format!("trigger.http[{i}]"),
                    response,
                )?),
            });
        }
        Ok(Self {
            router: Router::new(patterns),
            answers,
            labels,
            triggered,
            base: manifest.base.clone(),
            nested: Arc::new(Semaphore::new(nested_slots.max(1))),
        })
    }

    pub fn route<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        self.router.route(path)
    }

    pub fn answer(&self, index: usize) -> &Answer {
        &self.answers[index]
    }

    pub fn label(&self, index: usize) -> &str {
        &self.labels[index]
    }

    /// The component id of a route, empty for a static response.
    pub fn component_id(&self, index: usize) -> &str {
        match &self.answers[index] {
            Answer::Component(c) => &c.id,
            Answer::Static(_) => "",
        }
    }

    /// The request with Spin's route headers (see [`spin_headers`]).
    pub fn with_spin_headers(
        &self,
        request: http::Request<WasiBody>,
        matched: &RouteMatch<'_>,
        client: Option<SocketAddr>,
    ) -> Result<http::Request<WasiBody>, String> {
        spin_headers(
            request,
            SpinRoute {
                route: matched.route,
                path_info: matched.path_info,
                params: &matched.params,
                base: &self.base,
            },
            client,
        )
    }

    async fn send_in_process(
        self: Arc<Self>,
        target: InProcessTarget,
        request: http::Request<WasiBody>,
        depth: u8,
    ) -> Result<http::Response<WasiBody>, wasmtime_wasi_http::Error> {
        let path = request.uri().path().to_string();
        let (component, request) = match &target {
            InProcessTarget::Routes => {
                let Some(matched) = self.router.route(&path) else {
                    return Ok(json_error(
                        StatusCode::NOT_FOUND,
                        format!("no route for {path}"),
                    ));
                };
                match &self.answers[matched.index] {
                    Answer::Static(response) => return Ok(response.response()),
                    Answer::Component(component) => {
                        let request = self.with_spin_headers(request, &matched, None);
                        (component.clone(), request)
                    }
                }
            }
            InProcessTarget::Component(id) => {
                let Some((component, label)) = self.triggered.get(id) else {
                    tracing::info!(component = %id, "in-process request to no such component");
                    return Err(wasmtime_wasi_http::Error::DestinationNotFound);
                };
                let route = SpinRoute {
                    route: label,
                    path_info: &path,
                    params: &[],
                    base: &self.base,
                };
                (component.clone(), spin_headers(request, route, None))
            }
        };
        let request = match request {
            Ok(request) => request,
            Err(problem) => return Ok(json_error(StatusCode::BAD_REQUEST, problem)),
        };
        let Ok(running) = self.nested.clone().try_acquire_owned() else {
            return Ok(super::retry_later(format!(
                "function {} is busy: every instance slot for in-process requests is taken",
                component.id
            )));
        };
        tracing::debug!(component = %component.id, %path, depth, "in-process request");
        Ok(match component.handle(request, running, depth).await {
            Ok(response) => response,
            Err(error) => super::failure_response(&component, error),
        })
    }
}

impl InProcess for Routes {
    fn send(
        self: Arc<Self>,
        target: InProcessTarget,
        request: http::Request<WasiBody>,
        depth: u8,
    ) -> InProcessFuture {
        Box::pin(self.send_in_process(target, request, depth))
    }
}

/// What Spin tells a component about the route that reached it.
struct SpinRoute<'a> {
    route: &'a str,
    path_info: &'a str,
    params: &'a [(&'a str, &'a str)],
    base: &'a str,
}

/// Makes the URI absolute (wasi:http wants scheme and authority) and adds the
/// headers Spin gives components about their route.
fn spin_headers(
    request: http::Request<WasiBody>,
    route: SpinRoute<'_>,
    client: Option<SocketAddr>,
) -> Result<http::Request<WasiBody>, String> {
    let (mut parts, body) = request.into_parts();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(path_and_query.as_str())
        .build()
        .map_err(|e| format!("invalid request URI: {e}"))?;

    let value = |v: &str| HeaderValue::from_str(v).map_err(|e| format!("invalid header: {e}"));
    let headers = &mut parts.headers;
    let raw_route = route.route;
    headers.insert(
        "spin-full-url",
        value(&format!("http://{authority}{path_and_query}"))?,
    );
    headers.insert("spin-path-info", value(route.path_info)?);
    headers.insert("spin-matched-route", value(raw_route)?);
    headers.insert("spin-raw-component-route", value(raw_route)?);
    headers.insert(
        "spin-component-route",
        value(raw_route.strip_suffix("/...").unwrap_or(raw_route))?,
    );
    headers.insert("spin-base-path", value(route.base)?);
    for (name, param) in route.params {
        let name = HeaderName::try_from(format!("spin-path-match-{}", name.to_ascii_lowercase()))
            .map_err(|e| format!("invalid route parameter {name:?}: {e}"))?;
        headers.insert(name, value(param)?);
    }
    if let Some(client) = client {
        headers.insert("spin-client-addr", value(&client.to_string())?);
    }
    Ok(http::Request::from_parts(parts, body))
}
