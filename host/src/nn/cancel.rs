//! Stopping work that no one waits for any more.
//!
//! A request's inference runs on a thread of its own (see [`super::threads`]);
//! when the request's deadline passes, its client disconnects or its instance
//! is stopped, the [`Cancel`] of that work is fired. A backend that can stop
//! early registers a hook ([`Cancel::on_cancel`]): ONNX Runtime terminates
//! its run, OpenVINO cancels its infer request, tract stops between nodes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

type Hook = Box<dyn FnOnce() + Send>;

/// A flag that is fired once, running the hooks registered on it.
#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    hooks: Mutex<Hooks>,
}

#[derive(Default)]
struct Hooks {
    next: u64,
    list: Vec<(u64, Hook)>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the flag and runs the hooks registered on it (once).
    pub fn cancel(&self) {
        if self.0.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        let hooks = std::mem::take(&mut self.hooks().list);
        for (_, hook) in hooks {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `hook` when the flag fires, or now if it has fired; the hook is
    /// forgotten when the returned guard is dropped.
    #[must_use = "the hook is removed when the guard is dropped"]
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> HookGuard {
        let mut hooks = self.hooks();
        if self.is_cancelled() {
            drop(hooks);
            hook();
            return HookGuard { owner: None };
        }
        let id = hooks.next;
        hooks.next += 1;
        hooks.list.push((id, Box::new(hook)));
        HookGuard {
            owner: Some((self.clone(), id)),
        }
    }

    /// Fires this flag when `parent` fires, while the guard lives.
    #[must_use = "the link is removed when the guard is dropped"]
    pub fn follow(&self, parent: &Cancel) -> HookGuard {
        let this = self.clone();
        parent.on_cancel(move || this.cancel())
    }

    /// Resolves when the flag fires.
    pub async fn cancelled(self) {
        let notify = Arc::new(tokio::sync::Notify::new());
        let _hook = self.on_cancel({
            let notify = notify.clone();
            // `notify_one` keeps a permit when no one waits yet.
            move || notify.notify_one()
        });
        if !self.is_cancelled() {
            notify.notified().await;
        }
    }

    fn hooks(&self) -> MutexGuard<'_, Hooks> {
        // A hook that panicked leaves the list as it was: keep using it.
        self.0.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cancel").field(&self.is_cancelled()).finish()
    }
}

/// Removes a hook from its [`Cancel`] when dropped.
pub struct HookGuard {
    owner: Option<(Cancel, u64)>,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        if let Some((cancel, id)) = self.owner.take() {
            cancel.hooks().list.retain(|(hook, _)| *hook != id);
        }
    }
}

/// Fires a [`Cancel`] when dropped, unless [`CancelOnDrop::disarm`]ed: the
/// work of a future that is dropped before it finishes is not wanted.
pub struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    pub fn new(cancel: Cancel) -> Self {
        Self(Some(cancel))
    }

    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hooks_run_once_and_only_while_registered() {
        let cancel = Cancel::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = |runs: &Arc<AtomicUsize>| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        };
        let kept = cancel.on_cancel(counter(&runs));
        drop(cancel.on_cancel(counter(&runs)));
        cancel.cancel();
        cancel.cancel();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Registered after the fact: runs at once.
        let _late = cancel.on_cancel(counter(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        drop(kept);
    }

    #[test]
    fn a_child_follows_its_parent_and_a_dropped_guard_fires() {
        let parent = Cancel::new();
        let child = Cancel::new();
        let link = child.follow(&parent);
        parent.cancel();
        assert!(child.is_cancelled());
        drop(link);

        let cancel = Cancel::new();
        CancelOnDrop::new(cancel.clone()).disarm();
        assert!(!cancel.is_cancelled());
        drop(CancelOnDrop::new(cancel.clone()));
        assert!(cancel.is_cancelled());
    }

    #[tokio::test]
    async fn cancelled_resolves_when_fired() {
        let cancel = Cancel::new();
        let waiter = tokio::spawn(cancel.clone().cancelled());
        tokio::task::yield_now().await;
        cancel.cancel();
        waiter.await.unwrap();
        // Already fired: at once.
        cancel.cancelled().await;
    }
}
