//! One budget of request-body bytes for all requests together
//! (`max_buffered_body_bytes`). Bodies are read whole before an instance is
//! taken; without a shared budget the memory they hold would be bounded only
//! by connections x body size (1024 x 16 MiB by default).
//!
//! A body reserves its bytes before it is stored: all of them up front when
//! it declares a `Content-Length`, else chunk by chunk as it streams in. A
//! body that cannot get its bytes waits for them (without reading from the
//! client, so TCP holds the client back) for at most `max_wait`, and is then
//! refused. The bytes go back to the budget when the [`Reservation`] is
//! dropped, once the request has been answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::{Limits, size_text};

/// The budget is counted in granules of this many bytes: a semaphore's
/// permits are taken at most `u32::MAX` at a time, which in bytes would be
/// only 4 GiB, and a granule keeps the counts small.
const GRANULE: usize = 1024;

// Any budget in granules fits a semaphore (which panics past MAX_PERMITS).
const _: () = assert!(usize::MAX / GRANULE < Semaphore::MAX_PERMITS);

pub struct BodyBudget {
    granules: Arc<Semaphore>,
    /// The whole budget, in granules: more can never be had.
    capacity: usize,
    /// The budget in bytes, as the operator set it (for messages).
    limit: usize,
    max_wait: Duration,
}

/// A body could not get its bytes from the budget in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server is buffering too many request bodies (--max-buffered-bodies {}); try again",
    size_text(*.limit)
)]
pub struct BudgetExhausted {
    /// The budget, in bytes.
    pub limit: usize,
}

impl BodyBudget {
    pub fn new(limits: &Limits) -> Self {
        let capacity = limits.max_buffered_body_bytes.div_ceil(GRANULE);
        Self {
            granules: Arc::new(Semaphore::new(capacity)),
            capacity,
            limit: limits.max_buffered_body_bytes,
            max_wait: limits.max_wait,
        }
    }

    /// An empty reservation, which grows as its body is read.
    pub fn reservation(&self) -> Reservation<'_> {
        Reservation {
            budget: self,
            held: None,
        }
    }

    /// Bytes of the budget not reserved now.
    #[cfg(test)]
    fn available_bytes(&self) -> usize {
        self.granules.available_permits() * GRANULE
    }
}

/// Bytes one body holds from the budget, given back when it is dropped.
pub struct Reservation<'a> {
    budget: &'a BodyBudget,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation<'_> {
    /// Granules held now.
    fn granules(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Makes the reservation cover `bytes` in all, waiting for the missing
    /// bytes at most the budget's `max_wait`; returns how long it waited.
    pub async fn grow_to(&mut self, bytes: usize) -> Result<Duration, BudgetExhausted> {
        let wanted = bytes.div_ceil(GRANULE);
        let exhausted = BudgetExhausted {
            limit: self.budget.limit,
        };
        if wanted > self.budget.capacity {
            return Err(exhausted);
        }
        let started = Instant::now();
        while self.granules() < wanted {
            // At most u32::MAX granules a time (tokio's count): a body past
            // 4 TiB takes several.
            let missing = wanted - self.granules();
            let chunk = u32::try_from(missing).unwrap_or(u32::MAX);
            let semaphore = self.budget.granules.clone();
            let permit = match semaphore.clone().try_acquire_many_owned(chunk) {
                Ok(permit) => permit,
                Err(_) => {
                    let left = self.budget.max_wait.saturating_sub(started.elapsed());
                    match tokio::time::timeout(left, semaphore.acquire_many_owned(chunk)).await {
                        Ok(Ok(permit)) => permit,
                        // Closed (never, in fact) or waited too long.
                        Ok(Err(_)) | Err(_) => return Err(exhausted),
                    }
                }
            };
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
        Ok(started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: usize, max_wait_ms: u64) -> BodyBudget {
        BodyBudget::new(&Limits {
            max_buffered_body_bytes: bytes,
            max_wait: Duration::from_millis(max_wait_ms),
            ..Limits::default()
        })
    }

    #[tokio::test]
    async fn bodies_share_the_budget_and_give_it_back() {
        let budget = budget(2 << 20, 20);
        let mut first = budget.reservation();
        first.grow_to(1_000_000).await.unwrap();
        let mut second = budget.reservation();
        // Chunk by chunk, as a body without a length streams in.
        for bytes in (0..=1_000_000).step_by(100_000) {
            second.grow_to(bytes).await.unwrap();
        }
        let mut third = budget.reservation();
        let refused = third.grow_to(1_000_000).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the server is buffering too many request bodies \
             (--max-buffered-bodies 2 MiB); try again"
        );
        drop(first);
        third.grow_to(1_000_000).await.unwrap();
        drop((second, third));
        assert_eq!(budget.available_bytes(), 2 << 20);
    }

    #[tokio::test]
    async fn a_body_waits_for_bytes_given_back() {
        let budget = Arc::new(budget(1 << 20, 5_000));
        let mut holder = budget.reservation();
        holder.grow_to(1 << 20).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reservation().grow_to(1).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(holder);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = budget(1 << 20, 60_000);
        let started = Instant::now();
        assert!(budget.reservation().grow_to(usize::MAX).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[cfg(target_pointer_width = "64")]
    #[tokio::test]
    async fn a_budget_past_u32_granules_is_taken_in_chunks() {
        // 8 TiB is 2^33 granules: more than one acquisition of u32::MAX.
        let budget = budget(8 << 40, 20);
        let mut reservation = budget.reservation();
        reservation.grow_to(8 << 40).await.unwrap();
        assert_eq!(reservation.granules(), 1 << 33);
        assert_eq!(budget.available_bytes(), 0);
        drop(reservation);
        assert_eq!(budget.available_bytes(), 8 << 40);
    }
}
