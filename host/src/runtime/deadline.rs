//! Stopping a function at its deadline.
//!
//! Two ways a function can overstay, two defences:
//! - It runs wasm and never returns (a loop). Compiled code checks the engine's
//!   epoch; a ticker thread advances it every [`TICK`]. At each tick the
//!   function yields to the async runtime (so a loop cannot starve the other
//!   requests on its thread) and, once its deadline has passed, traps.
//! - It waits in a host call (a sleep, a stream that never ends, an
//!   inference on an inference thread). No wasm runs, so no epoch check
//!   happens: the worker's expiration, a timer polled from outside the
//!   instance, drops the instance at the same deadline, and with it the host
//!   call (an inference is cancelled, see `nn::threads`).
//!
//! A client that goes away stops its instance the same two ways.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::handler::{WorkerExpiration, WorkerStatus};

use super::state::{Failure, HostState, InstanceReport};

/// How often running functions are interrupted: the resolution of deadlines
/// and the longest a looping function holds its thread before it yields.
const TICK: Duration = Duration::from_millis(10);

/// Advances `engine`'s epoch every [`TICK`], until the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasi-infer-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
    if let Err(error) = spawned {
        // Without the ticker a looping function would never be interrupted.
        panic!("cannot start the epoch ticker thread: {error}");
    }
}

/// A function ran past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the function ran past its deadline of {0:?}")]
pub struct DeadlineExceeded(pub Duration);

/// The host stopped the function for another reason (its client went away).
#[derive(Debug, thiserror::Error)]
#[error("the function was stopped")]
pub struct Stopped;

/// Makes the store's wasm yield at every tick and trap once `deadline` has
/// passed, recording why for the answer to the client.
pub fn interrupt_at(store: &mut Store<HostState>, timeout: Duration, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |store| {
        let report = &store.data().report;
        if Instant::now() >= deadline {
            report.stop_for(Failure::Deadline);
            return Err(DeadlineExceeded(timeout).into());
        }
        if report.stop.is_cancelled() {
            return Err(Stopped.into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
}

/// Expires an instance at its deadline, or when the host stops it, for a
/// function that waits in a host call (see the module's documentation).
pub struct Expiry {
    timer: Pin<Box<tokio::time::Sleep>>,
    stopped: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    report: Arc<InstanceReport>,
}

impl Expiry {
    pub fn at(deadline: Instant, report: Arc<InstanceReport>) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep_until(deadline.into())),
            stopped: Box::pin(report.stop.clone().cancelled()),
            report,
        }
    }

    /// The same deadline, as a future (what the request's caller is told).
    pub fn future(deadline: Instant) -> impl Future<Output = ()> + Send + Sync + 'static {
        tokio::time::sleep_until(deadline.into())
    }
}

impl WorkerExpiration for Expiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        _start: Instant,
    ) -> Poll<()> {
        let expired = self.timer.as_mut().poll(cx);
        if expired.is_ready() {
            if status != WorkerStatus::Idle {
                self.report.stop_for(Failure::Deadline);
            }
            return Poll::Ready(());
        }
        self.stopped.as_mut().poll(cx)
    }
}
