//! What every wasi-infer function shares, so each function is only its own
//! pre- and post-processing:
//!
//! - [`ApiError`]: an HTTP status and a message, answered as `{"error": "..."}`;
//! - [`model_name`]: the model named in the request path (`/<route>/<model>`);
//! - [`read_model_toml`]: the model's `model.toml`, mounted read-only at `/models`;
//! - [`nn`]: running a model through wasi-nn, with errors mapped to HTTP;
//! - [`models`]: the models' metadata and the server's readiness, from the host.

mod error;
pub mod models;
pub mod nn;

pub use error::{ApiError, json_response};

use std::path::PathBuf;

use spin_sdk::http::Request;

/// Where the manifest mounts the model repository.
pub const MODELS_DIR: &str = "/models";

/// A model's `model.toml`: its directory (for the files it names), its path
/// (for error messages) and its text, for the function to parse its own way.
pub struct ModelToml {
    pub dir: PathBuf,
    pub path: PathBuf,
    pub text: String,
}

/// Reads `/models/<model>/model.toml`; a model without one is a 404.
pub fn read_model_toml(model: &str) -> Result<ModelToml, ApiError> {
    let dir = PathBuf::from(MODELS_DIR).join(model);
    let path = dir.join("model.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::not_found(format!("no model named {model:?}")),
        _ => ApiError::internal(format!("cannot read {}: {e}", path.display())),
    })?;
    Ok(ModelToml { dir, path, text })
}

/// The model is the part of the path after the route's prefix, e.g.
/// `/classify/<model>`: the host passes it in `spin-path-info`, as Spin does
/// for wildcard routes. A plain `wasi:http` host (`wasmtime serve`) passes only
/// the whole path, whose last segment is then the model. `usage` completes the
/// 404 message (`POST /classify/<model>`).
pub fn model_name<'a>(req: &'a Request, usage: &str) -> Result<&'a str, ApiError> {
    let name = match req.header("spin-path-info").and_then(|v| v.as_str()) {
        Some(path_info) => path_info.trim_matches('/'),
        None => req
            .path()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(""),
    };
    if is_model_name(name) {
        Ok(name)
    } else {
        Err(ApiError::not_found(format!(
            "no model named {name:?}: use {usage}"
        )))
    }
}

/// A directory name in the model repository: no separators, no `..`.
fn is_model_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_stay_inside_the_repository() {
        assert!(is_model_name("efficientnet-lite0"));
        assert!(is_model_name("all_minilm.v2"));
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "a b", "é"] {
            assert!(!is_model_name(bad), "{bad:?}");
        }
    }
}
