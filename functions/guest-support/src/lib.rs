//! What every wasi-infer function shares, so each function is only its own
//! pre- and post-processing:
//!
//! - [`ApiError`]: an HTTP status and a message, answered as `{"error": "..."}`;
//! - [`model_name`]: the model named in the request path (`/<route>/<model>`);
//! - [`read_model_toml`]: the model's `model.toml`, mounted read-only at `/models`;
//! - [`nn`]: running a model, through wasi-nn or (the self-contained build)
//!   with tract compiled in, with errors mapped to HTTP;
//! - [`preinit`]: work done once, before deployment, into a snapshot (Wizer);
//! - [`models`]: the models' metadata and the server's readiness, from the host;
//! - [`form`]: the file of a `multipart/form-data` upload;
//! - [`Timings`]: where a request's time went, as a `Server-Timing` header.

mod error;
pub mod form;
pub mod models;
pub mod nn;
pub mod preinit;
mod timing;

pub use error::{ApiError, json_response};
pub use timing::Timings;

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

/// Reads `/models/<model>/model.toml`. A name the repository does not hold
/// is a 404 however the file system says so: no such file, a file where a
/// directory should be (`/models/README.md/model.toml`), or a name the file
/// system cannot even hold (longer than 255 bytes). Anything else (a file it
/// may not read) is the server's fault.
pub fn read_model_toml(model: &str) -> Result<ModelToml, ApiError> {
    use std::io::ErrorKind;
    let dir = PathBuf::from(MODELS_DIR).join(model);
    let path = dir.join("model.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::InvalidFilename => {
            ApiError::not_found(format!("no model named {}", quoted(model)))
        }
        _ => ApiError::internal(format!("cannot read {}: {e}", path.display())),
    })?;
    Ok(ModelToml { dir, path, text })
}

/// A name from a request, quoted for a message, and cut short when a client
/// sent a long one: an error need not echo 5,000 characters back.
pub fn quoted(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &name[..cut], name.len()),
        None => format!("{name:?}"),
    }
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
            "no model named {}: use {usage}",
            quoted(name)
        )))
    }
}

/// The longest file name Linux file systems hold (`NAME_MAX`).
const MAX_NAME_BYTES: usize = 255;

/// A directory name in the model repository: no separators, no `..`, and
/// short enough to be a file name at all.
fn is_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
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
        assert!(is_model_name(&"a".repeat(255)));
        assert!(!is_model_name(&"a".repeat(256)));
    }

    #[test]
    fn long_names_are_cut_short_in_messages() {
        assert_eq!(quoted("m"), "\"m\"");
        let long = quoted(&"a".repeat(5000));
        assert!(long.len() < 100 && long.ends_with("(5000 bytes)"), "{long}");
    }
}
