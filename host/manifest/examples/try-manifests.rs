//! Tries the parser on manifests whose components are not built (Spin's own,
//! say), without reading any other file: each is accepted, refused for the
//! features this host does not serve, or invalid.
//!
//! `cargo run -p wasi-infer-manifest --example try-manifests -- DIR/**/spin.toml`

use std::collections::BTreeMap;
use std::path::Path;

use wasi_infer_manifest::{Checks, Manifest, ManifestError};

fn main() {
    let mut counts = BTreeMap::<String, usize>::new();
    let mut refused = BTreeMap::<String, usize>::new();
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                println!("unreadable  {path}: {e}");
                *counts.entry("unreadable".into()).or_default() += 1;
                continue;
            }
        };
        let outcome = match Manifest::parse_with(&text, Path::new(&path), Checks::ManifestOnly) {
            Ok(m) => format!(
                "accepted    {path} (version {}, {} routes)",
                m.version,
                m.routes.len()
            ),
            Err(ManifestError::Unsupported { features, .. }) => {
                for f in &features {
                    *refused.entry(f.feature.to_string()).or_default() += 1;
                }
                let names: Vec<_> = features
                    .iter()
                    .map(|f| format!("{} {}", f.feature, f.detail))
                    .collect();
                format!("refused     {path}: {}", names.join("; "))
            }
            Err(e) => format!("invalid     {path}: {e}"),
        };
        *counts
            .entry(outcome.split_whitespace().next().unwrap_or("").to_string())
            .or_default() += 1;
        println!("{outcome}");
    }
    println!("\n{counts:?}\nrefused features (manifests): {refused:?}");
}
