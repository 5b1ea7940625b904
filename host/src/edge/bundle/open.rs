//! `wasi-infer serve --bundle`: a bundle checked and laid out as files.
//!
//! A tar is first unpacked into a private folder, accepting only the
//! layout's own names (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so
//! that no entry can name a path elsewhere. Then each layer is copied to its
//! title's path while it is hashed: the copy is kept only if its digest and
//! size are those the image manifest states, as the image manifest's must be
//! those `index.json` states. Any difference refuses the bundle.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::layout::{self, AppConfig, Descriptor, ImageManifest, Index, OciLayout};
use super::{BundleError, Precompiled, PrecompiledComponent, hash_copy};

/// JSON parts (index, manifest, config) larger than this are refused
/// unread: a real one is a few kilobytes.
const MAX_JSON: u64 = 4 << 20;

/// A bundle laid out as files, which stay as long as this value does.
#[derive(Debug)]
pub struct OpenedBundle {
    /// The private folder the application was laid out in.
    dir: tempfile::TempDir,
    /// The application's `spin.toml`, inside it.
    pub manifest: PathBuf,
    /// The image manifest's digest.
    pub digest: String,
    /// The components compiled ahead, by the digest of their WebAssembly.
    pub precompiled: Precompiled,
    /// Files laid out.
    pub files: usize,
}

impl OpenedBundle {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Checks the bundle at `path` (a folder in OCI image layout, or a tar of
/// one) and lays its application out in a private temporary folder.
pub fn open(path: &Path) -> Result<OpenedBundle, BundleError> {
    let dir = tempfile::Builder::new()
        .prefix("wasi-infer-bundle-")
        .tempdir()
        .map_err(BundleError::io(std::env::temp_dir()))?;
    let layout_dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        let unpacked = dir.path().join("layout");
        unpack_tar(path, &unpacked)?;
        unpacked
    };
    let reader = Blobs {
        bundle: path,
        root: &layout_dir,
    };

    let oci_layout: OciLayout = reader.json_file(layout::OCI_LAYOUT_FILE)?;
    if oci_layout.image_layout_version != layout::LAYOUT_VERSION {
        return Err(reader.not_a_bundle(format!(
            "OCI image layout version {:?}, expected {:?}",
            oci_layout.image_layout_version,
            layout::LAYOUT_VERSION
        )));
    }
    let index: Index = reader.json_file(layout::INDEX_FILE)?;
    let image_descriptor = index
        .manifests
        .iter()
        .find(|d| d.media_type == layout::MANIFEST_MEDIA_TYPE)
        .ok_or_else(|| reader.not_a_bundle("index.json lists no image manifest".into()))?;
    let image: ImageManifest = reader.json_blob("the image manifest", image_descriptor)?;
    if image.config.media_type != layout::CONFIG_MEDIA_TYPE {
        return Err(reader.not_a_bundle(format!(
            "its config is {:?}, not a wasi-infer application ({})",
            image.config.media_type,
            layout::CONFIG_MEDIA_TYPE
        )));
    }
    let config: AppConfig = reader.json_blob("the application config", &image.config)?;

    let app = dir.path().join("app");
    let mut precompiled = Precompiled::new();
    let mut titles = Vec::new();
    for layer in &image.layers {
        match layer.media_type.as_str() {
            layout::WASM_LAYER | layout::DATA_LAYER => {
                let title = layer.annotation(layout::TITLE).unwrap_or_default();
                if !layout::is_safe_title(title) {
                    return Err(reader.not_a_bundle(format!(
                        "layer {} has no title, or one that is not a plain relative path: {title:?}",
                        layer.digest
                    )));
                }
                let dest = app.join(title);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(BundleError::io(parent))?;
                }
                let mut out = File::create(&dest).map_err(BundleError::io(&dest))?;
                reader.copy_verified(title, layer, &mut out)?;
                titles.push(title.to_string());
            }
            layout::PRECOMPILED_LAYER => {
                let source = layer
                    .annotation(layout::PRECOMPILED_SOURCE)
                    .and_then(layout::blob_name)
                    .ok_or_else(|| {
                        reader.not_a_bundle(format!(
                            "precompiled layer {} names no source component",
                            layer.digest
                        ))
                    })?;
                let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
                reader.copy_verified("a precompiled component", layer, &mut bytes)?;
                precompiled.insert(
                    source.to_string(),
                    PrecompiledComponent {
                        engine: layer
                            .annotation(layout::PRECOMPILED_ENGINE)
                            .unwrap_or_default()
                            .to_string(),
                        host: layer
                            .annotation(layout::PRECOMPILED_HOST)
                            .unwrap_or("an unnamed host")
                            .to_string(),
                        bytes,
                    },
                );
            }
            other => {
                return Err(reader.not_a_bundle(format!(
                    "layer {} has a media type this server does not know: {other:?}",
                    layer.digest
                )));
            }
        }
    }
    if !titles.contains(&config.manifest) {
        return Err(reader.not_a_bundle(format!(
            "its config names the manifest {:?}, which no layer holds",
            config.manifest
        )));
    }
    Ok(OpenedBundle {
        manifest: app.join(&config.manifest),
        digest: image_descriptor.digest.clone(),
        precompiled,
        files: titles.len(),
        dir,
    })
}

/// Reads a layout's files and blobs, checking each blob against its
/// descriptor.
struct Blobs<'a> {
    bundle: &'a Path,
    root: &'a Path,
}

impl Blobs<'_> {
    fn not_a_bundle(&self, problem: String) -> BundleError {
        BundleError::NotABundle {
            path: self.bundle.to_path_buf(),
            problem,
        }
    }

    fn json_file<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, BundleError> {
        let path = self.root.join(name);
        let file = File::open(&path)
            .map_err(|e| self.not_a_bundle(format!("cannot read its {name}: {e}")))?;
        let mut text = Vec::new();
        file.take(MAX_JSON)
            .read_to_end(&mut text)
            .map_err(BundleError::io(&path))?;
        serde_json::from_slice(&text).map_err(|e| self.not_a_bundle(format!("its {name}: {e}")))
    }

    fn json_blob<T: serde::de::DeserializeOwned>(
        &self,
        part: &str,
        descriptor: &Descriptor,
    ) -> Result<T, BundleError> {
        if descriptor.size > MAX_JSON {
            return Err(self.not_a_bundle(format!("{part} is {} bytes", descriptor.size)));
        }
        let mut bytes = Vec::new();
        self.copy_verified(part, descriptor, &mut bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| self.not_a_bundle(format!("{part}: {e}")))
    }

    /// Copies the blob `descriptor` names into `out`, and fails unless its
    /// bytes hash to its digest and number its size.
    fn copy_verified(
        &self,
        part: &str,
        descriptor: &Descriptor,
        out: &mut impl std::io::Write,
    ) -> Result<(), BundleError> {
        let name = layout::blob_name(&descriptor.digest).ok_or_else(|| {
            self.not_a_bundle(format!(
                "{part} has a digest that is not sha256: {:?}",
                descriptor.digest
            ))
        })?;
        let path = self.root.join(layout::BLOBS_DIR).join(name);
        let file = File::open(&path).map_err(|_| BundleError::Missing {
            path: self.bundle.to_path_buf(),
            part: part.to_string(),
            digest: descriptor.digest.clone(),
        })?;
        // One byte past the stated size is enough to know it is not that size.
        let (digest, size) =
            hash_copy(&mut file.take(descriptor.size + 1), out).map_err(BundleError::io(&path))?;
        if digest != descriptor.digest || size != descriptor.size {
            return Err(BundleError::Mismatch {
                path: self.bundle.to_path_buf(),
                part: part.to_string(),
                digest: descriptor.digest.clone(),
                found: if size == descriptor.size {
                    digest
                } else {
                    format!("{size} bytes, not {}", descriptor.size)
                },
            });
        }
        Ok(())
    }
}

/// Unpacks the layout's own files from a tar, refusing any other entry.
fn unpack_tar(tar_path: &Path, dest: &Path) -> Result<(), BundleError> {
    let refuse = |problem: String| BundleError::NotABundle {
        path: tar_path.to_path_buf(),
        problem,
    };
    let file = File::open(tar_path).map_err(BundleError::io(tar_path))?;
    let blobs = dest.join(layout::BLOBS_DIR);
    std::fs::create_dir_all(&blobs).map_err(BundleError::io(&blobs))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .map_err(|e| refuse(format!("not a tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("a broken tar entry: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| refuse(format!("a tar entry with a bad name: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let allowed = name == layout::OCI_LAYOUT_FILE
            || name == layout::INDEX_FILE
            || name
                .strip_prefix(layout::BLOBS_DIR)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|hex| layout::blob_name(&format!("sha256:{hex}")).is_some());
        if !allowed || !entry.header().entry_type().is_file() {
            return Err(refuse(format!(
                "an entry that is not part of an OCI image layout: {name:?}"
            )));
        }
        let path = dest.join(&name);
        let mut out = File::create(&path).map_err(BundleError::io(&path))?;
        std::io::copy(&mut entry, &mut out).map_err(BundleError::io(&path))?;
    }
    Ok(())
}
