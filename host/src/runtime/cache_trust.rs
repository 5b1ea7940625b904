//! Whether the compile cache may be trusted with native code. A cache entry
//! is loaded with `unsafe` deserialisation: whoever can write the cache
//! directory or an entry in it can make the server run code of their choice.
//! So, before anything is loaded, the directory and each entry must belong to
//! the user the server runs as, and be writable by nobody else.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// A cache directory another user could write into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "compile cache {dir}: {problem}: another user could plant native code there; \
     fix its owner and mode (chmod 700) or use --no-cache / --cache-dir",
    dir = .dir.display()
)]
pub struct UntrustedCache {
    pub dir: PathBuf,
    pub problem: String,
}

/// Checks the cache directory. One that does not exist yet is fine: it is
/// created for this user alone when the first entry is stored; one that
/// cannot be examined holds nothing that could be loaded either.
pub fn check_dir(dir: &Path) -> Result<(), UntrustedCache> {
    // The directory itself may be reached through a symbolic link (a cache
    // on another disk): what matters is the directory it leads to.
    let Ok(metadata) = std::fs::metadata(dir) else {
        return Ok(());
    };
    if !metadata.is_dir() {
        return Ok(());
    }
    owned_by_us_alone(&metadata).map_err(|problem| UntrustedCache {
        dir: dir.to_path_buf(),
        problem,
    })
}

/// Checks a cache entry's metadata, as read without following a symbolic
/// link (`symlink_metadata`, or of the opened file): why it must not be
/// loaded, if it must not.
pub fn check_entry(metadata: &Metadata) -> Result<(), String> {
    let kind = metadata.file_type();
    if kind.is_symlink() {
        return Err("it is a symbolic link".to_string());
    }
    if !kind.is_file() {
        return Err("it is not a regular file".to_string());
    }
    owned_by_us_alone(metadata)
}

#[cfg(unix)]
fn owned_by_us_alone(metadata: &Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let us = unsafe { libc::geteuid() };
    if metadata.uid() != us {
        return Err(format!(
            "owned by uid {}, not this user (uid {us})",
            metadata.uid()
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "writable by its group or by others (mode {mode:04o})"
        ));
    }
    Ok(())
}

/// Elsewhere there are no owners and modes to check.
#[cfg(not(unix))]
fn owned_by_us_alone(_metadata: &Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn is_root() -> bool {
        // SAFETY: as above.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_private_directory_is_trusted_and_a_missing_one_too() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o700);
        assert_eq!(check_dir(dir.path()), Ok(()));
        chmod(dir.path(), 0o755);
        assert_eq!(check_dir(dir.path()), Ok(()), "readable by others is fine");
        assert_eq!(check_dir(&dir.path().join("not-yet")), Ok(()));
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o770, 0o707, 0o777] {
            chmod(dir.path(), mode);
            let error = check_dir(dir.path()).unwrap_err();
            assert!(
                error.problem.contains(&format!("mode {mode:04o}")),
                "{error}"
            );
            assert!(error.to_string().contains("chmod 700"), "{error}");
        }
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        if !is_root() {
            eprintln!("skipped: only root can give a directory away");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o700);
        std::os::unix::fs::chown(dir.path(), Some(12345), None).unwrap();
        let error = check_dir(dir.path()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("owned by uid 12345, not this user (uid 0)"),
            "{error}"
        );
    }

    #[test]
    fn entries_must_be_private_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("entry");
        std::fs::write(&file, b"compiled").unwrap();
        chmod(&file, 0o600);
        assert_eq!(
            check_entry(&std::fs::symlink_metadata(&file).unwrap()),
            Ok(())
        );

        chmod(&file, 0o666);
        let problem = check_entry(&std::fs::symlink_metadata(&file).unwrap()).unwrap_err();
        assert!(problem.contains("mode 0666"), "{problem}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let problem = check_entry(&std::fs::symlink_metadata(&link).unwrap()).unwrap_err();
        assert!(problem.contains("symbolic link"), "{problem}");

        let problem = check_entry(&std::fs::symlink_metadata(dir.path()).unwrap()).unwrap_err();
        assert!(problem.contains("not a regular file"), "{problem}");
    }
}
