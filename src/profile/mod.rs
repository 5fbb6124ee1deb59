//! What a profile keeps on disk, behind one type: [`Profile`].
//!
//! A profile is one directory under the data dir (0700), holding:
//!
//! | file            | what                                                   | module            |
//! |-----------------|--------------------------------------------------------|-------------------|
//! | `session.json`  | homeserver, user, device, access token, identity key   | [`session`]       |
//! | `store.key`     | the generated key of the encrypted stores (hex)         | [`session`]       |
//! | `store/`        | matrix-sdk's encrypted SQLite stores (state, crypto)    | (the SDK's)       |
//! | `state.sqlite3` | ratchet's own state, encrypted: the record stream (`sync`'s inbox and cursors), the rule ledgers, the send journal, sent messages' positions, Olm failures to recover from | [`state`] |
//! | `lock`          | the one-process-per-profile `flock`, and its turn count | [`lock`]          |
//! | `lock.wait`     | marks commands waiting for it (a shared `flock`)        | [`lock`]          |
//!
//! Every file is 0600 ([`files`]); looser permissions found on disk are
//! tightened with a warning. Nothing here decides a rule: the ledgers
//! ([`megolm_ledger`], [`olm_ledger`]) are plain data that `e2ee` reads and
//! `commands` update, kept in the state database.

pub(crate) mod files;
pub(crate) mod lock;
pub(crate) mod megolm_ledger;
pub(crate) mod olm_ledger;
pub(crate) mod session;
pub(crate) mod state;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use files::{ensure_dir, tighten, write_private};
use lock::ProfileLock;
use megolm_ledger::MegolmLedger;
use olm_ledger::OlmLedger;
use session::{SessionFile, StoreSecret};
use state::{Loaded, Opening, StateDb};

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
    /// ratchet's own state (see [`state`]).
    pub(crate) state_db: PathBuf,
}

impl ProfilePaths {
    pub(crate) fn new(dir: PathBuf) -> Self {
        ProfilePaths {
            session_file: dir.join("session.json"),
            key_file: dir.join("store.key"),
            store_dir: dir.join("store"),
            lock_file: dir.join("lock"),
            state_db: dir.join(state::FILE),
            dir,
        }
    }

    /// The crypto database inside the store directory; its absence means the
    /// Olm account is gone.
    pub(crate) fn crypto_db(&self) -> PathBuf {
        self.store_dir.join(CRYPTO_DB)
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

/// One profile: its paths, (once taken) its lock, and (once opened) its
/// state database.
#[derive(Debug)]
pub(crate) struct Profile {
    paths: ProfilePaths,
    lock: Option<ProfileLock>,
    /// The number of this process's last hold of the lock.
    last_turn: Option<u64>,
    state: Option<Arc<StateDb>>,
}

/// matrix-sdk's crypto database, in the store directory.
pub(crate) const CRYPTO_DB: &str = "matrix-sdk-crypto.sqlite3";

impl Profile {
    pub(crate) fn new(dir: PathBuf) -> Profile {
        Profile { paths: ProfilePaths::new(dir), lock: None, last_turn: None, state: None }
    }

    /// Opens the state database (once), with the store's secret. At login
    /// (`Opening::New`) a database is made for the new device. Otherwise a
    /// missing one, for a store that exists, means the rules' records were
    /// lost: the ledgers are set to the strictest case, with a warning.
    pub(crate) fn open_state(
        &mut self,
        secret: &StoreSecret,
        opening: Opening,
        warn: &mut dyn FnMut(String),
    ) -> CliResult<Arc<StateDb>> {
        if let Some(db) = &self.state {
            return Ok(db.clone());
        }
        let opened = StateDb::open(&self.paths.dir, secret, opening)?;
        for w in opened.warnings {
            warn(w);
        }
        if !opened.migrated.is_empty() {
            tracing::info!(files = ?opened.migrated, "migrated the profile's files into its state database");
        }
        let db = Arc::new(opened.db);
        if !opened.lost.is_empty() {
            let mut what = Vec::new();
            if opened.lost.contains(&"megolm") {
                what.push("every Megolm session rotates before its next message");
            }
            if opened.lost.contains(&"olm") {
                what.push("R11 counts a new Olm session as made with every device just now");
            }
            warn(format!(
                "{} was missing, so the rules' records are lost: {}",
                self.paths.state_db.display(),
                what.join(", and ")
            ));
        }
        self.state = Some(db.clone());
        Ok(db)
    }

    /// The state database, once opened ([`Profile::open_state`]).
    pub(crate) fn state(&self) -> CliResult<&StateDb> {
        self.state.as_deref().ok_or_else(|| crate::error::CliError::internal("the state database is not open"))
    }

    /// Closes the state database (before its file is removed).
    pub(crate) fn close_state(&mut self) {
        self.state = None;
    }

    /// Closes and deletes the state database, with SQLite's side files (a
    /// leftover of an interrupted login, or at logout).
    pub(crate) fn remove_state(&mut self) -> Result<(), ProfileError> {
        self.close_state();
        let db = &self.paths.state_db;
        let side = |suffix: &str| {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        for file in [db.clone(), side("-wal"), side("-shm"), side("-journal")] {
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(io(&file, source)),
            }
        }
        Ok(())
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

    /// Takes the lock without counting a turn (see
    /// [`lock::acquire_uncounted`]): followers keep their clients.
    pub(crate) async fn lock_uncounted(&mut self, timeout: Duration, out: &Output) -> CliResult<()> {
        if self.lock.is_none() {
            ensure_dir(&self.paths.dir)?;
            self.lock = Some(lock::acquire_uncounted(&self.paths.lock_file, timeout, out).await?);
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
        Ok(self.hold_turn(held))
    }

    /// Keeps a turn's lock; whether another process held it since this
    /// one's last turn.
    fn hold_turn(&mut self, held: lock::ProfileLock) -> bool {
        let others = self.last_turn != Some(held.previous);
        self.last_turn = Some(held.turn);
        self.lock = Some(held);
        others
    }

    /// Whether another process has taken (or holds) the lock since this
    /// one's last turn, as far as the lock file tells without the lock (a
    /// hint: [`Profile::lock_turn`] is the answer that counts).
    pub(crate) fn others_since_last_turn(&self) -> bool {
        self.last_turn.is_some() && lock::peek_turn(&self.paths.lock_file) != self.last_turn
    }

    /// [`Profile::lock_turn`], unless that takes longer than `within`
    /// (`None` then; the lock is not held).
    pub(crate) async fn lock_turn_within(&mut self, within: std::time::Duration) -> CliResult<Option<bool>> {
        if self.lock.is_some() {
            return Ok(Some(false));
        }
        let held = lock::acquire_turn_within(&self.paths.lock_file, within).await?;
        Ok(held.map(|held| self.hold_turn(held)))
    }

    /// Forgets which turn this process last held, so that its next turn
    /// counts as one after another process's (the client is restored).
    pub(crate) fn forget_turn(&mut self) {
        self.last_turn = None;
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

    /// Writes `session.json`, its tokens sealed under `secret` (see
    /// [`SessionFile::sealed`]): nothing in it is a secret in clear.
    /// A function that puts new tokens into `session.json` as it is on
    /// disk at that moment, sealed under `secret`: matrix-sdk calls it
    /// after each refresh of an OAuth 2.0 access token, which rotates the
    /// refresh token too (one not saved would log the profile out at the
    /// next refresh). Only the tokens change: whatever else the file says
    /// (a login's set-up still pending, say) stays.
    pub(crate) fn token_saver(
        &self,
        secret: StoreSecret,
    ) -> impl Fn(String, Option<String>) -> Result<(), String> + Send + Sync + 'static {
        let path = self.paths.session_file.clone();
        move |access_token, refresh_token| {
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut session: SessionFile =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            session.access_token = access_token;
            session.refresh_token = refresh_token;
            let sealed = session.sealed(&secret)?;
            let text = serde_json::to_string_pretty(&sealed).expect("SessionFile always serialises");
            write_private(&path, text.as_bytes()).map_err(|e| e.to_string())
        }
    }

    pub(crate) fn save_session(&self, session: &SessionFile, secret: &StoreSecret) -> crate::error::CliResult<()> {
        let sealed = session
            .sealed(secret)
            .map_err(|e| crate::error::CliError::internal(format!("could not seal the session's tokens: {e}")))?;
        let text = serde_json::to_string_pretty(&sealed).expect("SessionFile always serialises");
        Ok(write_private(&self.paths.session_file, text.as_bytes())?)
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

    /// The Megolm ledger: see [`megolm_ledger`]. A damaged value fails
    /// closed: `warn` hears of it, a copy is kept, and every outbound
    /// session made before now rotates before its next message.
    pub(crate) fn megolm_ledger(&self, now: u64, warn: &mut dyn FnMut(String)) -> CliResult<Ledger<MegolmLedger>> {
        let path = self.paths.state_db.display();
        Ledger::load("megolm", self.state_arc()?, &mut |why| {
            warn(format!(
                "the Megolm ledger in {path} is damaged ({why}); every room's Megolm session now rotates before its \
                 next message, and the strictest rotation limits seen before are lost (the room's current ones \
                 apply); a copy is kept beside it (megolm.damaged)"
            ));
            |l: &mut MegolmLedger| l.distrust_before = Some(now)
        })
    }

    /// The Olm ledger: see [`olm_ledger`]. A damaged value fails closed:
    /// `warn` hears of it, a copy is kept, and R11 counts a new session as
    /// made with every device now.
    pub(crate) fn olm_ledger(&self, now: u64, warn: &mut dyn FnMut(String)) -> CliResult<Ledger<OlmLedger>> {
        let path = self.paths.state_db.display();
        let mut ledger = Ledger::load("olm", self.state_arc()?, &mut |why| {
            warn(format!(
                "the Olm ledger in {path} is damaged ({why}); R11 now counts a new Olm session as made with every \
                 device just now (no new one for an hour without --force); a copy is kept beside it (olm.damaged)"
            ));
            |l: &mut OlmLedger| l.all_devices_since = Some(now)
        })?;
        // Bounded: written pruned at its next save.
        ledger.prune(now);
        Ok(ledger)
    }

    fn state_arc(&self) -> CliResult<Arc<StateDb>> {
        self.state.clone().ok_or_else(|| crate::error::CliError::internal("the state database is not open"))
    }

    /// Deletes the session, the store key, the store and the state
    /// database (its records, ledgers and journal were this device's, and
    /// are encrypted with the store key that goes); returns what it removed.
    pub(crate) fn remove_login(&mut self) -> Result<Vec<String>, ProfileError> {
        let mut removed = Vec::new();
        if self.paths.state_db.exists() {
            removed.push(self.paths.state_db.display().to_string());
        }
        self.remove_state()?;
        let paths = &self.paths;
        for file in [&paths.session_file, &paths.key_file] {
            if file.exists() {
                fs::remove_file(file).map_err(|source| io(file, source))?;
                removed.push(file.display().to_string());
            }
        }
        // The files of the layout before the state database, if a profile
        // was never opened since.
        for name in state::LEGACY_FILES {
            let file = paths.dir.join(name);
            if file.exists() {
                fs::remove_file(&file).map_err(|source| io(&file, source))?;
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

/// A rule ledger kept in the state database, loaded and saved one way: not
/// rewritten when unchanged, each save one transaction.
pub(crate) struct Ledger<T> {
    name: &'static str,
    value: T,
    /// Its JSON as loaded or last saved.
    on_disk: Option<Vec<u8>>,
    db: Arc<StateDb>,
}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Default> Ledger<T> {
    fn empty(name: &'static str, db: Arc<StateDb>) -> Ledger<T> {
        Ledger { name, value: T::default(), on_disk: None, db }
    }

    /// Loads it; when damaged, `damaged` hears why and returns how to read
    /// the empty ledger as the strictest case, and a copy is kept.
    fn load<F: FnOnce(&mut T)>(
        name: &'static str,
        db: Arc<StateDb>,
        damaged: &mut dyn FnMut(String) -> F,
    ) -> CliResult<Ledger<T>> {
        match db.ledger::<T>(name)? {
            Loaded::Absent => Ok(Ledger::empty(name, db)),
            Loaded::Present(value, plain) => Ok(Ledger { name, value, on_disk: Some(plain), db }),
            Loaded::Damaged(why) => {
                db.keep_damaged(name)?;
                let mut ledger = Ledger::empty(name, db);
                damaged(why)(&mut ledger.value);
                Ok(ledger)
            }
        }
    }

    /// Writes it if it changed.
    pub(crate) fn save(&mut self) -> CliResult<()> {
        let plain = serde_json::to_vec(&self.value).expect("ledgers always serialise");
        if self.on_disk.as_deref() == Some(plain.as_slice()) {
            return Ok(());
        }
        self.db.save_ledger(self.name, &plain)?;
        self.on_disk = Some(plain);
        Ok(())
    }
}

impl<T> std::fmt::Debug for Ledger<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<T> std::ops::Deref for Ledger<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Ledger<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// A profile's failure as the command's error (the error module knows
/// nothing of profiles).
impl From<ProfileError> for crate::error::CliError {
    fn from(err: ProfileError) -> Self {
        use crate::error::CliError;
        use ProfileError as P;
        match err {
            P::Missing(ref dir) => CliError::auth(format!("not logged in (no session in {})", dir.display()))
                .with_hint(format!(
                    "run `{}` first",
                    crate::ui::hint::ratchet("login --homeserver https://HOMESERVER --user USER")
                )),
            P::Corrupt { .. } => CliError::auth(err.to_string()).with_hint(format!(
                "run `{}` and `{}` to start this profile afresh",
                crate::ui::hint::ratchet("logout"),
                crate::ui::hint::ratchet("login")
            )),
            P::Io { .. } => CliError::failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn session_roundtrip_with_private_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let profile = Profile::new(tmp.path().join("p"));
        let secret = StoreSecret::Key(Box::new(zeroize::Zeroizing::new([7u8; 32])));
        profile.save_session(&session::sample_session(), &secret).unwrap();
        // The token is sealed: not in the file in clear (issue 31).
        let text = fs::read_to_string(&profile.paths().session_file).unwrap();
        assert!(!text.contains("syt_secret"), "{text}");
        let paths = profile.paths();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.session_file), 0o600);
        assert_eq!(mode(&paths.dir), 0o700);
        fs::set_permissions(&paths.session_file, fs::Permissions::from_mode(0o644)).unwrap();
        let mut warnings = Vec::new();
        let mut back = profile.load_session(&mut |w| warnings.push(w)).unwrap();
        assert!(back.access_token.is_empty(), "sealed until opened");
        back.unseal(&secret).unwrap();
        assert_eq!(back.access_token, "syt_secret");
        let other = StoreSecret::Key(Box::new(zeroize::Zeroizing::new([8u8; 32])));
        let mut wrong = profile.load_session(&mut |_| {}).unwrap();
        assert!(matches!(wrong.unseal(&other), Err(session::Unseal::WrongSecret)));
        // A file of an older ratchet, with the token in clear, still reads.
        let mut legacy = serde_json::to_value(session::sample_session()).unwrap();
        legacy["access_token"] = "syt_old".into();
        fs::write(&paths.session_file, legacy.to_string()).unwrap();
        let mut old = profile.load_session(&mut |_| {}).unwrap();
        assert!(old.tokens_in_clear());
        old.unseal(&secret).unwrap();
        assert_eq!(old.access_token, "syt_old");
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
