//! Native inference on threads of its own.
//!
//! A function's `compute` hands its inference to these threads and waits
//! for the answer without blocking: its instance yields, so its deadline (and
//! a client that goes away) can stop it while the backend computes, and the
//! backend runs on a full native stack, not on the guest's fiber stack (where
//! a deep native call would overflow and kill the process).
//!
//! The threads are as many as the instances that may run at once, and take
//! work in the order it comes. Work whose requester is gone before it starts
//! is skipped; work cancelled while it runs is stopped by its backend where
//! the backend can stop (see [`super::cancel`]), and otherwise keeps its
//! thread until it ends, so abandoned work never takes more cores than
//! running requests could.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::cancel::{Cancel, CancelOnDrop};
use super::runner::Runner;
use super::tensor::invalid;

/// Native stack of an inference thread: backends recurse in their graph
/// optimisers; 8 MiB is what a process's main thread gets on Linux.
const STACK_BYTES: usize = 8 << 20;

type Job = Box<dyn FnOnce() + Send>;

/// The pool of inference threads, shared by every model of an application.
pub struct InferenceThreads {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl InferenceThreads {
    /// Starts `threads` inference threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Arc<Self>> {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("wasi-infer-nn-{i}"))
                .stack_size(STACK_BYTES)
                .spawn(move || {
                    loop {
                        // One waiting thread holds the lock; the others queue on it.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            // The pool was dropped: no more work.
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Arc::new(Self {
            queue: Mutex::new(Some(sender)),
        }))
    }

    /// Runs `inputs` through `runner` on an inference thread. Dropping the
    /// returned future, or firing `stop`, cancels the inference.
    /// Runs `runner` on `inputs` on one of the threads, and says how long
    /// the work waited for a thread and how long it ran (for the statistics).
    pub async fn run(
        &self,
        runner: Arc<dyn Runner>,
        inputs: Vec<NamedTensor>,
        stop: &Cancel,
    ) -> Timed {
        let cancel = Cancel::new();
        let _follow = cancel.follow(stop);
        let on_drop = CancelOnDrop::new(cancel.clone());
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = Instant::now();
        let job: Job = Box::new(move || {
            if cancel.is_cancelled() {
                return;
            }
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| runner.run(inputs, &cancel)));
            let outcome = outcome.unwrap_or_else(|panic| {
                Err(invalid(format!(
                    "the backend panicked: {}",
                    panic_message(panic.as_ref())
                )))
            });
            let _ = answer.send(Timed {
                outcome,
                queued: Some(started - queued),
                ran: Some(started.elapsed()),
            });
        });
        let sent = match self.queue.lock() {
            Ok(queue) => queue.as_ref().is_some_and(|q| q.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Timed::unrun(invalid("the inference threads have stopped"));
        }
        let timed = answered.await;
        on_drop.disarm();
        timed.unwrap_or_else(|_| Timed::unrun(invalid("the inference was cancelled")))
    }
}

/// An inference's outcome, and how long it waited for a thread and ran:
/// `None` for a step it never reached.
pub struct Timed {
    pub outcome: Result<Vec<NamedTensor>, BackendError>,
    pub queued: Option<Duration>,
    pub ran: Option<Duration>,
}

impl Timed {
    pub fn unrun(error: BackendError) -> Self {
        Self {
            outcome: Err(error),
            queued: None,
            ran: None,
        }
    }
}

impl Drop for InferenceThreads {
    fn drop(&mut self) {
        // Closing the queue ends the threads once their work is done.
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::interface::ModelInterface;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// Runs until cancelled (checking every millisecond), or panics.
    struct Stubborn {
        interface: ModelInterface,
        panic: bool,
        stopped: Arc<AtomicBool>,
    }

    impl Runner for Stubborn {
        fn interface(&self) -> &ModelInterface {
            &self.interface
        }

        fn run(
            &self,
            _inputs: Vec<NamedTensor>,
            cancel: &Cancel,
        ) -> Result<Vec<NamedTensor>, BackendError> {
            assert!(!self.panic, "a backend bug");
            let started = Instant::now();
            while !cancel.is_cancelled() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.stopped.store(true, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }

    fn stubborn(panic: bool) -> (Arc<dyn Runner>, Arc<AtomicBool>) {
        let stopped = Arc::new(AtomicBool::new(false));
        let runner = Stubborn {
            interface: ModelInterface::default(),
            panic,
            stopped: stopped.clone(),
        };
        (Arc::new(runner), stopped)
    }

    #[tokio::test]
    async fn a_dropped_request_stops_its_inference_and_a_panic_is_an_error() {
        let threads = InferenceThreads::start(1).unwrap();
        let (runner, stopped) = stubborn(false);
        let stop = Cancel::new();
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            threads.run(runner, Vec::new(), &stop),
        )
        .await;
        assert!(waited.is_err(), "still running at the timeout");
        let started = Instant::now();
        while !stopped.load(Ordering::SeqCst) {
            assert!(started.elapsed() < Duration::from_secs(5), "not cancelled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let (runner, _) = stubborn(true);
        let error = threads
            .run(runner, Vec::new(), &stop)
            .await
            .outcome
            .err()
            .unwrap();
        assert!(message(error).contains("the backend panicked: a backend bug"));
        // The thread survived its panic; work stopped before it starts is skipped.
        let (runner, stopped) = stubborn(false);
        stop.cancel();
        let error = threads
            .run(runner, Vec::new(), &stop)
            .await
            .outcome
            .err()
            .unwrap();
        assert!(message(error).contains("cancelled"));
        assert!(!stopped.load(Ordering::SeqCst));
    }

    fn message(error: BackendError) -> String {
        match error {
            BackendError::BackendAccess(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}
