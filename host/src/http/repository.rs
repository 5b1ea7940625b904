//! The Open Inference Protocol's model repository extension, as Triton and
//! MLServer serve it: `POST /v2/repository/index` lists every model of the
//! repository with its versions and states; `POST
//! /v2/repository/models/<name>/load` loads (or reloads) a model and
//! `.../unload` unloads it (see [`crate::nn::store`]).
//!
//! It changes what the server runs, so it is answered only when an operator
//! gives a bearer token (`--admin-token-file`), and then only to requests
//! that carry it (`Authorization: Bearer <token>`): anything else is a 401
//! that changes nothing. Tokens are compared as SHA-256 digests in constant
//! time, so neither the comparison's time nor its length tells a guess apart.

use std::path::Path;
use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wasmtime_wasi_http::WasiBody;

use crate::json_error;
use crate::nn::store::{ModelStore, ReloadError};

/// Where the repository API's paths begin.
const PREFIX: &str = "/v2/repository";

/// The operator's token, kept as its digest.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// The token in `path` (surrounding whitespace aside: a file written by
    /// `echo` ends in a newline).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the admin token {}: {e}", path.display()))?;
        Self::new(text.trim()).map_err(|problem| format!("{}: {problem}", path.display()))
    }

    /// A token of at least 16 characters: a short one can be guessed.
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < 16 {
            return Err(format!(
                "the admin token has {} characters; use at least 16 (e.g. `openssl rand -hex 32`)",
                token.len()
            ));
        }
        Ok(Self(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether `presented` is the token, in time that does not depend on
    /// how much of it matches.
    fn accepts(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.0.ct_eq(&digest).into()
    }
}

/// An endpoint of the extension.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Index,
    Load(&'a str),
    Unload(&'a str),
}

/// The endpoint `path` names; `None` for another path under the prefix.
fn endpoint(path: &str) -> Option<Endpoint<'_>> {
    let rest = path.strip_prefix(PREFIX)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["index"] => Some(Endpoint::Index),
        ["models", name, "load"] => Some(Endpoint::Load(name)),
        ["models", name, "unload"] => Some(Endpoint::Unload(name)),
        _ => None,
    }
}

/// `{"ready": true}` in the index request: only the models ready.
#[derive(serde::Deserialize, Default)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

pub struct RepositoryApi {
    store: Arc<ModelStore>,
    token: AdminToken,
}

impl RepositoryApi {
    pub fn new(store: Arc<ModelStore>, token: AdminToken) -> Self {
        Self { store, token }
    }

    /// Answers `request` if its path is the repository API's; else hands it back.
    pub async fn handle(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, http::Request<WasiBody>> {
        let path = request.uri().path();
        if path != PREFIX && !path.starts_with(&format!("{PREFIX}/")) {
            return Err(request);
        }
        Ok(self.answer(request).await)
    }

    async fn answer(&self, request: http::Request<WasiBody>) -> http::Response<WasiBody> {
        if !self.authorized(&request) {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "the repository API needs the operator's token: Authorization: Bearer <token>",
            );
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wasi-infer repository\""),
            );
            return response;
        }
        let path = request.uri().path().to_string();
        let Some(endpoint) = endpoint(&path) else {
            return json_error(
                StatusCode::NOT_FOUND,
                format!(
                    "no endpoint {path:?}: the repository API has POST {PREFIX}/index, \
                     POST {PREFIX}/models/<name>/load and POST {PREFIX}/models/<name>/unload"
                ),
            );
        };
        if request.method() != Method::POST {
            let mut response = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use POST",
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                );
            }
        };
        match endpoint {
            Endpoint::Index => self.index(&body),
            Endpoint::Load(name) => {
                let store = self.store.clone();
                let name = name.to_string();
                // A load takes seconds of blocking work: off the reactor.
                let done = tokio::task::spawn_blocking(move || {
                    let outcome = store.reload(&name);
                    (name, outcome)
                })
                .await;
                match done {
                    Ok((name, Ok(reloaded))) => {
                        tracing::info!(model = %name, loaded = ?reloaded.loaded, retired = ?reloaded.retired, "loaded through the repository API");
                        json(StatusCode::OK, &serde_json::json!({}))
                    }
                    Ok((_, Err(error))) => reload_error(error),
                    Err(e) => json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the load failed unexpectedly: {e}"),
                    ),
                }
            }
            Endpoint::Unload(name) => match self.store.unload(name) {
                Ok(()) => {
                    tracing::info!(model = %name, "unloaded through the repository API");
                    json(StatusCode::OK, &serde_json::json!({}))
                }
                Err(error) => reload_error(error),
            },
        }
    }

    fn authorized(&self, request: &http::Request<WasiBody>) -> bool {
        let Some(value) = request.headers().get(http::header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        // The scheme is case-insensitive (RFC 9110 11.1).
        match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => {
                self.token.accepts(value[7..].trim_ascii())
            }
            _ => false,
        }
    }

    fn index(&self, body: &[u8]) -> http::Response<WasiBody> {
        let request: IndexRequest = if body.trim_ascii().is_empty() {
            IndexRequest::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(e) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        format!("the index request is not {{\"ready\": true|false}}: {e}"),
                    );
                }
            }
        };
        let rows: Vec<_> = self
            .store
            .index()
            .into_iter()
            .filter(|row| !request.ready || row.state == "READY")
            .collect();
        json(StatusCode::OK, &rows)
    }
}

fn reload_error(error: ReloadError) -> http::Response<WasiBody> {
    let status = match error {
        ReloadError::NoModel(_) => StatusCode::NOT_FOUND,
        ReloadError::Failed { .. } => StatusCode::BAD_REQUEST,
    };
    json_error(status, error.to_string())
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> http::Response<WasiBody> {
    match serde_json::to_vec(value) {
        Ok(body) => http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(super::body::full(body.into()))
            .unwrap_or_else(|e| json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_from_the_path() {
        assert_eq!(endpoint("/v2/repository/index"), Some(Endpoint::Index));
        assert_eq!(endpoint("/v2/repository/index/"), Some(Endpoint::Index));
        assert_eq!(
            endpoint("/v2/repository/models/m/load"),
            Some(Endpoint::Load("m"))
        );
        assert_eq!(
            endpoint("/v2/repository/models/m/unload"),
            Some(Endpoint::Unload("m"))
        );
        for other in [
            "/v2/repository",
            "/v2/repository/models/m",
            "/v2/repository/models/m/reload",
            "/v2/repository/other",
        ] {
            assert_eq!(endpoint(other), None, "{other}");
        }
    }

    #[test]
    fn only_the_token_is_accepted() {
        let token = AdminToken::new("0123456789abcdef-secret").unwrap();
        assert!(token.accepts(b"0123456789abcdef-secret"));
        for wrong in [
            &b""[..],
            b"0123456789abcdef-secreT",
            b"0123456789abcdef-secret ",
        ] {
            assert!(!token.accepts(wrong), "{wrong:?}");
        }
        assert!(
            AdminToken::new("short")
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(!format!("{token:?}").contains("secret"));
    }
}
