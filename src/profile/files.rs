//! How a profile's files are written and read: private (0700 directories,
//! 0600 files), atomic (a crash leaves the old file or the new one, never a
//! mix), and typed JSON records that tell "absent" from "damaged".

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// What was on disk when a [`Stored`] record was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileState {
    /// No file: the record starts empty.
    Absent,
    /// A file that parsed.
    Present,
    /// A file that could not be read or parsed, and why. The record starts
    /// empty; callers that enforce a rule decide what that means.
    Damaged(String),
}

/// A JSON record kept in one profile file, loaded and saved one way: read
/// whole, written atomically, and not rewritten when unchanged (each write
/// is a synced file replacement).
#[derive(Debug)]
pub(crate) struct Stored<T> {
    path: PathBuf,
    value: T,
    state: FileState,
    /// The file's text as loaded or last saved.
    on_disk: Option<String>,
}

impl<T: Serialize + DeserializeOwned + Default> Stored<T> {
    pub(crate) fn load(path: &Path) -> Stored<T> {
        let (value, state, on_disk) = match fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(value) => (value, FileState::Present, Some(text)),
                Err(e) => (T::default(), FileState::Damaged(e.to_string()), Some(text)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (T::default(), FileState::Absent, None),
            Err(e) => (T::default(), FileState::Damaged(e.to_string()), None),
        };
        Stored { path: path.to_owned(), value, state, on_disk }
    }

    /// Writes the record if it differs from what is on disk.
    pub(crate) fn save(&mut self) -> Result<(), ProfileError> {
        let text = serde_json::to_string_pretty(&self.value).expect("profile records always serialise");
        if self.on_disk.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        write_private(&self.path, text.as_bytes())?;
        self.on_disk = Some(text);
        self.state = FileState::Present;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &FileState {
        &self.state
    }

    /// When the file was damaged: keeps a copy beside it (`NAME.damaged`)
    /// for whoever investigates, and returns why it is damaged.
    pub(crate) fn keep_damaged_copy(&self) -> Option<String> {
        let FileState::Damaged(why) = &self.state else { return None };
        let mut copy = self.path.clone().into_os_string();
        copy.push(".damaged");
        let _ = fs::copy(&self.path, &copy);
        Some(why.clone())
    }
}

impl<T> std::ops::Deref for Stored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Stored<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Record = BTreeMap<String, u64>;

    #[test]
    fn absent_present_damaged_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.json");
        let mut r: Stored<Record> = Stored::load(&path);
        assert_eq!(r.state(), &FileState::Absent);
        r.insert("a".into(), 1);
        r.save().unwrap();
        let back: Stored<Record> = Stored::load(&path);
        assert_eq!(back.state(), &FileState::Present);
        assert_eq!(back["a"], 1);
        std::fs::write(&path, "nonsense").unwrap();
        let damaged: Stored<Record> = Stored::load(&path);
        assert!(matches!(damaged.state(), FileState::Damaged(_)));
        assert!(damaged.is_empty());
    }

    #[test]
    fn unchanged_record_is_not_rewritten_and_writes_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p").join("r.json");
        let mut r: Stored<Record> = Stored::load(&path);
        r.insert("a".into(), 1);
        r.save().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let mut back: Stored<Record> = Stored::load(&path);
        // Someone else's write after our load stays: we had nothing new.
        std::fs::write(&path, "marker").unwrap();
        back.save().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "marker");
        back.insert("b".into(), 2);
        back.save().unwrap();
        assert_eq!(Stored::<Record>::load(&path)["b"], 2);
    }
}
