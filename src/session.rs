//! A profile's files: where they live, and the session file and store
//! passphrase that make a restored client the same device as at login.
//!
//! Everything here is a secret or guards one: directories are 0700, files
//! 0600, written atomically (temp file + rename), and looser permissions found
//! on disk are tightened with a warning. Nothing here logs a token or a
//! passphrase; `SessionFile`'s `Debug` redacts them.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::{SessionMeta, SessionTokens};
use serde::{Deserialize, Serialize};

/// A secret string whose `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The file names inside one profile directory.
#[derive(Debug, Clone)]
pub(crate) struct ProfilePaths {
    pub(crate) dir: PathBuf,
    pub(crate) session_file: PathBuf,
    /// The generated store key (hex), when not taken from the environment.
    pub(crate) key_file: PathBuf,
    /// matrix-sdk's SQLite stores (state, crypto, event cache, media) live here.
    pub(crate) store_dir: PathBuf,
    pub(crate) lock_file: PathBuf,
    /// ratchet's own record of outbound Megolm sessions (see `megolm.rs`).
    pub(crate) megolm_ledger: PathBuf,
    /// ratchet's own record of Olm sessions (see `olm.rs`).
    pub(crate) olm_ledger: PathBuf,
    /// Messages delivered by `send --txn-prefix` (see `journal.rs`).
    pub(crate) send_journal: PathBuf,
}

impl ProfilePaths {
    pub(crate) fn new(dir: PathBuf) -> Self {
        ProfilePaths {
            session_file: dir.join("session.json"),
            key_file: dir.join("store.key"),
            store_dir: dir.join("store"),
            lock_file: dir.join("lock"),
            megolm_ledger: dir.join("megolm.json"),
            olm_ledger: dir.join("olm.json"),
            send_journal: dir.join("sent.jsonl"),
            dir,
        }
    }

    /// The crypto database inside the store directory; its absence means the
    /// Olm account is gone.
    pub(crate) fn crypto_db(&self) -> PathBuf {
        self.store_dir.join("matrix-sdk-crypto.sqlite3")
    }
}

/// `session.json`: enough to restore the login without the password.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionFile {
    pub(crate) homeserver: String,
    pub(crate) user_id: OwnedUserId,
    pub(crate) device_id: OwnedDeviceId,
    pub(crate) access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    /// Our curve25519 identity key at login. A restored store must hold the
    /// same Olm account, or it is not this device's store.
    pub(crate) identity_key: String,
    /// Whether the store is unlocked by the generated key in `store.key` or
    /// by the passphrase in `RATCHET_STORE_PASSPHRASE`.
    pub(crate) store_secret: StoreSecretSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoreSecretSource {
    File,
    Env,
}

/// What unlocks the store. A generated key is 256 random bits and is used
/// as the store key directly; only a human-chosen passphrase goes through
/// the SDK's PBKDF2 (200,000 rounds for each of the four databases, which
/// would otherwise be paid on every command for no added strength).
#[derive(Clone)]
pub(crate) enum StoreSecret {
    Key(Box<[u8; 32]>),
    Passphrase(String),
}

impl fmt::Debug for SessionFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionFile")
            .field("homeserver", &self.homeserver)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("access_token", &"[redacted]")
            .field("identity_key", &self.identity_key)
            .finish_non_exhaustive()
    }
}

impl SessionFile {
    pub(crate) fn matrix_session(&self) -> MatrixSession {
        MatrixSession {
            meta: SessionMeta { user_id: self.user_id.clone(), device_id: self.device_id.clone() },
            tokens: SessionTokens {
                access_token: self.access_token.clone(),
                refresh_token: self.refresh_token.clone(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("no session in profile directory {0}")]
    Missing(PathBuf),
    #[error("the session file {path} is damaged: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("could not read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Reads `session.json`, tightening its permissions first if needed.
/// `warn` receives a message for each permission that had to be fixed.
pub(crate) fn load(paths: &ProfilePaths, warn: &mut dyn FnMut(String)) -> Result<SessionFile, SessionError> {
    let path = &paths.session_file;
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SessionError::Missing(paths.dir.clone())),
        Err(source) => return Err(SessionError::Io { path: path.clone(), source }),
    };
    tighten(&paths.dir, 0o700, warn);
    tighten(path, 0o600, warn);
    serde_json::from_str(&text).map_err(|source| SessionError::Corrupt { path: path.clone(), source })
}

pub(crate) fn save(paths: &ProfilePaths, session: &SessionFile) -> Result<(), SessionError> {
    let text = serde_json::to_string_pretty(session).expect("SessionFile always serialises");
    write_secret(&paths.session_file, text.as_bytes())
}

/// Creates the profile directory (and parents) with mode 0700.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), SessionError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SessionError::Io { path: dir.to_owned(), source })?;
    // `recursive` leaves an existing directory's mode alone.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|source| SessionError::Io { path: dir.to_owned(), source })
}

/// Writes a 0600 file atomically: a crash leaves the old file or the new one.
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), SessionError> {
    let io_err = |source| SessionError::Io { path: path.to_owned(), source };
    let dir = path.parent().expect("secret files live in a profile directory");
    ensure_dir(dir)?;
    let tmp = path.with_extension("tmp");
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_err)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

/// Generates a fresh store key: 32 random bytes.
pub(crate) fn generate_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    bytes
}

pub(crate) fn key_to_hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_from_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Reads `store.key`; `Ok(None)` when it does not exist.
pub(crate) fn read_key_file(
    paths: &ProfilePaths,
    warn: &mut dyn FnMut(String),
) -> Result<Option<[u8; 32]>, SessionError> {
    let path = &paths.key_file;
    match fs::read_to_string(path) {
        Ok(text) => {
            tighten(path, 0o600, warn);
            key_from_hex(&text).map(Some).ok_or_else(|| SessionError::Corrupt {
                path: path.clone(),
                source: serde::de::Error::custom("expected 64 hex digits"),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SessionError::Io { path: path.clone(), source }),
    }
}

fn tighten(path: &Path, mode: u32, warn: &mut dyn FnMut(String)) {
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

    fn sample() -> SessionFile {
        SessionFile {
            homeserver: "http://127.0.0.1:8008".into(),
            user_id: "@a:localhost".try_into().unwrap(),
            device_id: "DEV".into(),
            access_token: "syt_secret".into(),
            refresh_token: None,
            identity_key: "key".into(),
            store_secret: StoreSecretSource::File,
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        assert!(!format!("{:?}", sample()).contains("syt_secret"));
    }

    #[test]
    fn save_load_roundtrip_with_private_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = ProfilePaths::new(tmp.path().join("p"));
        save(&paths, &sample()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.session_file), 0o600);
        assert_eq!(mode(&paths.dir), 0o700);
        fs::set_permissions(&paths.session_file, fs::Permissions::from_mode(0o644)).unwrap();
        let mut warnings = Vec::new();
        let back = load(&paths, &mut |w| warnings.push(w)).unwrap();
        assert_eq!(back.access_token, "syt_secret");
        assert_eq!(mode(&paths.session_file), 0o600);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn keys_are_random_and_roundtrip_through_hex() {
        let a = generate_key();
        assert_ne!(a, generate_key());
        let hex = key_to_hex(&a);
        assert_eq!(hex.len(), 64);
        assert_eq!(key_from_hex(&hex), Some(a));
        assert_eq!(key_from_hex(&hex[..63]), None);
        assert_eq!(key_from_hex(&"zz".repeat(32)), None);
    }
}
