//! `state.sqlite3`: ratchet's own state, in one encrypted, transactional
//! SQLite database beside matrix-sdk's stores (issue 18). It replaces five
//! hand-made files (`inbox.jsonl`, `sent.jsonl`, `positions.jsonl`,
//! `megolm.json`, `olm.json`), each of which had its own crash and damage
//! handling, and one of which kept decrypted messages in clear.
//!
//! What it holds, each table written only through this module:
//!
//! | table        | what                                                          |
//! |--------------|---------------------------------------------------------------|
//! | `records`    | every record a sync brought (the stream `sync` delivers), with whether `sync` delivered it: the inbox, and the history `--after-cursor` replays |
//! | `ledgers`    | the rule ledgers: `megolm` (R3's strictest limits, R5's precise ages) and `olm` (R11's record, R7's receipts, R13's key requests) |
//! | `journal`    | `send --txn-prefix`'s journal                                 |
//! | `positions`  | the Megolm session and index of each message this device sent |
//! | `olm_failures` | undecryptable Olm messages not yet recovered from (R9)     |
//! | `utds`, `marks`, `gaps` | undecryptable events to retry, each room's last event, the gaps of limited timelines |
//! | `shares`     | who each outbound Megolm session was given to (`doctor --sent`) |
//! | `meta`       | the store cipher (encrypted by the profile's store secret), this database's id, counters |
//!
//! **Encryption.** Every value is encrypted with a `StoreCipher` (XChaCha20-
//! Poly1305), exactly as matrix-sdk-sqlite does it: a random cipher,
//! exported under the profile's store key (or passphrase, through PBKDF2) in
//! `meta`. Lookup keys that name something (room, event, transaction ids) are
//! keyed hashes (`StoreCipher::hash_key`). No decrypted text, key or token
//! is on disk in clear, in either store-secret mode.
//!
//! **Transactions.** Each change is one SQLite transaction (WAL mode); a kill
//! leaves the state before or after it, never between.
//!
//! **Schema.** `PRAGMA user_version` holds the schema version: a newer one is
//! refused (made by a newer ratchet), older ones are migrated in order. The
//! files of the layout before this database are migrated once, in the same
//! transaction as the schema, then deleted (`legacy`).
//!
//! **Damage.** A database that SQLite cannot read, or whose cipher the
//! profile's secret does not open, is refused: every command that needs it
//! exits 1 naming the file (the rules it holds must not run on a guess). A
//! single ledger value that does not decrypt or parse fails closed, as the
//! old files did (see `Profile`'s ledgers).
//!
//! **Retention.** Delivered records are kept for `--after-cursor` while they
//! are among the newest [`KEEP_DELIVERED`] or younger than [`KEEP_DAYS`]
//! days; undelivered ones up to [`MAX_PENDING`], past which the oldest go
//! and are counted (`sync` says so first: `inbox_gap`). The journal and the
//! positions keep their newest entries.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use matrix_sdk_store_encryption::StoreCipher;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::session::StoreSecret;
use crate::error::{CliError, CliResult};
use crate::ui::output::Captured;

mod journal;
mod ledgers;
mod legacy;
mod records;
mod sealed;
mod shares;
#[cfg(test)]
mod tests;

pub(crate) use journal::{text_hash, JournalEntry, Position, SERVER_TXN_MEMORY_MS};
pub(crate) use legacy::FILES as LEGACY_FILES;
pub(crate) use records::{Gap, OlmFailure, PendingUtd, SyncWrite, GAP_CLOSED, GAP_OPEN};
use sealed::{open_sealed, seal};
pub(crate) use shares::ShareRecord;

/// The database's file name in the profile directory.
pub(crate) const FILE: &str = "state.sqlite3";

/// The schema this ratchet writes. Each entry of [`MIGRATIONS`] moves the
/// database one version up.
const SCHEMA: i64 = 3;

const MIGRATIONS: [&str; SCHEMA as usize] = [
    // 0 → 1
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE records (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         room BLOB,
         at_ms INTEGER NOT NULL,
         delivered_ms INTEGER,
         value BLOB NOT NULL
     );
     CREATE INDEX records_pending ON records(seq) WHERE delivered_ms IS NULL;
     CREATE INDEX records_room ON records(room, seq);
     CREATE TABLE ledgers (name TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE journal (key BLOB PRIMARY KEY, at INTEGER NOT NULL, value BLOB NOT NULL);
     CREATE INDEX journal_age ON journal(at);
     CREATE TABLE positions (event BLOB PRIMARY KEY, at INTEGER NOT NULL, value BLOB NOT NULL);
     CREATE INDEX positions_age ON positions(at);
     CREATE TABLE olm_failures (key BLOB PRIMARY KEY, at_ms INTEGER NOT NULL, value BLOB NOT NULL);",
    // 1 → 2 (issue 28): undecryptable events kept to retry, each room's
    // last kept event, and the gaps of limited timelines.
    "CREATE TABLE utds (event BLOB PRIMARY KEY, at_ms INTEGER NOT NULL, trust INTEGER NOT NULL, value BLOB NOT NULL);
     CREATE INDEX utds_age ON utds(at_ms);
     CREATE TABLE marks (room BLOB PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE gaps (id INTEGER PRIMARY KEY AUTOINCREMENT, state INTEGER NOT NULL, value BLOB NOT NULL);",
    // 2 → 3 (issue 32): who each outbound Megolm session was given to.
    "CREATE TABLE shares (session BLOB PRIMARY KEY, at INTEGER NOT NULL, value BLOB NOT NULL);
     CREATE INDEX shares_age ON shares(at);",
];

/// Delivered records kept at least (with [`KEEP_DAYS`], whichever keeps more).
pub(crate) const KEEP_DELIVERED: i64 = 10_000;
/// Days delivered records are kept at least.
pub(crate) const KEEP_DAYS: u64 = 7;
/// Undelivered records kept at most; past that the oldest go, counted.
pub(crate) const MAX_PENDING: i64 = 50_000;
/// An undecryptable Olm message older than this is no longer recovered from.
const FAILURE_TTL_MS: u64 = 24 * 3600 * 1000;

/// One record of the stream, as kept.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) seq: i64,
    pub(crate) record: Captured,
}

/// A ledger's value as loaded: absent, present, or damaged (and why).
pub(crate) enum Loaded<T> {
    Absent,
    Present(T, Vec<u8>),
    Damaged(String),
}

/// How [`StateDb::open`] treats a missing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// At login: a new device, nothing to lose.
    New,
    /// Any other command: a missing database of a profile whose store
    /// exists lost what the rules had recorded (see [`Opened::lost`]).
    Existing,
}

pub(crate) struct StateDb {
    path: PathBuf,
    conn: Mutex<Connection>,
    cipher: StoreCipher,
    /// This database's random id: the prefix of its cursors, so a cursor
    /// of another profile or login is told apart.
    id: String,
}

/// What [`StateDb::open`] found.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) db: StateDb,
    /// The rule ledgers (`megolm`, `olm`) that were lost: for
    /// [`Opening::Existing`], the database did not exist although the
    /// device's store did, and no file of the earlier layout held them.
    /// They were made as the strictest reading.
    pub(crate) lost: Vec<&'static str>,
    /// What was migrated from the files of the earlier layout.
    pub(crate) migrated: Vec<String>,
    /// Warnings about damaged values found while migrating.
    pub(crate) warnings: Vec<String>,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The error for a database that cannot be used: exit 1, naming the file.
fn damaged(path: &Path, why: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("ratchet's state database {} is damaged or unreadable: {why}", path.display()))
        .with_hint(
            "it holds the rules' records (R3, R5, R11), so ratchet refuses to run on it rather than guess; \
             nothing was changed",
        )
        .with_hint(format!(
            "to start it afresh, move it aside with its side files (for f in '{0}'*; do mv \"$f\" \"$f.damaged\"; \
             done): the rules then read as strictest (every Megolm session rotates, no new Olm session for an \
             hour), and undelivered records are lost",
            path.display()
        ))
}

fn io_error(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> CliError {
    CliError::failed(format!("could not read or write ratchet's state database {}", path.display())).with_source(e)
}

impl StateDb {
    /// Opens (or makes) the database in `dir`, unlocked by `secret`.
    pub(crate) fn open(dir: &Path, secret: &StoreSecret, opening: Opening) -> CliResult<Opened> {
        let path = dir.join(FILE);
        super::files::ensure_dir(dir)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| damaged(&path, e))?;
        // Another process on the profile waits for the profile lock first;
        // this covers the follower's wait for news, which reads nothing here.
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| io_error(&path, e))?;
        // WAL: a commit is one append to the log. synchronous=FULL syncs
        // the log at each commit, as matrix-sdk's stores do (SQLite's
        // default, which they keep): a power loss cannot roll back records
        // or an R11 entry while the SDK's sync token or Olm session
        // survives (NORMAL, before, could).
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| damaged(&path, e))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| damaged(&path, e))?;
        conn.pragma_update(None, "foreign_keys", "OFF").map_err(|e| damaged(&path, e))?;
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| damaged(&path, e))?;
        if version > SCHEMA {
            return Err(CliError::failed(format!(
                "ratchet's state database {} has schema version {version}; this ratchet knows version {SCHEMA} at most",
                path.display()
            ))
            .with_hint("it was written by a newer ratchet: use that one (nothing was changed)"));
        }
        let mut migrated = Vec::new();
        let mut warnings = Vec::new();
        let mut fresh = false;
        let mut lost = Vec::new();
        let cipher;
        {
            let txn = conn.transaction().map_err(|e| damaged(&path, e))?;
            for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                txn.execute_batch(sql).map_err(|e| damaged(&path, format!("migrating from version {from}: {e}")))?;
            }
            if version < SCHEMA {
                txn.pragma_update(None, "user_version", SCHEMA).map_err(|e| damaged(&path, e))?;
            }
            let exported: Option<Vec<u8>> = txn
                .query_row("SELECT value FROM meta WHERE key = 'cipher'", [], |r| r.get(0))
                .optional()
                .map_err(|e| damaged(&path, e))?;
            cipher = match exported {
                Some(exported) => match secret {
                    StoreSecret::Key(key) => StoreCipher::import_with_key(key, &exported),
                    StoreSecret::Passphrase(p) => StoreCipher::import(p.expose(), &exported),
                }
                // Not damage: the wrong passphrase (or key file). Exit 4,
                // authentication needed, as the exit-code table has it.
                .map_err(|e| {
                    let what = match secret {
                        StoreSecret::Passphrase(_) => {
                            "the store passphrase (RATCHET_STORE_PASSPHRASE) is not the one this profile was logged in \
                             with"
                        }
                        StoreSecret::Key(_) => "the profile's store.key file does not open its stores",
                    };
                    tracing::debug!(error = %e, "the state database's cipher did not open");
                    CliError::auth(what).with_hint(
                        "give the passphrase used at login; without it, `logout` and `login` make a new device",
                    )
                })?,
                None => {
                    let cipher =
                        StoreCipher::new().map_err(|e| CliError::internal("no store cipher").with_source(e))?;
                    let exported = match secret {
                        StoreSecret::Key(key) => cipher.export_with_key(key),
                        StoreSecret::Passphrase(p) => cipher.export(p.expose()),
                    }
                    .map_err(|e| CliError::internal("could not export the store cipher").with_source(e))?;
                    let id = super::session::key_to_hex(&super::session::generate_key())[..8].to_owned();
                    txn.execute(
                        "INSERT INTO meta (key, value) VALUES ('cipher', ?1), ('id', ?2)",
                        params![exported, id.as_bytes()],
                    )
                    .map_err(|e| io_error(&path, e))?;
                    fresh = true;
                    cipher
                }
            };
            // The old layout's files, whenever any is still there (a
            // migration whose deletion failed, or an older ratchet run since):
            // records are added, ledgers already here are kept.
            if fresh || legacy::FILES.iter().any(|f| dir.join(f).exists()) {
                let (found, warned) = legacy::migrate(dir, &cipher, &txn)?;
                migrated = found;
                warnings = warned;
            }
            if fresh && opening == Opening::Existing && existed_store(dir) {
                // Lost: the strictest reading of each ledger that no old
                // file gave (a leftover inbox says nothing of the rules), in
                // the same transaction as the database itself, so no kill
                // leaves one without it.
                let now = crate::clock::now_ms();
                let megolm = super::megolm_ledger::MegolmLedger { distrust_before: Some(now), ..Default::default() };
                let olm = super::olm_ledger::OlmLedger { all_devices_since: Some(now), ..Default::default() };
                for (name, sealed) in [("megolm", seal(&cipher, &megolm)?), ("olm", seal(&cipher, &olm)?)] {
                    if migrated.iter().any(|f| *f == format!("{name}.json")) {
                        continue;
                    }
                    txn.execute("INSERT OR REPLACE INTO ledgers (name, value) VALUES (?1, ?2)", params![name, sealed])
                        .map_err(|e| io_error(&path, e))?;
                    lost.push(name);
                }
            }
            txn.commit().map_err(|e| io_error(&path, e))?;
        }
        // The old files go only once their content is committed here; one
        // that cannot be deleted is migrated again (without duplicating its
        // ledgers) at the next open, and said now.
        for name in &migrated {
            if let Err(e) = std::fs::remove_file(dir.join(name)) {
                warnings.push(format!("could not delete {} once migrated: {e}", dir.join(name).display()));
            }
        }
        super::files::tighten(&path, 0o600, &mut |w| warnings.push(w));
        let id: Vec<u8> = conn
            .query_row("SELECT value FROM meta WHERE key = 'id'", [], |r| r.get(0))
            .map_err(|e| damaged(&path, e))?;
        let id = String::from_utf8(id).map_err(|e| damaged(&path, e))?;
        let db = StateDb { path, conn: Mutex::new(conn), cipher, id };
        Ok(Opened { db, lost, migrated, warnings })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn io(&self, e: impl std::error::Error + Send + Sync + 'static) -> CliError {
        io_error(&self.path, e)
    }

    fn seal<T: Serialize>(&self, value: &T) -> CliResult<Vec<u8>> {
        seal(&self.cipher, value)
    }

    fn open_value<T: DeserializeOwned>(&self, bytes: &[u8]) -> CliResult<T> {
        open_sealed(&self.cipher, bytes).map_err(|why| damaged(&self.path, why))
    }

    fn hash(&self, table: &str, key: &str) -> Vec<u8> {
        self.cipher.hash_key(table, key.as_bytes()).to_vec()
    }
}

fn counter(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    let bytes: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(bytes.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn set_counter(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value.to_string().as_bytes()],
    )?;
    Ok(())
}

fn bump(txn: &Transaction<'_>, key: &str, by: i64) -> rusqlite::Result<()> {
    let now = counter(txn, key)?;
    set_counter(txn, key, now + by)
}

/// Whether the profile in `dir` has matrix-sdk's crypto store (a device
/// that existed before this database).
fn existed_store(dir: &Path) -> bool {
    dir.join("store").join(super::CRYPTO_DB).exists()
}
