//! Builds the guest functions (`functions/`, for `wasm32-wasip2`) whenever the
//! host is built, so `cargo run --release -- serve` serves up-to-date components:
//! each as the default build (inference through wasi-nn), and `image-classify`
//! and `text-embed` also self-contained (tract compiled in; see
//! `functions/guest-support/src/nn/`), into `target/functions/self-contained/`.
//!
//! The nested cargo uses its own target directory (`target/functions`), so it
//! never waits on the outer build's lock. Set `WASI_INFER_SKIP_FUNCTIONS=1` to
//! skip it (e.g. when the functions are built by other means).
//!
//! The binary also carries the functions of its built-in application (what
//! `serve --models DIR` serves without a manifest): `WASI_INFER_BUILTIN_DIR`
//! tells `app/builtin.rs` where to include them from. When they were not
//! built, it points at empty files, and the built-in application says so.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let host_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = host_dir
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    let functions = root.join("functions");

    println!("cargo:rerun-if-env-changed=WASI_INFER_SKIP_FUNCTIONS");
    // A directory is watched as a whole: any file in it changing triggers a rebuild.
    println!("cargo:rerun-if-changed={}", functions.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    let built = root
        .join("target")
        .join("functions")
        .join(TARGET)
        .join("release");
    if std::env::var_os("WASI_INFER_SKIP_FUNCTIONS").is_some() {
        builtin_functions(&built);
        return;
    }

    ensure_target();
    // The self-contained build first: it writes the same file names, which
    // are copied aside; the default build then leaves its own in place.
    cargo_build(&functions, &root, SELF_CONTAINED_ARGS);
    let aside = root.join("target").join("functions").join("self-contained");
    std::fs::create_dir_all(&aside).expect("target/functions is writable");
    for file in SELF_CONTAINED {
        let from = built.join(file);
        std::fs::copy(&from, aside.join(file))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
    }
    cargo_build(&functions, &root, &[]);
    builtin_functions(&built);
}

/// The functions that also build self-contained (tract compiled in, no
/// wasi-nn), into `target/functions/self-contained/`.
const SELF_CONTAINED: [&str; 2] = ["image_classify.wasm", "text_embed.wasm"];
const SELF_CONTAINED_ARGS: &[&str] = &[
    "-p",
    "image-classify",
    "-p",
    "text-embed",
    // Without Spin's variables interface: the component imports only WASI.
    "--no-default-features",
    "--features",
    "image-classify/self-contained,text-embed/self-contained",
];

/// `cargo build --release --target wasm32-wasip2` in `functions/`, with `args`.
fn cargo_build(functions: &Path, root: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(functions)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(root.join("target").join("functions"))
        .args(args);
    // Flags meant for the host (or for clippy) must not reach the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {}: {e}", functions.display()));
    if !status.success() {
        panic!(
            "building the functions in {} failed (see above)",
            functions.display()
        );
    }
}

/// The functions the built-in application serves, as `app/builtin.rs`
/// includes them.
const BUILTIN: [&str; 5] = [
    "image_classify.wasm",
    "text_embed.wasm",
    "vad.wasm",
    "ocr.wasm",
    "open_inference.wasm",
];

/// Points `WASI_INFER_BUILTIN_DIR` at the built functions, or, where one is
/// missing, at empty stand-ins, so the host still compiles.
fn builtin_functions(built: &Path) {
    let dir = if BUILTIN.iter().all(|f| built.join(f).is_file()) {
        built.to_path_buf()
    } else {
        let out =
            PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("no-functions");
        std::fs::create_dir_all(&out).expect("OUT_DIR is writable");
        for file in BUILTIN {
            std::fs::write(out.join(file), b"").expect("OUT_DIR is writable");
        }
        out
    };
    println!("cargo:rustc-env=WASI_INFER_BUILTIN_DIR={}", dir.display());
}

/// Installs the wasm32-wasip2 standard library through rustup if it is missing.
fn ensure_target() {
    let sysroot = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    let installed = sysroot
        .as_deref()
        .is_some_and(|root| Path::new(root).join("lib/rustlib").join(TARGET).is_dir());
    if installed {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!("the {TARGET} target is missing: run `rustup target add {TARGET}`");
    }
}
