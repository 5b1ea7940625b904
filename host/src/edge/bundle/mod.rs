//! An application as one bundle: [`pack`] writes its manifest, components,
//! mounted files and models (and, with `--precompile`, its components
//! compiled for this engine and CPU) as an OCI image layout, a folder or a
//! tar; [`open`] checks every part against its digest and lays the
//! application out as files to serve.
//!
//! A bundle is checked whole before anything in it runs: a part whose bytes
//! do not hash to its digest, a missing part, or a path that would leave the
//! unpacked folder refuses the whole bundle. Precompiled code is native code:
//! it is used only when it was compiled for exactly this engine and CPU, and
//! otherwise the component is compiled here from its WebAssembly, with a
//! warning. The digests protect against corruption and tampering in transit,
//! not against whoever wrote the bundle: serve bundles from sources you
//! would take a binary from.

pub mod layout;
mod open;
mod pack;

use std::collections::HashMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub use open::{OpenedBundle, open};
pub use pack::{PackOptions, Packed, pack};

use crate::runtime::Runtime;
use crate::runtime::cache::{content_id, engine_id};

/// Why a bundle could not be written or served.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{path} is not a bundle of this server: {problem}")]
    NotABundle { path: PathBuf, problem: String },
    #[error(
        "bundle {path}: {part} does not match its digest {digest} (its content hashes to \
         {found}): the bundle is corrupt or was altered, and nothing from it was run"
    )]
    Mismatch {
        path: PathBuf,
        part: String,
        digest: String,
        found: String,
    },
    #[error("bundle {path}: {part} ({digest}) is missing")]
    Missing {
        path: PathBuf,
        part: String,
        digest: String,
    },
    #[error("cannot precompile component {id}: {message}")]
    Compile { id: String, message: String },
}

impl BundleError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// A component compiled for one engine and CPU, from a bundle.
pub struct PrecompiledComponent {
    /// The engine it was compiled for ([`engine_id`]).
    pub engine: String,
    /// The same, in words (wasmtime's version and the CPU's features).
    pub host: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for PrecompiledComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrecompiledComponent")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Precompiled components by the SHA-256 (hex) of the component they were
/// compiled from.
pub type Precompiled = HashMap<String, PrecompiledComponent>;

/// The component compiled from `bytes`, from `precompiled` when it holds
/// one for exactly this engine and CPU. Otherwise `None`, with a warning
/// when there was one for another: the caller compiles.
pub fn precompiled_component(
    runtime: &Runtime,
    id: &str,
    bytes: &[u8],
    precompiled: &Precompiled,
) -> Option<Component> {
    if precompiled.is_empty() {
        return None;
    }
    let found = precompiled.get(&content_id(bytes))?;
    let here = engine_id(&runtime.engine);
    if found.engine != here {
        tracing::warn!(
            component = id,
            "the bundle's precompiled code is for another engine or CPU ({}; this host: {}): \
             compiling the component here instead",
            found.host,
            host_description()
        );
        return None;
    }
    // SAFETY: `deserialize` trusts that the bytes are what
    // `Component::serialize` wrote for an engine like this one. They are the
    // bundle's precompiled layer, checked against its digest (see `open`),
    // compiled for this engine's compatibility hash (checked just above;
    // wasmtime checks it again); the bundle is trusted as its author is
    // (see the module's note).
    match unsafe { Component::deserialize(&runtime.engine, &found.bytes) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(
                component = id,
                "the bundle's precompiled code does not load here ({error:#}): compiling the \
                 component instead"
            );
            None
        }
    }
}

/// This host as a precompiled layer describes its own: wasmtime's version,
/// the architecture and the CPU features code generation depends on.
pub fn host_description() -> String {
    let mut features: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! detect {
            ($($feature:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($feature) {
                    features.push($feature);
                })*
            };
        }
        detect!(
            "sse4.1",
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "bmi1",
            "bmi2",
            "fma",
            "lzcnt",
            "avx512f",
            "avx512vl",
            "avx512bw",
            "avx512dq",
            "avx512vbmi"
        );
    }
    format!(
        "wasmtime {}, {} [{}]",
        WASMTIME_VERSION,
        std::env::consts::ARCH,
        features.join(" ")
    )
}

/// The wasmtime release this host is built with (pinned in host/Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Copies `reader` into `out` while hashing it: its `sha256:` digest and size.
fn hash_copy(
    reader: &mut impl std::io::Read,
    out: &mut impl std::io::Write,
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
        size += n as u64;
    }
    Ok((layout::digest_name(&hasher.finalize()), size))
}
