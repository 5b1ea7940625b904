//! One deployment's run: every item sent, `concurrency` requests in flight
//! (each worker thread sends one at a time on its own kept-alive
//! connection), each request timed from sending to the whole answer read.
//! An item's preparation (reading, encoding, preprocessing) happens before
//! its clock starts: the latency is the server's and the network's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::client::{Client, ModelInfo};
use super::dataset::Dataset;

/// How a run is shown while it goes (a progress bar, log lines, nothing).
pub trait Progress: Sync {
    /// A deployment's run begins: `total` items.
    fn start(&self, label: &str, total: usize);
    /// One more item is done (answered or failed).
    fn advance(&self);
    /// The run is over.
    fn finish(&self);
}

/// Shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: usize) {}
    fn advance(&self) {}
    fn finish(&self) {}
}

/// An item the server classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// Its classes, best first (at most [`super::client::TOP_K`]).
    pub ranked: Vec<usize>,
    pub latency: Duration,
}

/// What a run gives: one result per item, in the dataset's order.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The item's answer, or why it has none (the server's status and
    /// message, a connection error, an image that cannot be read).
    pub results: Vec<Result<Answered, String>>,
    /// From the first request sent to the last answer read.
    pub wall: Duration,
    pub concurrency: usize,
}

/// Sends every item of `dataset` to `client`, `concurrency` at a time.
pub fn run(
    client: &Client,
    info: &ModelInfo,
    dataset: &Dataset,
    concurrency: usize,
    label: &str,
    progress: &dyn Progress,
) -> RunOutcome {
    let items = &dataset.items;
    let concurrency = concurrency.clamp(1, items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Answered, String>>>> = Mutex::new(vec![None; items.len()]);
    progress.start(label, items.len());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = match dataset.image(item) {
                        None => Err("the dataset has no image for this item".to_string()),
                        Some(image) => client
                            .prepare(info, image)
                            // Said apart from the server's errors: this
                            // item never left.
                            .map_err(|e| format!("not sent: {e}"))
                            .and_then(|prepared| {
                                let sent = Instant::now();
                                let ranked = client.classify(info, &prepared)?;
                                Ok(Answered {
                                    ranked,
                                    latency: sent.elapsed(),
                                })
                            }),
                    };
                    if let Ok(mut results) = results.lock() {
                        results[index] = Some(result);
                    }
                    progress.advance();
                }
            });
        }
    });
    let wall = started.elapsed();
    progress.finish();
    let results = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("no answer was recorded".to_string())))
        .collect();
    RunOutcome {
        results,
        wall,
        concurrency,
    }
}
