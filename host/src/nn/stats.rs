//! Per-version inference statistics, as the Open Inference Protocol's
//! statistics extension (Triton's `GET /v2/models/<name>/stats`) reports
//! them: how many inferences and executions, how many succeeded or failed
//! and how long they took, and where the time went.
//!
//! They are counted where wasi-nn's `compute` meets a model (see
//! [`crate::nn::wit`]), so they are the host's view of the model: a request
//! refused by a function before it computes is not counted, and one request
//! that computes twice counts two executions. The phases:
//! - `queue`: waiting for an inference thread (`--inference-threads`);
//! - `compute_input`: the host taking the guest's input tensors and checking
//!   them against the model and its bounds;
//! - `compute_infer`: the backend running the model (binding the inputs
//!   to its own tensors included);
//! - `compute_output`: handing the outputs to the guest.
//!
//! `success` and `fail` time each `compute` call whole. The counters are
//! kept by the store per version, so they survive a version's eviction and
//! reload, and start again at zero for a version whose files change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count and the time spent, in nanoseconds.
#[derive(Debug, Default)]
struct Tally {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    fn add(&self, spent: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn read(&self) -> DurationStat {
        DurationStat {
            count: self.count.load(Ordering::Relaxed),
            nanos: self.nanos.load(Ordering::Relaxed),
        }
    }
}

/// The counters of one version.
#[derive(Debug, Default)]
pub struct InferenceStats {
    /// Milliseconds since the Unix epoch of the last inference; 0 for none.
    last_inference_ms: AtomicU64,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    success: Tally,
    fail: Tally,
    queue: Tally,
    compute_input: Tally,
    compute_infer: Tally,
    compute_output: Tally,
}

/// One `compute` call, as [`InferenceStats::record`] counts it.
#[derive(Debug, Clone, Copy)]
pub struct Execution {
    /// The inferences it ran: the batch, for a model with a batch dimension.
    pub batch: u64,
    pub succeeded: bool,
    pub total: Duration,
    /// The phases; `None` for one it did not reach.
    pub queue: Option<Duration>,
    pub input: Duration,
    pub infer: Option<Duration>,
    pub output: Option<Duration>,
}

impl InferenceStats {
    pub fn record(&self, execution: Execution) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_inference_ms.fetch_max(now_ms, Ordering::Relaxed);
        if execution.succeeded {
            self.success.add(execution.total);
            self.inference_count
                .fetch_add(execution.batch, Ordering::Relaxed);
            self.execution_count.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fail.add(execution.total);
        }
        self.compute_input.add(execution.input);
        let phases = [
            (&self.queue, execution.queue),
            (&self.compute_infer, execution.infer),
            (&self.compute_output, execution.output),
        ];
        for (tally, spent) in phases {
            if let Some(spent) = spent {
                tally.add(spent);
            }
        }
    }

    /// What the counters say now (each counter read on its own: a snapshot
    /// taken while inferences run may be one inference apart between them).
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            last_inference_ms: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            success: self.success.read(),
            fail: self.fail.read(),
            queue: self.queue.read(),
            compute_input: self.compute_input.read(),
            compute_infer: self.compute_infer.read(),
            compute_output: self.compute_output.read(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationStat {
    pub count: u64,
    pub nanos: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub last_inference_ms: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub success: DurationStat,
    pub fail: DurationStat,
    pub queue: DurationStat,
    pub compute_input: DurationStat,
    pub compute_infer: DurationStat,
    pub compute_output: DurationStat,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn successes_count_inferences_and_failures_only_the_phases_they_reached() {
        let stats = InferenceStats::default();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
        stats.record(Execution {
            batch: 4,
            succeeded: true,
            total: ms(10),
            queue: Some(ms(1)),
            input: ms(2),
            infer: Some(ms(6)),
            output: Some(ms(1)),
        });
        // Refused by the bounds before it queued.
        stats.record(Execution {
            batch: 1,
            succeeded: false,
            total: ms(3),
            queue: None,
            input: ms(3),
            infer: None,
            output: None,
        });
        let s = stats.snapshot();
        assert!(s.last_inference_ms > 0);
        assert_eq!((s.inference_count, s.execution_count), (4, 1));
        let stat = |count, n: u64| DurationStat {
            count,
            nanos: n * 1_000_000,
        };
        assert_eq!(s.success, stat(1, 10));
        assert_eq!(s.fail, stat(1, 3));
        assert_eq!(s.queue, stat(1, 1));
        assert_eq!(s.compute_input, stat(2, 5));
        assert_eq!(s.compute_infer, stat(1, 6));
        assert_eq!(s.compute_output, stat(1, 1));
    }
}
