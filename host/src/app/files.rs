//! A component's `files`, as its instances see them: WASI preopens are
//! directories, so single files (from globs, file placements, or directories
//! with files excluded) are gathered into a staging folder of the
//! application's own, by hard link (or copy, across file systems), mounted
//! at `/`. A directory with nothing of it staged is mounted as it is.

use std::path::Path;

use tempfile::TempDir;

use crate::manifest::{FileMount, MountKind};
use crate::runtime::Preopen;

/// The preopens of one component, and the staging folder they may use
/// (removed when dropped, with the application).
pub struct StagedFiles {
    pub preopens: Vec<Preopen>,
    pub staging: Option<TempDir>,
}

/// Stages `mounts` for component `id`.
pub fn stage(id: &str, mounts: &[FileMount]) -> std::io::Result<StagedFiles> {
    let files: Vec<&FileMount> = mounts
        .iter()
        .filter(|m| m.kind == MountKind::File)
        .collect();
    let directory = |m: &FileMount| Preopen {
        host: m.host.clone(),
        guest: m.guest.clone(),
    };
    if files.is_empty() {
        return Ok(StagedFiles {
            preopens: mounts.iter().map(directory).collect(),
            staging: None,
        });
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!("wasi-infer-files-{id}-"))
        .tempdir()?;
    let mut preopens = Vec::new();
    let mut staged: Vec<(std::path::PathBuf, String)> = files
        .iter()
        .map(|m| (m.host.clone(), m.guest.clone()))
        .collect();
    // A directory that shares guest paths with staged files joins them file
    // by file (two preopens cannot both hold a path).
    for mount in mounts.iter().filter(|m| m.kind == MountKind::Directory) {
        if files.iter().any(|f| overlaps(&f.guest, &mount.guest)) {
            for entry in walkdir::WalkDir::new(&mount.host).follow_links(true) {
                let entry = entry.map_err(std::io::Error::other)?;
                if entry.file_type().is_file() {
                    let inside = entry
                        .path()
                        .strip_prefix(&mount.host)
                        .unwrap_or(entry.path());
                    let guest = format!(
                        "{}/{}",
                        mount.guest.trim_end_matches('/'),
                        inside.to_string_lossy()
                    );
                    staged.push((entry.into_path(), guest));
                }
            }
        } else {
            preopens.push(directory(mount));
        }
    }
    for (host, guest) in &staged {
        let target = staging.path().join(guest.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        link_or_copy(host, &target)?;
    }
    preopens.push(Preopen {
        host: staging.path().to_path_buf(),
        guest: "/".into(),
    });
    Ok(StagedFiles {
        preopens,
        staging: Some(staging),
    })
}

/// Whether one guest path is the other or lies under it.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let under =
        |x: &str, y: &str| x.len() > y.len() && x.starts_with(y) && x[y.len()..].starts_with('/');
    a == b || a.is_empty() || b.is_empty() || under(a, b) || under(b, a)
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_files_are_staged_and_plain_directories_mounted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models/m")).unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        std::fs::write(dir.path().join("models/m/a"), "a").unwrap();
        let mount = |host: &str, guest: &str, kind| FileMount {
            host: dir.path().join(host),
            guest: guest.into(),
            kind,
        };
        let staged = stage(
            "web",
            &[
                mount("index.html", "/static/index.html", MountKind::File),
                mount("models", "/models", MountKind::Directory),
                // At the root, where the staged files are: joins them.
                mount("models/m", "/", MountKind::Directory),
            ],
        )
        .unwrap();
        let root = staged.staging.as_ref().unwrap().path();
        assert_eq!(staged.preopens.len(), 2);
        assert_eq!(staged.preopens[0].guest, "/models");
        assert_eq!(staged.preopens[1].host, root);
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("static/index.html"), "hi");
        assert_eq!(read("a"), "a");
        assert!(overlaps("/a/b", "/a") && overlaps("/", "/x") && !overlaps("/ab", "/a"));
    }
}
