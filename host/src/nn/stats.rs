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

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The counters of one version, behind one lock so that a snapshot is of
/// whole executions (a client that reads them while requests run, as
/// perf_analyzer does, finds the inferences to be the executions times the
/// batch): one uncontended lock per compute costs nothing beside the compute.
#[derive(Debug, Default)]
pub struct InferenceStats(Mutex<StatsSnapshot>);

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
        // Counters only: a panic elsewhere cannot leave them half-written.
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.last_inference_ms = s.last_inference_ms.max(now_ms);
        if execution.succeeded {
            s.success.add(execution.total);
            s.inference_count += execution.batch;
            s.execution_count += 1;
        } else {
            s.fail.add(execution.total);
        }
        s.compute_input.add(execution.input);
        let StatsSnapshot {
            queue,
            compute_infer,
            compute_output,
            ..
        } = &mut *s;
        for (stat, spent) in [
            (queue, execution.queue),
            (compute_infer, execution.infer),
            (compute_output, execution.output),
        ] {
            if let Some(spent) = spent {
                stat.add(spent);
            }
        }
    }

    /// What the counters say now.
    pub fn snapshot(&self) -> StatsSnapshot {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationStat {
    pub count: u64,
    pub nanos: u64,
}

impl DurationStat {
    fn add(&mut self, spent: Duration) {
        self.count += 1;
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.nanos = self.nanos.saturating_add(nanos);
    }
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
