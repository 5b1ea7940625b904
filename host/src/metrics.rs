//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.
//!
//! One [`Metrics`] per server. The parts of the host that do the work hold
//! handles to their own series (a component its instantiation histogram, a
//! model its compute histogram), so recording is an atomic add, with no
//! label lookup on the request path.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The manifest's route (`/classify/...`), the host's own path
    /// (`/metrics`), or `unmatched`: never the raw path, whose values are unbounded.
    route: String,
    /// The component that answered; empty when the host answered itself.
    component: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    model: String,
    /// `loaded` or `failed`; for unloads, why: `evicted`, `retired` (a
    /// reload replaced it), `unloaded` (the repository API), `removed`.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    model: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Whole requests: 1 ms to about 65 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Instantiation (microseconds with the pool) and inference: 10 µs to about 20 s.
fn step_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 22))
}

/// Every metric the host records.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    instantiation_seconds: HistogramFamily<ComponentLabels>,
    compute_seconds: HistogramFamily<ModelLabels>,
    instances_in_flight: Family<ComponentLabels, Gauge>,
    model_load_seconds: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    model_loads: Family<OutcomeLabels, Counter>,
    model_unloads: Family<OutcomeLabels, Counter>,
    model_loaded: Family<VersionLabels, Gauge>,
    model_resident_bytes: Family<VersionLabels, Gauge>,
    model_load_wait_seconds: HistogramFamily<NameLabels>,
    waiting: Gauge,
    ready: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasi_infer");
        let requests = Family::default();
        registry.register(
            "requests",
            "HTTP requests answered, by route, component and status",
            requests.clone(),
        );
        let request_seconds = HistogramFamily::new_with_constructor(request_buckets as fn() -> _);
        registry.register(
            "request_duration_seconds",
            "Time from a request's head to its answer's head, by route and component",
            request_seconds.clone(),
        );
        let instantiation_seconds =
            HistogramFamily::new_with_constructor(step_buckets as fn() -> _);
        registry.register(
            "instantiation_duration_seconds",
            "Time to create a component instance for a request",
            instantiation_seconds.clone(),
        );
        let compute_seconds = HistogramFamily::new_with_constructor(step_buckets as fn() -> _);
        registry.register(
            "compute_duration_seconds",
            "Time of one wasi-nn compute call, by model and backend",
            compute_seconds.clone(),
        );
        let instances_in_flight = Family::default();
        registry.register(
            "instances_in_flight",
            "Component instances alive now, by component",
            instances_in_flight.clone(),
        );
        let model_load_seconds = Family::default();
        registry.register(
            "model_load_duration_seconds",
            "Time the last load of each model took (for backend auto, the trials too)",
            model_load_seconds.clone(),
        );
        let model_loads = Family::default();
        registry.register(
            "model_loads",
            "Model loads, by model and outcome (loaded, failed)",
            model_loads.clone(),
        );
        let model_unloads = Family::default();
        registry.register(
            "model_unloads",
            "Model versions unloaded, by model and why (evicted: least recently used under \
             the memory budget; retired: replaced by a reload; unloaded: the repository API; \
             removed: its folder is gone)",
            model_unloads.clone(),
        );
        let model_loaded = Family::default();
        registry.register(
            "model_loaded",
            "1 while a model version is loaded, 0 once it is unloaded",
            model_loaded.clone(),
        );
        let model_resident_bytes = Family::default();
        registry.register(
            "model_resident_bytes",
            "What loading each model version grew the resident memory by (at least its files)",
            model_resident_bytes.clone(),
        );
        let model_load_wait_seconds =
            HistogramFamily::new_with_constructor(request_buckets as fn() -> _);
        registry.register(
            "model_load_wait_seconds",
            "Time requests waited for their model to load, by model",
            model_load_wait_seconds.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "requests_waiting",
            "Requests waiting for an instance to come free",
            waiting.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when every model and component is loaded and the server takes requests",
            ready.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            instantiation_seconds,
            compute_seconds,
            instances_in_flight,
            model_load_seconds,
            model_loads,
            model_unloads,
            model_loaded,
            model_resident_bytes,
            model_load_wait_seconds,
            waiting,
            ready,
        }
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Records an answered request.
    pub fn request(&self, route: &str, component: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                component: component.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                component: component.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The series of one component, for its instances to record into.
    pub fn component(&self, component: &str) -> ComponentMetrics {
        let labels = ComponentLabels {
            component: component.to_string(),
        };
        ComponentMetrics {
            instantiation_seconds: self.instantiation_seconds.get_or_create_owned(&labels),
            in_flight: self.instances_in_flight.get_or_create_owned(&labels),
        }
    }

    /// The compute histogram of a model on its backend, for wasi-nn to record into.
    pub fn compute(&self, model: &str, backend: &str) -> Histogram {
        self.compute_seconds.get_or_create_owned(&ModelLabels {
            model: model.to_string(),
            backend: backend.to_string(),
        })
    }

    /// A model version was loaded on `backend` in `took`, growing the
    /// resident memory by `bytes`.
    pub fn model_load(
        &self,
        model: &str,
        version: &str,
        backend: &str,
        took: Duration,
        bytes: u64,
    ) {
        self.model_load_seconds
            .get_or_create(&ModelLabels {
                model: model.to_string(),
                backend: backend.to_string(),
            })
            .set(took.as_secs_f64());
        self.model_loads
            .get_or_create(&OutcomeLabels {
                model: model.to_string(),
                outcome: "loaded".into(),
            })
            .inc();
        let labels = VersionLabels {
            model: model.to_string(),
            version: version.to_string(),
        };
        self.model_loaded.get_or_create(&labels).set(1);
        self.model_resident_bytes
            .get_or_create(&labels)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn model_load_failed(&self, model: &str) {
        self.model_loads
            .get_or_create(&OutcomeLabels {
                model: model.to_string(),
                outcome: "failed".into(),
            })
            .inc();
    }

    /// A model version was unloaded, for `why` (see [`OutcomeLabels`]).
    pub fn model_unload(&self, model: &str, version: &str, why: &str) {
        self.model_unloads
            .get_or_create(&OutcomeLabels {
                model: model.to_string(),
                outcome: why.to_string(),
            })
            .inc();
        let labels = VersionLabels {
            model: model.to_string(),
            version: version.to_string(),
        };
        self.model_loaded.get_or_create(&labels).set(0);
        self.model_resident_bytes.get_or_create(&labels).set(0);
    }

    /// A model version's load was replaced by a new load of it (its files
    /// changed): counted as retired; the gauges are the new load's.
    pub fn model_replaced(&self, model: &str) {
        self.model_unloads
            .get_or_create(&OutcomeLabels {
                model: model.to_string(),
                outcome: "retired".into(),
            })
            .inc();
    }

    /// A request waited `seconds` for `model` to load.
    pub fn model_load_waited(&self, model: &str, seconds: f64) {
        self.model_load_wait_seconds
            .get_or_create(&NameLabels {
                model: model.to_string(),
            })
            .observe(seconds);
    }

    /// The gauge of requests waiting for an instance.
    pub fn waiting(&self) -> Gauge {
        self.waiting.clone()
    }

    /// `wasi_infer_ready`, for [`crate::health::Health`] to keep in step.
    pub fn ready_gauge(&self) -> Gauge {
        self.ready.clone()
    }
}

/// One component's series.
#[derive(Clone)]
pub struct ComponentMetrics {
    pub instantiation_seconds: Histogram,
    pub in_flight: Gauge,
}

impl ComponentMetrics {
    /// Counts an instance in flight until the guard is dropped.
    pub fn instance(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }
}

/// An instance counted in `instances_in_flight`, until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let metrics = Metrics::new();
        metrics.request(
            "/classify/...",
            "image-classify",
            200,
            Duration::from_millis(12),
        );
        metrics.request("unmatched", "", 404, Duration::from_micros(80));
        let component = metrics.component("image-classify");
        let guard = component.instance();
        component.instantiation_seconds.observe(0.000_05);
        metrics.compute("m", "tract").observe(0.02);
        metrics.model_load("m", "1", "tract", Duration::from_millis(1500), 3 << 20);
        metrics.model_load_waited("m", 0.5);
        let text = metrics.render();
        for expected in [
            r#"wasi_infer_requests_total{route="/classify/...",component="image-classify",status="200"} 1"#,
            r#"wasi_infer_requests_total{route="unmatched",component="",status="404"} 1"#,
            r#"wasi_infer_request_duration_seconds_count{route="/classify/...",component="image-classify"} 1"#,
            r#"wasi_infer_instances_in_flight{component="image-classify"} 1"#,
            r#"wasi_infer_instantiation_duration_seconds_count{component="image-classify"} 1"#,
            r#"wasi_infer_compute_duration_seconds_count{model="m",backend="tract"} 1"#,
            r#"wasi_infer_model_load_duration_seconds{model="m",backend="tract"} 1.5"#,
            r#"wasi_infer_model_loads_total{model="m",outcome="loaded"} 1"#,
            r#"wasi_infer_model_loaded{model="m",version="1"} 1"#,
            r#"wasi_infer_model_resident_bytes{model="m",version="1"} 3145728"#,
            r#"wasi_infer_model_load_wait_seconds_count{model="m"} 1"#,
            "# EOF",
        ] {
            assert!(text.contains(expected), "{expected} not in:\n{text}");
        }
        drop(guard);
        assert!(
            metrics
                .render()
                .contains(r#"wasi_infer_instances_in_flight{component="image-classify"} 0"#)
        );
    }
}
