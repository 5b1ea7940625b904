//! `wasi-infer bundle`: an application's files as one OCI image layout.
//!
//! Every file the application needs, and nothing else, becomes a layer named
//! by its path relative to the folder that holds them all (the manifest's
//! folder, or the nearest folder above it that also holds its components and
//! mounts): the manifest, each component's `source`, every file under each
//! `files` mount, and the model repository beside the manifest when a
//! component loads models by name. Unpacked, the paths are those of the
//! original, so the manifest reads as it was written. A tar is written
//! reproducibly (sorted, with fixed times and owners), so the same
//! application gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::layout::{self, AppConfig, Descriptor, ImageManifest, Index, OciLayout};
use super::{BundleError, hash_copy, host_description};
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::runtime::{Runtime, cache::engine_id};

#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The application's `spin.toml`.
    pub manifest: PathBuf,
    /// Add each component compiled for this host's engine and CPU.
    pub precompile: bool,
}

/// What a bundle holds.
#[derive(Debug)]
pub struct Packed {
    /// The image manifest's digest: names the bundle's content.
    pub digest: String,
    pub files: usize,
    pub components: usize,
    pub precompiled: usize,
    /// The layers' bytes, all together.
    pub bytes: u64,
}

/// Writes the application of `options.manifest` to `output`: a tar when its
/// name ends in `.tar`, otherwise a folder.
pub fn pack(options: &PackOptions, output: &Path) -> Result<Packed, BundleError> {
    let manifest = Manifest::load(&options.manifest)?;
    let files = application_files(&manifest)?;
    let root = common_folder(files.keys())
        .ok_or_else(|| not_a_bundle(&options.manifest, "its files share no folder".into()))?;
    let title = |path: &Path| -> Result<String, BundleError> {
        let relative = path.strip_prefix(&root).unwrap_or(path);
        let parts: Vec<&str> = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()
            .ok_or_else(|| not_a_bundle(path, "a path that is not UTF-8".into()))?;
        Ok(parts.join("/"))
    };

    let mut sink = Sink::create(output)?;
    let mut layers = Vec::new();
    let mut bytes = 0;
    let mut wasm_digests = BTreeMap::new();
    for (path, media_type) in &files {
        let (digest, size) = sink.blob_from_file(path)?;
        bytes += size;
        if *media_type == layout::WASM_LAYER {
            wasm_digests.insert(path.clone(), digest.clone());
        }
        layers.push(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: [(layout::TITLE.to_string(), title(path)?)].into(),
        });
    }

    let mut precompiled = 0;
    if options.precompile {
        // The engine `serve` makes with its default limits, so the code fits it.
        let runtime = Runtime::new(&Limits::default()).map_err(|e| BundleError::Compile {
            id: "(all)".into(),
            message: format!("cannot set up the WebAssembly runtime: {e:#}"),
        })?;
        let engine = engine_id(&runtime.engine);
        let host = host_description();
        for spec in manifest.components.values() {
            let source = canonical(&spec.source)?;
            let fail = |message: String| BundleError::Compile {
                id: spec.id.clone(),
                message,
            };
            let wasm = std::fs::read(&source).map_err(BundleError::io(&source))?;
            let code = Component::new(&runtime.engine, &wasm)
                .and_then(|c| c.serialize())
                .map_err(|e| fail(format!("{e:#}")))?;
            let (digest, size) = sink.blob_from_bytes(&code)?;
            bytes += size;
            precompiled += 1;
            let source_digest = wasm_digests.get(&source).cloned().unwrap_or_default();
            layers.push(Descriptor {
                media_type: layout::PRECOMPILED_LAYER.into(),
                digest,
                size,
                annotations: [
                    (layout::PRECOMPILED_SOURCE.to_string(), source_digest),
                    (layout::PRECOMPILED_ENGINE.to_string(), engine.clone()),
                    (layout::PRECOMPILED_HOST.to_string(), host.clone()),
                ]
                .into(),
            });
        }
    }

    let config = AppConfig {
        manifest: title(&canonical(&manifest.path)?)?,
        application: manifest.application.name.clone(),
        created_by: format!("wasi-infer {}", env!("CARGO_PKG_VERSION")),
    };
    let config = sink.json_blob(layout::CONFIG_MEDIA_TYPE, &config)?;
    let image = ImageManifest {
        schema_version: 2,
        media_type: Some(layout::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(layout::ARTIFACT_TYPE.into()),
        config,
        layers,
    };
    let mut image = sink.json_blob(layout::MANIFEST_MEDIA_TYPE, &image)?;
    let version = manifest.application.version.as_deref().unwrap_or("latest");
    image.annotations.insert(
        layout::REF_NAME.into(),
        format!("{}:{version}", manifest.application.name),
    );
    let digest = image.digest.clone();
    let index = Index {
        schema_version: 2,
        media_type: Some(layout::INDEX_MEDIA_TYPE.into()),
        manifests: vec![image],
    };
    let oci_layout = OciLayout {
        image_layout_version: layout::LAYOUT_VERSION.into(),
    };
    sink.write(layout::OCI_LAYOUT_FILE, &json(&oci_layout))?;
    sink.write(layout::INDEX_FILE, &json(&index))?;
    sink.finish()?;
    Ok(Packed {
        digest,
        files: files.len(),
        components: manifest.components.len(),
        precompiled,
        bytes,
    })
}

/// Every file the application needs, by canonical path, with its media type.
fn application_files(manifest: &Manifest) -> Result<BTreeMap<PathBuf, &'static str>, BundleError> {
    let mut files = BTreeMap::new();
    files.insert(canonical(&manifest.path)?, layout::DATA_LAYER);
    let mut folders = BTreeSet::new();
    for spec in manifest.components.values() {
        files.insert(canonical(&spec.source)?, layout::WASM_LAYER);
        for mount in &spec.files {
            folders.insert(canonical(&mount.host)?);
        }
    }
    // The host loads these by name for wasi-nn (see `AppOptions::application`).
    let models = manifest.base_dir.join("models");
    if manifest
        .components
        .values()
        .any(|c| !c.ai_models.is_empty())
        && models.is_dir()
    {
        folders.insert(canonical(&models)?);
    }
    for folder in folders {
        add_tree(&folder, &mut files)?;
    }
    Ok(files)
}

/// Adds every regular file under `path` (or `path` itself, if a file),
/// following links to files, as data, unless it is already listed.
fn add_tree(path: &Path, files: &mut BTreeMap<PathBuf, &'static str>) -> Result<(), BundleError> {
    let metadata = std::fs::metadata(path).map_err(BundleError::io(path))?;
    if metadata.is_file() {
        files.entry(canonical(path)?).or_insert(layout::DATA_LAYER);
    } else if metadata.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(BundleError::io(path))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(BundleError::io(path))?;
        entries.sort();
        for entry in entries {
            add_tree(&entry, files)?;
        }
    }
    Ok(())
}

fn canonical(path: &Path) -> Result<PathBuf, BundleError> {
    path.canonicalize().map_err(BundleError::io(path))
}

/// The deepest folder that holds every path.
fn common_folder<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Option<PathBuf> {
    let mut common: Option<PathBuf> = None;
    for path in paths {
        let folder = path.parent()?.to_path_buf();
        common = Some(match common {
            None => folder,
            Some(common) => {
                let shared: PathBuf = common
                    .components()
                    .zip(folder.components())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a)
                    .collect();
                shared
            }
        });
    }
    common
}

fn not_a_bundle(path: &Path, problem: String) -> BundleError {
    BundleError::NotABundle {
        path: path.to_path_buf(),
        problem,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("the layout's types serialise")
}

/// Where blobs and the layout's two files are written: a folder, or a tar
/// (written beside its final name, and renamed when whole).
enum Sink {
    Folder(PathBuf),
    Tar {
        builder: tar::Builder<BufWriter<File>>,
        partial: PathBuf,
        path: PathBuf,
        written: BTreeSet<String>,
    },
}

impl Sink {
    fn create(output: &Path) -> Result<Self, BundleError> {
        if output.extension().is_some_and(|e| e == "tar") {
            let partial = output.with_extension("tar.partial");
            let file = File::create(&partial).map_err(BundleError::io(&partial))?;
            let mut builder = tar::Builder::new(BufWriter::new(file));
            builder.mode(tar::HeaderMode::Deterministic);
            Ok(Self::Tar {
                builder,
                partial,
                path: output.to_path_buf(),
                written: BTreeSet::new(),
            })
        } else {
            let blobs = output.join(layout::BLOBS_DIR);
            std::fs::create_dir_all(&blobs).map_err(BundleError::io(&blobs))?;
            Ok(Self::Folder(output.to_path_buf()))
        }
    }

    /// Writes a file's content as a blob; returns its digest and size.
    fn blob_from_file(&mut self, path: &Path) -> Result<(String, u64), BundleError> {
        let (digest, size) = hash_file(path)?;
        let name = blob_path(&digest);
        match self {
            Self::Folder(root) => {
                let dest = root.join(&name);
                if !dest.is_file() {
                    let partial = dest.with_extension("partial");
                    std::fs::copy(path, &partial).map_err(BundleError::io(&partial))?;
                    std::fs::rename(&partial, &dest).map_err(BundleError::io(&dest))?;
                }
            }
            Self::Tar {
                builder,
                partial,
                written,
                ..
            } => {
                if written.insert(name.clone()) {
                    let file = File::open(path).map_err(BundleError::io(path))?;
                    let mut header = tar_header(size);
                    builder
                        .append_data(&mut header, &name, file)
                        .map_err(BundleError::io(partial.as_path()))?;
                }
            }
        }
        Ok((digest, size))
    }

    fn blob_from_bytes(&mut self, bytes: &[u8]) -> Result<(String, u64), BundleError> {
        let digest = layout::digest_name(&Sha256::digest(bytes));
        let name = blob_path(&digest);
        self.write(&name, bytes)?;
        Ok((digest, bytes.len() as u64))
    }

    fn json_blob<T: serde::Serialize>(
        &mut self,
        media_type: &str,
        value: &T,
    ) -> Result<Descriptor, BundleError> {
        let (digest, size) = self.blob_from_bytes(&json(value))?;
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
        })
    }

    /// Writes `bytes` as the layout's file `name` (a blob, or one of its two files).
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), BundleError> {
        match self {
            Self::Folder(root) => {
                let dest = root.join(name);
                std::fs::write(&dest, bytes).map_err(BundleError::io(&dest))
            }
            Self::Tar {
                builder,
                partial,
                written,
                ..
            } => {
                if written.insert(name.to_string()) {
                    let mut header = tar_header(bytes.len() as u64);
                    builder
                        .append_data(&mut header, name, bytes)
                        .map_err(BundleError::io(partial.as_path()))?;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<(), BundleError> {
        if let Self::Tar {
            builder,
            partial,
            path,
            ..
        } = self
        {
            let mut out = builder.into_inner().map_err(BundleError::io(&partial))?;
            out.flush().map_err(BundleError::io(&partial))?;
            drop(out);
            std::fs::rename(&partial, &path).map_err(BundleError::io(&path))?;
        }
        Ok(())
    }
}

fn blob_path(digest: &str) -> String {
    let hex = layout::blob_name(digest).expect("digest_name makes sha256 digests");
    format!("{}/{hex}", layout::BLOBS_DIR)
}

fn tar_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn hash_file(path: &Path) -> Result<(String, u64), BundleError> {
    let mut file = File::open(path).map_err(BundleError::io(path))?;
    hash_copy(&mut file, &mut std::io::sink()).map_err(BundleError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_folder_holds_every_path() {
        let paths = [
            PathBuf::from("/r/deploy/edge/spin.toml"),
            PathBuf::from("/r/target/edge/a.wasm"),
            PathBuf::from("/r/models/m/model.toml"),
        ];
        assert_eq!(common_folder(paths.iter()), Some(PathBuf::from("/r")));
        let one = [PathBuf::from("/r/app/spin.toml")];
        assert_eq!(common_folder(one.iter()), Some(PathBuf::from("/r/app")));
    }
}
