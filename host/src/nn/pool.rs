//! A small pool of backend objects that run one inference at a time (ONNX
//! Runtime sessions, OpenVINO infer requests): a request takes a free one, so
//! requests on one model run in parallel up to the pool's size.
//!
//! - Requests that find none free wait their turn, first come first served,
//!   for as long as their inference is wanted (see [`Cancel`]).
//! - A pool may start with only some of its items and be filled while it
//!   serves (ONNX Runtime builds its extra sessions after start-up).
//! - An item whose inference panicked is not handed out again: it may be in
//!   any state. Nor is one [`PoolItem::retire`]d (an OpenVINO request whose
//!   inference was cancelled). Either is built anew, by the pool's
//!   `rebuild`, when a request next needs it.

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime_wasi_nn::backend::BackendError;

use super::cancel::Cancel;
use super::tensor::invalid;

/// How often a waiting request looks whether it is still wanted.
const CANCEL_CHECK: Duration = Duration::from_millis(10);

pub type Rebuild<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

pub struct Pool<T> {
    state: Mutex<State<T>>,
    freed: Condvar,
    capacity: usize,
    rebuild: Option<Rebuild<T>>,
}

struct State<T> {
    free: Vec<T>,
    /// Items that exist now, free or in use.
    existing: usize,
    /// Items lost (panicked, retired) and not yet rebuilt.
    lost: usize,
    /// The tickets of the requests waiting, oldest first.
    waiting: BTreeSet<u64>,
    next_ticket: u64,
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
        Self {
            state: Mutex::new(State {
                free: vec![first],
                existing: 1,
                lost: 0,
                waiting: BTreeSet::new(),
                next_ticket: 0,
            }),
            freed: Condvar::new(),
            capacity: capacity.max(1),
            rebuild: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // The state is consistent at every unlock: a panic elsewhere while
        // the lock was held changes nothing here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool, building items anew with `rebuild` in place of lost ones.
    pub fn with_rebuild(mut self, rebuild: Rebuild<T>) -> Self {
        self.rebuild = Some(rebuild);
        self
    }

    /// Adds `item`; gives it back when the pool is full.
    pub fn add(&self, item: T) -> Result<(), T> {
        let mut state = self.state();
        if state.existing >= self.capacity {
            return Err(item);
        }
        state.existing += 1;
        state.free.push(item);
        drop(state);
        self.freed.notify_all();
        Ok(())
    }

    /// A free item, waiting in turn for one while `cancel` has not fired.
    pub fn get(&self, cancel: &Cancel) -> Result<PoolItem<'_, T>, BackendError> {
        self.restore_lost()?;
        let mut state = self.state();
        if state.waiting.is_empty()
            && let Some(item) = state.free.pop()
        {
            return Ok(PoolItem::new(self, item));
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.insert(ticket);
        loop {
            if cancel.is_cancelled() {
                state.waiting.remove(&ticket);
                drop(state);
                // The next in line may be able to go now.
                self.freed.notify_all();
                return Err(invalid(
                    "the inference was cancelled while it waited for the model",
                ));
            }
            if state.existing == 0 {
                state.waiting.remove(&ticket);
                return Err(invalid("the model has no runner left to run on"));
            }
            if state.waiting.first() == Some(&ticket)
                && let Some(item) = state.free.pop()
            {
                state.waiting.remove(&ticket);
                let more = !state.free.is_empty();
                drop(state);
                if more {
                    self.freed.notify_all();
                }
                return Ok(PoolItem::new(self, item));
            }
            state = self
                .freed
                .wait_timeout(state, CANCEL_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Builds items anew in place of lost ones, outside the lock.
    fn restore_lost(&self) -> Result<(), BackendError> {
        let Some(rebuild) = &self.rebuild else {
            return Ok(());
        };
        loop {
            {
                let mut state = self.state();
                if state.lost == 0 {
                    return Ok(());
                }
                state.lost -= 1;
            }
            match rebuild() {
                Ok(item) => {
                    let _ = self.add(item);
                }
                Err(error) => {
                    let mut state = self.state();
                    state.lost += 1;
                    if state.existing == 0 {
                        return Err(invalid(format!(
                            "cannot rebuild the model's runner: {error}"
                        )));
                    }
                    drop(state);
                    tracing::warn!("cannot rebuild a runner, serving with fewer: {error}");
                    return Ok(());
                }
            }
        }
    }

    fn give_back(&self, item: T) {
        self.state().free.push(item);
        self.freed.notify_all();
    }

    fn lose(&self, item: T) {
        drop(item);
        let mut state = self.state();
        state.existing -= 1;
        state.lost += 1;
    }

    /// Items that exist now.
    #[cfg(test)]
    fn existing(&self) -> usize {
        self.state().existing
    }
}

/// An item taken from a pool, given back when dropped.
pub struct PoolItem<'a, T> {
    pool: &'a Pool<T>,
    item: Option<T>,
}

impl<'a, T> PoolItem<'a, T> {
    fn new(pool: &'a Pool<T>, item: T) -> Self {
        Self {
            pool,
            item: Some(item),
        }
    }

    /// Drops the item instead of giving it back; the pool builds another.
    pub fn retire(mut self) {
        if let Some(item) = self.item.take() {
            self.pool.lose(item);
        }
    }
}

impl<T> Deref for PoolItem<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.item.as_ref().expect("an item is there until dropped")
    }
}

impl<T> DerefMut for PoolItem<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("an item is there until dropped")
    }
}

impl<T> Drop for PoolItem<'_, T> {
    fn drop(&mut self) {
        let Some(item) = self.item.take() else { return };
        if std::thread::panicking() {
            // Its inference panicked: it may be in any state.
            self.pool.lose(item);
        } else {
            self.pool.give_back(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_pool_grows_to_its_capacity_and_hands_out_free_items() {
        let pool = Pool::starting_with(1, 3);
        let cancel = Cancel::new();
        let first = pool.get(&cancel).unwrap();
        assert_eq!(*first, 1);
        assert!(pool.add(2).is_ok());
        // The first is taken: the new one is handed out.
        assert_eq!(*pool.get(&cancel).unwrap(), 2);
        drop(first);
        assert!(pool.add(3).is_ok());
        assert_eq!(pool.add(4), Err(4), "full");
        assert_eq!(pool.existing(), 3);
        assert!(Pool::<u8>::new(Vec::new()).is_err());
    }

    #[test]
    fn waiters_are_served_in_order_and_a_cancelled_wait_ends() {
        let pool = Arc::new(Pool::starting_with(0u32, 1));
        let held = pool.get(&Cancel::new()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..4 {
            waiters.push(std::thread::spawn({
                let (pool, order) = (pool.clone(), order.clone());
                move || {
                    let item = pool.get(&Cancel::new()).unwrap();
                    order.lock().unwrap().push(n);
                    drop(item);
                }
            }));
            // Each waits before the next comes.
            while pool.state().waiting.len() < n + 1 {
                std::thread::yield_now();
            }
        }
        let cancel = Cancel::new();
        let late = {
            let (pool, cancel) = (pool.clone(), cancel.clone());
            std::thread::spawn(move || pool.get(&cancel).map(drop).is_err())
        };
        cancel.cancel();
        assert!(late.join().unwrap(), "a cancelled wait gives up");
        drop(held);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn an_item_whose_inference_panicked_is_rebuilt() {
        let built = Arc::new(AtomicUsize::new(0));
        let rebuild: Rebuild<usize> = Box::new({
            let built = built.clone();
            move || Ok(100 + built.fetch_add(1, Ordering::SeqCst))
        });
        let pool = Arc::new(Pool::new(vec![1]).unwrap().with_rebuild(rebuild));
        let panicked = std::thread::spawn({
            let pool = pool.clone();
            move || {
                let _item = pool.get(&Cancel::new()).unwrap();
                panic!("inference failed");
            }
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(pool.existing(), 0);
        assert_eq!(*pool.get(&Cancel::new()).unwrap(), 100, "built anew");
        pool.get(&Cancel::new()).unwrap().retire();
        assert_eq!(*pool.get(&Cancel::new()).unwrap(), 101);
        assert_eq!(pool.existing(), 1);
    }
}
