//! A small pool of backend objects that run one inference at a time (ONNX
//! Runtime sessions, OpenVINO infer requests): a request takes a free one, so
//! requests on one model run in parallel up to the pool's size.
//!
//! A pool may start with only some of its items and be filled while it serves
//! (ONNX Runtime builds its extra sessions after start-up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use wasmtime_wasi_nn::backend::BackendError;

use super::tensor::invalid;

pub struct Pool<T> {
    /// Filled in order: the items that exist are a prefix.
    items: Vec<OnceLock<Mutex<T>>>,
    next: AtomicUsize,
}

impl<T> Pool<T> {
    /// A pool of the given items; there must be at least one.
    pub fn new(items: Vec<T>) -> Result<Self, String> {
        let capacity = items.len();
        let mut items = items.into_iter();
        let first = items
            .next()
            .ok_or_else(|| "a pool needs at least one item".to_string())?;
        let pool = Self::starting_with(first, capacity);
        for item in items {
            let _ = pool.add(item);
        }
        Ok(pool)
    }

    /// A pool with room for `capacity` items, of which only `first` exists yet.
    pub fn starting_with(first: T, capacity: usize) -> Self {
        let items: Vec<OnceLock<Mutex<T>>> =
            (0..capacity.max(1)).map(|_| OnceLock::new()).collect();
        let _ = items[0].set(Mutex::new(first));
        Self {
            items,
            next: AtomicUsize::new(0),
        }
    }

    /// Puts `item` in the first empty place; gives it back when the pool is full.
    pub fn add(&self, item: T) -> Result<(), T> {
        let mut item = Mutex::new(item);
        for slot in &self.items {
            match slot.set(item) {
                Ok(()) => return Ok(()),
                Err(back) => item = back,
            }
        }
        Err(item
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The items that exist now.
    fn ready(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.items.iter().map_while(OnceLock::get)
    }

    /// A free item if there is one, else waits for one in turn (round robin,
    /// so waiters spread over the pool).
    pub fn get(&self) -> Result<MutexGuard<'_, T>, BackendError> {
        for item in self.ready() {
            if let Ok(guard) = item.try_lock() {
                return Ok(guard);
            }
        }
        let ready = self.ready().count();
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % ready;
        self.ready()
            .nth(turn)
            .expect("the first item always exists")
            .lock()
            .map_err(|_| invalid("an earlier inference on this model panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_grows_to_its_capacity_and_hands_out_free_items() {
        let pool = Pool::starting_with(1, 3);
        let first = pool.get().unwrap();
        assert_eq!(*first, 1);
        assert!(pool.add(2).is_ok());
        // The first is taken: the new one is handed out.
        assert_eq!(*pool.get().unwrap(), 2);
        drop(first);
        assert!(pool.add(3).is_ok());
        assert_eq!(pool.add(4), Err(4), "full");
        assert_eq!(pool.ready().count(), 3);
        assert!(Pool::<u8>::new(Vec::new()).is_err());
    }
}
