//! A persistent cache of compiled components. Compiling a component takes
//! about a second; loading its compiled form from the cache takes
//! milliseconds, which is most of what makes a cold start fast.
//!
//! An entry is named by the SHA-256 of the component's bytes and wasmtime's
//! compatibility hash of the engine (its version, target and settings), so a
//! changed component or a different engine never gets a stale entry. Entries
//! are written to a temporary file and renamed, so a reader never sees half
//! of one; `wasi-infer compile` fills the cache ahead of time.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Loaded from the cache.
    Cached,
    /// Compiled now (and stored, when there is a cache).
    Fresh,
}

impl Compiled {
    pub fn as_str(self) -> &'static str {
        match self {
            Compiled::Cached => "from cache",
            Compiled::Fresh => "now",
        }
    }
}

impl std::fmt::Display for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/wasi-infer`, else `~/.cache/wasi-infer`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
        };
        Some(base.join("wasi-infer"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component compiled from `bytes`, from the cache when it is there;
    /// otherwise compiled and stored. A cache that cannot be read or written
    /// costs the compilation, never the component: problems are logged.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, Compiled)> {
        let entry = self.entry(engine, bytes);
        if entry.is_file() {
            // SAFETY: `deserialize_file` trusts that the file holds what
            // `Component::serialize` wrote for this engine. Only this process
            // (or `wasi-infer compile`) writes entries, named by the hash of
            // their source and of the engine, into a directory created for
            // this user alone (mode 0700); a user who can write there could
            // equally replace the server's binary.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok((component, Compiled::Cached)),
                Err(error) => tracing::warn!(
                    entry = %entry.display(),
                    "compiled component unusable, compiling again: {error:#}"
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(error) = self.store(&entry, &component) {
            tracing::warn!(
                dir = %self.dir.display(),
                "cannot store the compiled component in the cache: {error:#}"
            );
        }
        Ok((component, Compiled::Fresh))
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let source: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir
            .join(format!("{source}-{:016x}.cwasm", engine_hash.finish()))
    }

    fn store(&self, entry: &Path, component: &Component) -> wasmtime::Result<()> {
        create_private_dir(&self.dir)?;
        let serialized = component.serialize()?;
        let mut temp = tempfile_in(&self.dir)?;
        temp.1.write_all(&serialized)?;
        temp.1.sync_all()?;
        std::fs::rename(&temp.0, entry)?;
        Ok(())
    }
}

/// Creates `dir` (and its parents) readable and writable by this user only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file in `dir` with a name no other writer uses.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: no imports, no exports.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn compiles_once_then_loads_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        let engine = Engine::default();
        let (_, first) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        let (_, second) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!((first, second), (Compiled::Fresh, Compiled::Cached));
        let entries: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
        assert_eq!(entries.len(), 1, "one entry, no temporary files left");
    }

    #[test]
    fn a_corrupt_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let engine = Engine::default();
        cache.load(&engine, EMPTY_COMPONENT).unwrap();
        let entry = cache.entry(&engine, EMPTY_COMPONENT);
        std::fs::write(&entry, b"not a compiled component").unwrap();
        let (_, how) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Fresh);
        let (_, how) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Cached, "the entry was rewritten");
    }

    #[test]
    fn an_unwritable_cache_still_compiles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let cache = CompileCache::new(file.join("cache"));
        let (_, how) = cache.load(&Engine::default(), EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Fresh);
    }
}
