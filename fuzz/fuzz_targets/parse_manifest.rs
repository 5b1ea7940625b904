//! Manifest parsing: `spin.toml` text, as `wasi-infer serve` and `check` read
//! it, then the router built from its routes, matching a few paths.
//!
//! A finding is any panic, or a manifest that parses into routes the router
//! then mishandles (a match outside the manifest's routes). Errors are the
//! expected answer to nearly every input: they must name the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wasi_infer_manifest::routing::Router;
use wasi_infer_manifest::{Checks, Manifest};

/// The manifest is "in" a directory that does not exist: file checks fail
/// cleanly instead of touching the machine's files.
const PATH: &str = "/nonexistent/wasi-infer-fuzz/spin.toml";

const PATHS: &[&str] = &["/", "/classify/m", "/a/b/c", "/embed/", "//x", "/%2e%2e/"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Both ways: with the file checks (which fail cleanly here), and on the
    // manifest alone, which reaches everything past them.
    let _ = Manifest::parse(text, Path::new(PATH));
    match Manifest::parse_with(text, Path::new(PATH), Checks::ManifestOnly) {
        Ok(manifest) => {
            let public: Vec<_> = manifest.public_routes().map(|(p, _)| p.clone()).collect();
            let count = public.len();
            let router = Router::new(public);
            for path in PATHS {
                if let Some(matched) = router.route(path) {
                    assert!(matched.index < count);
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(PATH),
                "an error that names no file: {message}"
            );
        }
    }
});
