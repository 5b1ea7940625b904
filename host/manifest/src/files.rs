//! A component's `files` and `exclude_files`, resolved to what its instances
//! see, as Spin resolves them:
//!
//! - `"assets/**/*.png"` (a glob): each matching file, at the same relative
//!   path under `/` in the guest;
//! - `"static/index.html"`: that file at `/static/index.html`; a directory
//!   named this way is mounted whole at `/static` (what this host always did);
//! - `{ source = "assets", destination = "/web" }`: the directory (or file)
//!   at that guest path;
//! - `exclude_files = ["assets/secret/*"]`: globs, relative to the manifest's
//!   folder, of files left out of any of the above.

use std::path::{Path, PathBuf};

/// What a guest path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Directory,
    File,
}

/// A read-only host file or directory at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    pub host: PathBuf,
    pub guest: String,
    pub kind: MountKind,
}

/// A `files` entry as written.
#[derive(Debug, Clone)]
pub enum FilesEntry {
    Pattern(String),
    Placement { source: String, destination: String },
}

const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

/// Resolves the entries against `base_dir`. Errors name the entry.
pub fn resolve(
    base_dir: &Path,
    entries: &[FilesEntry],
    exclude: &[String],
) -> Result<Vec<FileMount>, String> {
    let exclude = exclude
        .iter()
        .map(|p| {
            glob::Pattern::new(p.trim_start_matches("./"))
                .map_err(|e| format!("exclude_files {p:?} is not a glob pattern: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let excluded = |host: &Path| {
        let relative = host.strip_prefix(base_dir).unwrap_or(host);
        exclude.iter().any(|p| p.matches_path(relative))
    };

    let mut mounts = Vec::new();
    for entry in entries {
        match entry {
            FilesEntry::Pattern(pattern) => {
                let pattern = pattern.trim_start_matches("./");
                if pattern.contains(GLOB_CHARS) {
                    let full = base_dir.join(pattern);
                    let full = full.to_str().ok_or_else(|| {
                        format!("{pattern:?}: the manifest's folder is not valid UTF-8")
                    })?;
                    let matches = glob::glob(full)
                        .map_err(|e| format!("{pattern:?} is not a glob pattern: {e}"))?;
                    for found in matches {
                        let host = found.map_err(|e| format!("{pattern:?}: {e}"))?;
                        if host.is_file() {
                            let guest = guest_of(base_dir, &host)?;
                            mounts.push(file(host, guest));
                        }
                    }
                } else {
                    let host = base_dir.join(pattern);
                    let guest = format!("/{}", pattern.trim_end_matches('/'));
                    mounts.push(existing(host, guest)?);
                }
            }
            FilesEntry::Placement {
                source,
                destination,
            } => {
                if !destination.starts_with('/') || destination.split('/').any(|s| s == "..") {
                    return Err(format!(
                        "destination {destination:?} must be an absolute guest path without '..'"
                    ));
                }
                mounts.push(existing(base_dir.join(source), destination.clone())?);
            }
        }
    }
    if exclude.is_empty() {
        return Ok(mounts);
    }
    // A directory with an excluded file in it is mounted file by file.
    let mut kept = Vec::new();
    for mount in mounts {
        match mount.kind {
            MountKind::File if excluded(&mount.host) => {}
            MountKind::File => kept.push(mount),
            MountKind::Directory => {
                let files = walk(&mount.host)?;
                if files.iter().any(|f| excluded(f)) {
                    for host in files.into_iter().filter(|f| !excluded(f)) {
                        let inside = host.strip_prefix(&mount.host).unwrap_or(&host);
                        let guest = format!(
                            "{}/{}",
                            mount.guest.trim_end_matches('/'),
                            inside.to_string_lossy()
                        );
                        kept.push(file(host, guest));
                    }
                } else {
                    kept.push(mount);
                }
            }
        }
    }
    Ok(kept)
}

fn file(host: PathBuf, guest: String) -> FileMount {
    FileMount {
        host,
        guest,
        kind: MountKind::File,
    }
}

/// A path the manifest names, which must exist.
fn existing(host: PathBuf, guest: String) -> Result<FileMount, String> {
    let kind = if host.is_dir() {
        MountKind::Directory
    } else if host.is_file() {
        MountKind::File
    } else {
        return Err(format!("{} does not exist", host.display()));
    };
    Ok(FileMount { host, guest, kind })
}

fn guest_of(base_dir: &Path, host: &Path) -> Result<String, String> {
    let relative = host
        .strip_prefix(base_dir)
        .map_err(|_| format!("{} is outside the manifest's folder", host.display()))?;
    Ok(format!("/{}", relative.to_string_lossy()))
}

/// Every file under `dir`, in a stable order.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "static/index.html",
            "static/img/a.png",
            "static/img/b.png",
            "static/secret/key.txt",
            "README.md",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        dir
    }

    fn guests(mounts: &[FileMount]) -> Vec<(&str, MountKind)> {
        mounts.iter().map(|m| (m.guest.as_str(), m.kind)).collect()
    }

    #[test]
    fn globs_mount_each_file_at_its_relative_path() {
        let dir = tree();
        let mounts = resolve(
            dir.path(),
            &[FilesEntry::Pattern("static/**/*.png".into())],
            &[],
        )
        .unwrap();
        assert_eq!(
            guests(&mounts),
            [
                ("/static/img/a.png", MountKind::File),
                ("/static/img/b.png", MountKind::File)
            ]
        );
    }

    #[test]
    fn paths_and_placements() {
        let dir = tree();
        let mounts = resolve(
            dir.path(),
            &[
                FilesEntry::Pattern("README.md".into()),
                FilesEntry::Pattern("static".into()),
                FilesEntry::Placement {
                    source: "static/img".into(),
                    destination: "/images".into(),
                },
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            guests(&mounts),
            [
                ("/README.md", MountKind::File),
                ("/static", MountKind::Directory),
                ("/images", MountKind::Directory)
            ]
        );
    }

    #[test]
    fn exclusions_leave_files_out_of_globs_and_directories() {
        let dir = tree();
        let mounts = resolve(
            dir.path(),
            &[FilesEntry::Placement {
                source: "static".into(),
                destination: "/".into(),
            }],
            &["static/secret/*".into()],
        )
        .unwrap();
        assert_eq!(
            guests(&mounts),
            [
                ("/img/a.png", MountKind::File),
                ("/img/b.png", MountKind::File),
                ("/index.html", MountKind::File)
            ]
        );
    }

    #[test]
    fn bad_entries_say_why() {
        let dir = tree();
        let error = |entry: FilesEntry| resolve(dir.path(), &[entry], &[]).unwrap_err();
        assert!(error(FilesEntry::Pattern("missing".into())).contains("does not exist"));
        assert!(
            error(FilesEntry::Placement {
                source: "static".into(),
                destination: "web".into()
            })
            .contains("absolute")
        );
    }
}
