//! Who runs next: at most `max_running` instances run at once; up to
//! `max_waiting` more requests wait their turn, in order, for at most
//! `max_wait`; the rest are turned away at once (503 with `Retry-After`), so
//! no queue grows without bound.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;

pub struct Admission {
    running: Arc<Semaphore>,
    /// Requests waiting now; it is also `wasi_infer_requests_waiting`.
    waiting: Gauge,
    max_waiting: usize,
    max_wait: Duration,
}

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("the server is busy: {0} requests are already waiting")]
    QueueFull(usize),
    #[error("the server is busy: no instance came free within {0:?}")]
    WaitedTooLong(Duration),
    #[error("the server is shutting down")]
    Closed,
}

impl Admission {
    /// `waiting` counts the requests waiting (a metric's gauge).
    pub fn new(limits: &Limits, waiting: Gauge) -> Self {
        Self {
            running: Arc::new(Semaphore::new(limits.max_running.max(1))),
            waiting,
            max_waiting: limits.max_waiting,
            max_wait: limits.max_wait,
        }
    }

    /// Waits for a running slot. The semaphore is fair: requests run in the
    /// order they came.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        // The fast path: a free slot, no waiting.
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = usize::try_from(self.waiting.inc()).unwrap_or(0);
        let _leave = Leave(&self.waiting);
        if waiting >= self.max_waiting {
            return Err(Busy::QueueFull(waiting));
        }
        match tokio::time::timeout(self.max_wait, self.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(Busy::Closed),
            Err(_elapsed) => Err(Busy::WaitedTooLong(self.max_wait)),
        }
    }

    /// Requests waiting now.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        usize::try_from(self.waiting.get()).unwrap_or(0)
    }
}

/// Leaves the waiting room however the wait ends (also when the client's
/// future is dropped).
struct Leave<'a>(&'a Gauge);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_waiting: usize, max_wait_ms: u64) -> Admission {
        Admission::new(
            &Limits {
                max_running: 1,
                max_waiting,
                max_wait: Duration::from_millis(max_wait_ms),
                ..Limits::default()
            },
            Gauge::default(),
        )
    }

    #[tokio::test]
    async fn a_full_waiting_room_turns_requests_away_at_once() {
        let admission = Arc::new(admission(1, 10_000));
        let running = admission.admit().await.unwrap();
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await.map(drop) }
        });
        while admission.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(admission.admit().await.unwrap_err(), Busy::QueueFull(1));
        drop(running);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test]
    async fn a_wait_is_bounded() {
        let admission = admission(8, 20);
        let _running = admission.admit().await.unwrap();
        assert_eq!(
            admission.admit().await.unwrap_err(),
            Busy::WaitedTooLong(Duration::from_millis(20))
        );
        assert_eq!(admission.waiting(), 0);
    }
}
