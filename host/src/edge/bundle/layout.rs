//! The OCI image layout a bundle is written in (OCI image spec 1.1:
//! `oci-layout`, `index.json`, `blobs/sha256/<digest>`), with the media
//! types wasm tooling uses for an application's parts.
//!
//! One image manifest holds the application: a config blob (ours: which
//! layer is the manifest), one layer per file (components as
//! `application/vnd.wasm.content.layer.v1+wasm`, everything else as
//! `...+data`), each named by its path in the application's folder
//! (`org.opencontainers.image.title`), and, with `--precompile`, each
//! component compiled for one engine and CPU.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const INDEX_FILE: &str = "index.json";
pub const BLOBS_DIR: &str = "blobs/sha256";
pub const LAYOUT_VERSION: &str = "1.0.0";

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// What the image is (OCI 1.1 `artifactType`) and its config's media type.
pub const ARTIFACT_TYPE: &str = "application/vnd.wasi-infer.application.v1";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasi-infer.application.config.v1+json";
pub const WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
pub const DATA_LAYER: &str = "application/vnd.wasm.content.layer.v1+data";
/// A component compiled by wasmtime (`Component::serialize`).
pub const PRECOMPILED_LAYER: &str = "application/vnd.wasi-infer.precompiled.v1";

/// A layer's path in the application's folder.
pub const TITLE: &str = "org.opencontainers.image.title";
/// The name an image is known by in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// A precompiled layer's source: the digest of the component it was compiled from.
pub const PRECOMPILED_SOURCE: &str = "dev.wasi-infer.precompiled.source";
/// A precompiled layer's engine: wasmtime's compatibility hash (version,
/// settings, CPU features), as the compile cache names it.
pub const PRECOMPILED_ENGINE: &str = "dev.wasi-infer.precompiled.engine";
/// The same, in words, for messages: wasmtime's version and the CPU.
pub const PRECOMPILED_HOST: &str = "dev.wasi-infer.precompiled.host";

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<64 lowercase hex digits>`.
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The config blob: what is needed to serve the layers once they are laid
/// out as files.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppConfig {
    /// The `spin.toml`, as a layer's title.
    pub manifest: String,
    /// The application's name, from its manifest.
    pub application: String,
    /// The tool that wrote the bundle.
    pub created_by: String,
}

/// `sha256:<hex>` of these bytes' digest.
pub fn digest_name(digest: &[u8]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The hex part of a `sha256:` digest, if it is one: the blob's file name.
pub fn blob_name(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then_some(hex)
}

/// Whether a layer's title is a plain relative path (no `..`, no root, no
/// empty or `.` parts): unpacking must never write outside its folder.
pub fn is_safe_title(title: &str) -> bool {
    !title.is_empty()
        && !title.starts_with('/')
        && title
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_name_blobs() {
        let hex = "a".repeat(64);
        assert_eq!(blob_name(&format!("sha256:{hex}")), Some(hex.as_str()));
        for bad in [
            format!("sha512:{hex}"),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:../{}", "a".repeat(61)),
        ] {
            assert_eq!(blob_name(&bad), None, "{bad}");
        }
    }

    #[test]
    fn titles_stay_inside_the_folder() {
        for good in ["spin.toml", "models/a/model.onnx", "target/x.wasm"] {
            assert!(is_safe_title(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\..\\b",
        ] {
            assert!(!is_safe_title(bad), "{bad}");
        }
    }
}
