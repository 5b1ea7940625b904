//! Liveness and readiness: the server is live as soon as it listens, and
//! ready once every component and every model that loads at start-up is
//! loaded (models loaded on demand do not count), until it begins to shut
//! down (so that a load balancer stops sending before the listener closes).

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::gauge::Gauge;

/// Why a server is not ready while it loads.
pub const STILL_LOADING: &str = "the server is still loading its models and components";

#[derive(Debug, Default)]
pub struct Health {
    loaded: AtomicBool,
    draining: AtomicBool,
    /// `wasi_infer_ready`, kept in step.
    gauge: Gauge,
}

impl Health {
    /// `gauge` follows readiness (see [`crate::metrics::Metrics::ready_gauge`]).
    pub fn new(gauge: Gauge) -> Self {
        Self {
            gauge,
            ..Self::default()
        }
    }

    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// Why the server is not ready, if it is not.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Acquire) {
            Some("the server is shutting down")
        } else if !self.loaded.load(Ordering::Acquire) {
            Some(STILL_LOADING)
        } else {
            None
        }
    }

    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
        self.update_gauge();
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.update_gauge();
    }

    fn update_gauge(&self) {
        self.gauge.set(i64::from(self.is_ready()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_between_loading_and_draining() {
        let gauge = Gauge::default();
        let health = Health::new(gauge.clone());
        assert!(!health.is_ready());
        assert!(health.not_ready_reason().unwrap().contains("loading"));
        health.set_loaded();
        assert!(health.is_ready() && health.not_ready_reason().is_none());
        assert_eq!(gauge.get(), 1);
        health.set_draining();
        assert!(!health.is_ready());
        assert!(health.not_ready_reason().unwrap().contains("shutting down"));
        assert_eq!(gauge.get(), 0);
    }
}
