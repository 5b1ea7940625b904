//! A persistent cache of compiled components. Compiling a component takes
//! about a second; loading its compiled form from the cache takes
//! milliseconds, which is most of what makes a cold start fast.
//!
//! An entry is named by the SHA-256 of the component's bytes and wasmtime's
//! compatibility hash of the engine (its version, target and settings), so a
//! changed component or a different engine never gets a stale entry. Entries
//! are written to a temporary file and renamed, so a reader never sees half
//! of one; `wasi-infer compile` fills the cache ahead of time.
//!
//! Loading an entry runs its native code, so a cache is used only when this
//! user alone can write it (see `cache_trust.rs`): a
//! directory others can write is an error, and an entry others could have
//! written is deleted and compiled anew.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::cache_trust::{self, UntrustedCache};

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
    /// Compiled ahead, for this engine and CPU, in the bundle served.
    Bundled,
}

impl Compiled {
    pub fn as_str(self) -> &'static str {
        match self {
            Compiled::Cached => "from cache",
            Compiled::Fresh => "now",
            Compiled::Bundled => "precompiled in the bundle",
        }
    }
}

/// Why a component could not be had through the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory is not this user's alone: nothing is loaded from it.
    #[error(transparent)]
    Untrusted(#[from] UntrustedCache),
    /// The component does not compile.
    #[error("{0:#}")]
    Compile(wasmtime::Error),
}

impl std::fmt::Display for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names a component by its content: the SHA-256 of its bytes, in hex (as
/// an OCI digest names a blob, without the `sha256:`).
pub fn content_id(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names the code `engine` compiles: wasmtime's compatibility hash (its
/// version, settings, target and CPU features), in hex. Compiled code
/// (a cache entry, a bundle's precompiled layer) loads only into an engine
/// of the same name.
pub fn engine_id(engine: &Engine) -> String {
    let mut hash = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hash);
    format!("{:016x}", hash.finish())
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

    /// Whether the cache may be used: its directory, when it exists, must be
    /// this user's alone.
    pub fn check_trusted(&self) -> Result<(), UntrustedCache> {
        cache_trust::check_dir(&self.dir)
    }

    /// The component compiled from `bytes`, from the cache when it is there;
    /// otherwise compiled and stored. A cache that cannot be read or written
    /// costs the compilation, never the component: problems are logged. A
    /// cache another user could write into is an error.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, Compiled), CacheError> {
        self.check_trusted()?;
        let entry = self.entry(engine, bytes);
        if let Some(serialized) = read_trusted_entry(&entry) {
            // SAFETY: `deserialize` trusts that the bytes are what
            // `Component::serialize` wrote for this engine. They were read
            // from a regular file owned by this user and writable by no one
            // else, in a directory that is this user's alone (both checked
            // just above), which only this process or `wasi-infer compile`
            // writes, naming entries by the hash of their source and of the
            // engine.
            match unsafe { Component::deserialize(engine, &serialized) } {
                Ok(component) => return Ok((component, Compiled::Cached)),
                Err(error) => tracing::warn!(
                    entry = %entry.display(),
                    "compiled component unusable, compiling again: {error:#}"
                ),
            }
        }
        let component = Component::new(engine, bytes).map_err(CacheError::Compile)?;
        if let Err(error) = self.store(&entry, &component) {
            tracing::warn!(
                dir = %self.dir.display(),
                "cannot store the compiled component in the cache: {error:#}"
            );
        }
        Ok((component, Compiled::Fresh))
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", content_id(bytes), engine_id(engine)))
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

/// The bytes of a cache entry, when there is one that may be trusted. An
/// entry that may not (a link, another user's, writable by others) is
/// deleted with a warning, to be compiled anew and replaced.
fn read_trusted_entry(entry: &Path) -> Option<Vec<u8>> {
    let metadata = match std::fs::symlink_metadata(entry) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(entry = %entry.display(), "cannot read the cache entry: {error}");
            return None;
        }
    };
    let refused = match cache_trust::check_entry(&metadata) {
        Ok(()) => match read_checked(entry) {
            Ok(bytes) => return Some(bytes),
            Err(problem) => problem,
        },
        Err(problem) => problem,
    };
    tracing::warn!(
        entry = %entry.display(),
        "refusing a compile cache entry: {refused}; deleting it and compiling the component again"
    );
    if let Err(error) = std::fs::remove_file(entry) {
        tracing::warn!(entry = %entry.display(), "cannot delete the refused entry: {error}");
    }
    None
}

/// Reads an entry through a descriptor opened without following a link and
/// checked again once open: the bytes are those of the file checked, even if
/// the name was replaced in between.
fn read_checked(entry: &Path) -> Result<Vec<u8>, String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let mut file = options
        .open(entry)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot examine it: {e}"))?;
    cache_trust::check_entry(&metadata)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
}

/// Creates `dir` (and its parents) readable and writable by this user only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file in `dir` with a name no other writer uses, readable and
/// writable by this user only (whatever the umask: an entry others can
/// write would be refused).
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
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

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_refused_before_anything_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let engine = Engine::default();
        cache.load(&engine, EMPTY_COMPONENT).unwrap();
        chmod(dir.path(), 0o775);
        let error = cache.load(&engine, EMPTY_COMPONENT).unwrap_err();
        assert!(matches!(error, CacheError::Untrusted(_)), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("writable by its group or by others (mode 0775)"),
            "{message}"
        );
        assert!(message.contains("--no-cache"), "{message}");
        assert!(cache.check_trusted().is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_refused_deleted_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        let engine = Engine::default();
        cache.load(&engine, EMPTY_COMPONENT).unwrap();
        let entry = cache.entry(&engine, EMPTY_COMPONENT);
        // A link to a good entry elsewhere: still refused, as a link.
        let elsewhere = dir.path().join("elsewhere.cwasm");
        std::fs::rename(&entry, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        let (_, how) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Fresh);
        let metadata = std::fs::symlink_metadata(&entry).unwrap();
        assert!(metadata.file_type().is_file(), "the link was replaced");
        let (_, how) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Cached);
    }

    #[cfg(unix)]
    #[test]
    fn an_entry_others_can_write_is_refused_deleted_and_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let engine = Engine::default();
        cache.load(&engine, EMPTY_COMPONENT).unwrap();
        let entry = cache.entry(&engine, EMPTY_COMPONENT);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&entry), 0o600, "entries are written private");
        chmod(&entry, 0o666);
        let (_, how) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Fresh);
        assert_eq!(mode(&entry), 0o600, "the entry was replaced");
        let (_, how) = cache.load(&engine, EMPTY_COMPONENT).unwrap();
        assert_eq!(how, Compiled::Cached);
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
