//! `serve --watch`: the model repository looked at every so often. A model
//! folder whose files changed (a new version, a changed one, a new model) is
//! reloaded once it has stayed the same for the debounce (so a copy in
//! progress is not loaded half-written); a model folder that is gone is
//! unloaded and forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::ModelStore;
use super::scan::folder_fingerprint;

/// Starts watching `store`'s repository on a thread of its own, until the
/// store is dropped.
pub fn start(store: &Arc<ModelStore>, every: Duration, debounce: Duration) -> std::io::Result<()> {
    let store = Arc::downgrade(store);
    std::thread::Builder::new()
        .name("model-watch".into())
        .spawn(move || watch(store, every, debounce))?;
    Ok(())
}

fn watch(store: Weak<ModelStore>, every: Duration, debounce: Duration) {
    // A change seen, and since when it has looked the same.
    let mut pending: HashMap<String, (Option<u64>, Instant)> = HashMap::new();
    loop {
        std::thread::sleep(every);
        let Some(store) = store.upgrade() else {
            return;
        };
        let mut names = store.names();
        if let Ok(on_disk) = store.repository().names() {
            names.extend(on_disk);
        }
        names.sort();
        names.dedup();
        for name in names {
            let now = store
                .repository()
                .model_dir(&name)
                .map(|dir| folder_fingerprint(&dir));
            if now == store.fingerprint(&name) {
                pending.remove(&name);
                continue;
            }
            match pending.get(&name) {
                Some((seen, since)) if *seen == now => {
                    if since.elapsed() < debounce {
                        continue;
                    }
                }
                _ => {
                    pending.insert(name, (now, Instant::now()));
                    continue;
                }
            }
            pending.remove(&name);
            match now {
                None => {
                    tracing::info!(model = %name, "the model's folder is gone: unloaded");
                    store.remove(&name);
                }
                Some(_) => match store.reload(&name) {
                    Ok(done) => tracing::info!(
                        model = %name,
                        loaded = ?done.loaded,
                        retired = ?done.retired,
                        "the model's folder changed: reloaded"
                    ),
                    Err(error) => {
                        tracing::warn!(model = %name, "the model's folder changed, but: {error}")
                    }
                },
            }
        }
    }
}
