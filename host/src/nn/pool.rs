//! A small pool of backend objects that run one inference at a time (ONNX
//! Runtime sessions, OpenVINO infer requests): a request takes a free one, so
//! requests on one model run in parallel up to the pool's size.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use wasmtime_wasi_nn::backend::BackendError;

use super::tensor::invalid;

pub struct Pool<T> {
    items: Vec<Mutex<T>>,
    next: AtomicUsize,
}

impl<T> Pool<T> {
    /// A pool of the given items; there must be at least one.
    pub fn new(items: Vec<T>) -> Result<Self, String> {
        if items.is_empty() {
            return Err("a pool needs at least one item".into());
        }
        Ok(Self {
            items: items.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// A free item if there is one, else waits for one in turn (round robin,
    /// so waiters spread over the pool).
    pub fn get(&self) -> Result<MutexGuard<'_, T>, BackendError> {
        for item in &self.items {
            if let Ok(guard) = item.try_lock() {
                return Ok(guard);
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.items.len();
        self.items[turn]
            .lock()
            .map_err(|_| invalid("an earlier inference on this model panicked"))
    }
}
