//! What a profile keeps on disk, behind one type: [`Profile`].
//!
//! A profile is one directory under the data dir (0700), holding:
//!
//! | file            | what                                                   | module            |
//! |-----------------|--------------------------------------------------------|-------------------|
//! | `session.json`  | homeserver, user, device, access token, identity key   | [`session`]       |
//! | `store.key`     | the generated key of the encrypted store (hex)         | [`session`]       |
//! | `store/`        | matrix-sdk's encrypted SQLite stores (state, crypto)    | (the SDK's)       |
//! | `lock`          | the one-process-per-profile `flock`, and its turn count | [`lock`]          |
//! | `lock.wait`     | marks commands waiting for it (a shared `flock`)        | [`lock`]          |
//! | `megolm.json`   | outbound Megolm sessions' precise times, R3's limits    | [`megolm_ledger`] |
//! | `olm.json`      | R11's new-session times, R7's receipts, key requests    | [`olm_ledger`]    |
//! | `sent.jsonl`    | `send --txn-prefix`'s journal                           | [`journal`]       |
//! | `inbox.jsonl`   | what other commands' syncs received, for `sync`         | [`inbox`]         |
//! | `positions.jsonl` | session and index of each message sent, for its echo  | [`positions`]     |
//!
//! Every file is 0600 and written atomically ([`files`]); looser permissions
//! found on disk are tightened with a warning. Nothing here decides a rule:
//! the ledgers are plain data that `e2ee` reads and `commands` update.

pub(crate) mod files;
pub(crate) mod inbox;
pub(crate) mod journal;
pub(crate) mod lock;
pub(crate) mod megolm_ledger;
pub(crate) mod olm_ledger;
pub(crate) mod positions;
pub(crate) mod session;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use files::{ensure_dir, tighten, write_private, Stored};
use lock::ProfileLock;
use megolm_ledger::MegolmLedger;
use olm_ledger::OlmLedger;
use session::SessionFile;

use crate::error::CliResult;
use crate::ui::output::Output;

/// The file names inside one profile directory.
#[derive(Debug, Clone)]
pub(crate) struct ProfilePaths {
    pub(crate) dir: PathBuf,
    pub(crate) session_file: PathBuf,
    /// The generated store key (hex), when not taken from the environment.
    pub(crate) key_file: PathBuf,
    /// matrix-sdk's SQLite stores live here.
    pub(crate) store_dir: PathBuf,
    pub(crate) lock_file: PathBuf,
    pub(crate) megolm_ledger: PathBuf,
    pub(crate) olm_ledger: PathBuf,
    pub(crate) send_journal: PathBuf,
    pub(crate) inbox: PathBuf,
    pub(crate) positions: PathBuf,
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
            inbox: dir.join("inbox.jsonl"),
            positions: dir.join("positions.jsonl"),
            dir,
        }
    }

    /// The crypto database inside the store directory; its absence means the
    /// Olm account is gone.
    pub(crate) fn crypto_db(&self) -> PathBuf {
        self.store_dir.join("matrix-sdk-crypto.sqlite3")
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProfileError {
    #[error("no session in profile directory {0}")]
    Missing(PathBuf),
    #[error("the session file {path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("could not read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One profile: its paths, and (once taken) its lock.
#[derive(Debug)]
pub(crate) struct Profile {
    paths: ProfilePaths,
    lock: Option<ProfileLock>,
    /// The number of this process's last hold of the lock.
    last_turn: Option<u64>,
}

impl Profile {
    pub(crate) fn new(dir: PathBuf) -> Profile {
        Profile { paths: ProfilePaths::new(dir), lock: None, last_turn: None }
    }

    pub(crate) fn paths(&self) -> &ProfilePaths {
        &self.paths
    }

    /// Takes the profile lock (once); every command that opens the store or
    /// changes the profile's files holds it until it exits.
    pub(crate) async fn lock(&mut self, timeout: Duration, out: &Output) -> CliResult<()> {
        if self.lock.is_none() {
            ensure_dir(&self.paths.dir)?;
            let held = lock::acquire(&self.paths.lock_file, timeout, out).await?;
            self.last_turn = Some(held.turn);
            self.lock = Some(held);
        }
        Ok(())
    }

    /// Whether this process holds the lock now.
    pub(crate) fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Gives the lock back (`sync --follow`, between its turns). Whatever
    /// this process read from the store may be stale once another process
    /// had it: see [`Profile::lock_turn`].
    pub(crate) fn unlock(&mut self) {
        self.lock = None;
    }

    /// Takes the lock again for one turn, after every command that waits
    /// for it, however long that takes. Returns whether another process
    /// held it since this one gave it back.
    pub(crate) async fn lock_turn(&mut self) -> CliResult<bool> {
        if self.lock.is_some() {
            return Ok(false);
        }
        let held = lock::acquire_turn(&self.paths.lock_file).await?;
        let others = self.last_turn != Some(held.previous);
        self.last_turn = Some(held.turn);
        self.lock = Some(held);
        Ok(others)
    }

    /// Reads `session.json`, tightening its permissions (and the
    /// directory's) first if needed; `warn` hears of each one fixed.
    pub(crate) fn load_session(&self, warn: &mut dyn FnMut(String)) -> Result<SessionFile, ProfileError> {
        let path = &self.paths.session_file;
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProfileError::Missing(self.paths.dir.clone()));
            }
            Err(source) => return Err(ProfileError::Io { path: path.clone(), source }),
        };
        tighten(&self.paths.dir, 0o700, warn);
        tighten(path, 0o600, warn);
        serde_json::from_str(&text).map_err(|e| ProfileError::Corrupt { path: path.clone(), reason: e.to_string() })
    }

    pub(crate) fn save_session(&self, session: &SessionFile) -> Result<(), ProfileError> {
        let text = serde_json::to_string_pretty(session).expect("SessionFile always serialises");
        write_private(&self.paths.session_file, text.as_bytes())
    }

    /// Reads `store.key`; `Ok(None)` when it does not exist.
    pub(crate) fn read_store_key(&self, warn: &mut dyn FnMut(String)) -> Result<Option<[u8; 32]>, ProfileError> {
        let path = &self.paths.key_file;
        match fs::read_to_string(path) {
            Ok(text) => {
                tighten(path, 0o600, warn);
                session::key_from_hex(&text).map(Some).ok_or_else(|| ProfileError::Corrupt {
                    path: path.clone(),
                    reason: "expected 64 hex digits".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ProfileError::Io { path: path.clone(), source }),
        }
    }

    pub(crate) fn write_store_key(&self, key: &[u8; 32]) -> Result<(), ProfileError> {
        write_private(&self.paths.key_file, session::key_to_hex(key).as_bytes())
    }

    /// `megolm.json`: see [`megolm_ledger`]. A damaged file fails closed:
    /// `warn` hears of it, a copy is kept, and every outbound session made
    /// before now rotates before its next message.
    pub(crate) fn megolm_ledger(&self, now: u64, warn: &mut dyn FnMut(String)) -> Stored<MegolmLedger> {
        let mut ledger: Stored<MegolmLedger> = Stored::load(&self.paths.megolm_ledger);
        if let Some(why) = ledger.keep_damaged_copy() {
            warn(format!(
                "{} is damaged ({why}); every room's Megolm session now rotates before its next message, and the \
                 strictest rotation limits seen before are lost (the room's current ones apply); a copy is kept \
                 beside it (.damaged)",
                self.paths.megolm_ledger.display()
            ));
            ledger.distrust_before = Some(now);
        }
        ledger
    }

    /// `olm.json`: see [`olm_ledger`]. A damaged file fails closed: `warn`
    /// hears of it, a copy is kept, and R11 counts a new session as made
    /// with every device now.
    pub(crate) fn olm_ledger(&self, now: u64, warn: &mut dyn FnMut(String)) -> Stored<OlmLedger> {
        let mut ledger: Stored<OlmLedger> = Stored::load(&self.paths.olm_ledger);
        if let Some(why) = ledger.keep_damaged_copy() {
            warn(format!(
                "{} is damaged ({why}); R11 now counts a new Olm session as made with every device just now (no \
                 new one for an hour without --force); a copy is kept beside it (.damaged)",
                self.paths.olm_ledger.display()
            ));
            ledger.all_devices_since = Some(now);
        }
        ledger
    }

    /// `inbox.jsonl`: see [`inbox`].
    pub(crate) fn inbox(&self) -> inbox::Inbox {
        inbox::Inbox::new(&self.paths.inbox)
    }

    /// `positions.jsonl`: see [`positions`].
    pub(crate) fn own_positions(&self) -> positions::OwnPositions {
        positions::OwnPositions::new(&self.paths.positions)
    }

    /// `sent.jsonl`: see [`journal`].
    pub(crate) fn send_journal(&self, device_id: &str) -> CliResult<journal::SendJournal> {
        journal::SendJournal::open(&self.paths.send_journal, device_id)
    }

    /// Deletes the session, the store key, the store, the send journal
    /// (its transaction ids were this device's), the inbox and the sent
    /// messages' positions; returns what it removed.
    /// The rule ledgers stay.
    pub(crate) fn remove_login(&self) -> Result<Vec<String>, ProfileError> {
        let mut removed = Vec::new();
        let paths = &self.paths;
        for file in [&paths.session_file, &paths.key_file, &paths.send_journal, &paths.inbox, &paths.positions] {
            if file.exists() {
                fs::remove_file(file).map_err(|source| io(file, source))?;
                removed.push(file.display().to_string());
            }
        }
        if self.paths.store_dir.exists() {
            fs::remove_dir_all(&self.paths.store_dir).map_err(|source| io(&self.paths.store_dir, source))?;
            removed.push(self.paths.store_dir.display().to_string());
        }
        Ok(removed)
    }
}

fn io(path: &Path, source: std::io::Error) -> ProfileError {
    ProfileError::Io { path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn session_roundtrip_with_private_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let profile = Profile::new(tmp.path().join("p"));
        profile.save_session(&session::sample_session()).unwrap();
        let paths = profile.paths();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.session_file), 0o600);
        assert_eq!(mode(&paths.dir), 0o700);
        fs::set_permissions(&paths.session_file, fs::Permissions::from_mode(0o644)).unwrap();
        let mut warnings = Vec::new();
        let back = profile.load_session(&mut |w| warnings.push(w)).unwrap();
        assert_eq!(back.access_token, "syt_secret");
        assert_eq!(mode(&paths.session_file), 0o600);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn store_key_absent_present_damaged() {
        let tmp = tempfile::tempdir().unwrap();
        let profile = Profile::new(tmp.path().join("p"));
        assert!(profile.read_store_key(&mut |_| {}).unwrap().is_none());
        let key = session::generate_key();
        profile.write_store_key(&key).unwrap();
        assert_eq!(profile.read_store_key(&mut |_| {}).unwrap(), Some(key));
        fs::write(&profile.paths().key_file, "zz").unwrap();
        assert!(matches!(profile.read_store_key(&mut |_| {}), Err(ProfileError::Corrupt { .. })));
    }
}
