//! How a profile's files are written: private (0700 directories, 0600
//! files) and atomic (a crash leaves the old file or the new one, never a
//! mix).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::ProfileError;

/// Creates the directory (and parents) with mode 0700.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), ProfileError> {
    let io = |source| ProfileError::Io { path: dir.to_owned(), source };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    // `recursive` leaves an existing directory's mode alone.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Writes a 0600 file atomically: the bytes go to a temporary file in the
/// same directory (created 0600 by `tempfile`), are synced, and the file is
/// renamed over `path`.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let io = |source| ProfileError::Io { path: path.to_owned(), source };
    let dir = path.parent().expect("profile files live in a profile directory");
    ensure_dir(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Tightens a file's or directory's permissions to `mode`, telling `warn`.
pub(crate) fn tighten(path: &Path, mode: u32, warn: &mut dyn FnMut(String)) {
    let Ok(meta) = fs::metadata(path) else { return };
    let current = meta.permissions().mode() & 0o777;
    if current & !mode != 0 {
        match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
            Ok(()) => {
                warn(format!("{} had permissions {current:o}; changed to {mode:o} (it holds secrets)", path.display()))
            }
            Err(e) => warn(format!(
                "{} has permissions {current:o} and could not be changed to {mode:o}: {e}",
                path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_private_and_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p").join("r.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(fs::read(&path).unwrap(), b"two");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut warned = Vec::new();
        tighten(&path, 0o600, &mut |w| warned.push(w));
        assert_eq!((mode(&path), warned.len()), (0o600, 1));
    }
}
