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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use matrix_sdk_store_encryption::{EncryptedValueBase64, StoreCipher};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::session::StoreSecret;
use crate::error::{CliError, CliResult};
use crate::ui::output::Captured;

/// The database's file name in the profile directory.
pub(crate) const FILE: &str = "state.sqlite3";

/// The schema this ratchet writes. Each entry of [`MIGRATIONS`] moves the
/// database one version up.
const SCHEMA: i64 = 1;

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
];

/// Delivered records kept at least (with [`KEEP_DAYS`], whichever keeps more).
pub(crate) const KEEP_DELIVERED: i64 = 10_000;
/// Days delivered records are kept at least.
pub(crate) const KEEP_DAYS: u64 = 7;
/// Undelivered records kept at most; past that the oldest go, counted.
pub(crate) const MAX_PENDING: i64 = 50_000;
/// Journal entries are kept this long (a rerun of a batch within it is
/// idempotent however long the batch), positions the newest this many.
const KEEP_JOURNAL_MS: i64 = 30 * 24 * 3600 * 1000;
const KEEP_POSITIONS: i64 = 2_000;
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

/// What an entry of the send journal records for one delivered message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub(crate) room_id: String,
    pub(crate) txn_id: String,
    /// SHA-256 of the message text: a prefix reused for other text is
    /// refused, not taken as sent.
    #[serde(default)]
    pub(crate) text_sha256: String,
    /// None: the message is about to be sent (written before the request,
    /// so that a run killed after the server accepted it knows, at the
    /// rerun, that the event it gets back was encrypted by the run before).
    pub(crate) event_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) message_index: Option<u32>,
}

/// The hash a journal entry keeps of a message's text.
pub(crate) fn text_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The Megolm position of a message this device sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub(crate) event_id: String,
    pub(crate) session_id: String,
    pub(crate) message_index: u32,
}

/// An Olm message that could not be decrypted: who sent it, with which key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OlmFailure {
    pub(crate) sender: String,
    pub(crate) sender_key: String,
}

/// How [`StateDb::open`] treats a missing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// At login: a new device, nothing to lose.
    New,
    /// Any other command: a missing database of a profile whose store
    /// exists lost what the rules had recorded (see [`Opened::fresh`]).
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
    /// The database did not exist and was made now (with no earlier files
    /// to migrate): for [`Opening::Existing`], the rules' records are lost.
    pub(crate) fresh: bool,
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
        // WAL: a commit is one append to the log, durable against a killed
        // process (synchronous=NORMAL syncs at checkpoints, as matrix-sdk's
        // stores do).
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| damaged(&path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| damaged(&path, e))?;
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
                .map_err(|e| damaged(&path, format!("the profile's store secret does not open it ({e})")))?,
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
            if fresh || super::legacy::FILES.iter().any(|f| dir.join(f).exists()) {
                let (found, warned) = super::legacy::migrate(dir, &cipher, &txn)?;
                fresh = fresh && found.is_empty() && opening == Opening::Existing && existed_store(dir);
                migrated = found;
                warnings = warned;
            }
            if fresh {
                // Lost: the strictest reading, in the same transaction as the
                // database itself, so no kill leaves one without it.
                let now = crate::clock::now_ms();
                let megolm = super::megolm_ledger::MegolmLedger { distrust_before: Some(now), ..Default::default() };
                let olm = super::olm_ledger::OlmLedger { all_devices_since: Some(now), ..Default::default() };
                for (name, sealed) in [("megolm", seal(&cipher, &megolm)?), ("olm", seal(&cipher, &olm)?)] {
                    txn.execute("INSERT OR REPLACE INTO ledgers (name, value) VALUES (?1, ?2)", params![name, sealed])
                        .map_err(|e| io_error(&path, e))?;
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
        Ok(Opened { db, fresh, migrated, warnings })
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

    // ---- the record stream -------------------------------------------------

    /// Appends records in one transaction; returns their sequence numbers.
    /// Past [`MAX_PENDING`] undelivered records, the oldest of them go, and
    /// are counted for `sync` to report.
    pub(crate) fn append(&self, records: &[Captured]) -> CliResult<Vec<i64>> {
        self.append_sync(records, &[])
    }

    /// [`StateDb::append`], with the undecryptable Olm messages that came
    /// in the same sync, in the same transaction.
    pub(crate) fn append_sync(&self, records: &[Captured], failures: &[OlmFailure]) -> CliResult<Vec<i64>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let now = crate::clock::now_ms();
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        for f in failures {
            let key = self.hash("olm_failures", &format!("{}\u{0}{}", f.sender, f.sender_key));
            txn.execute(
                "INSERT OR REPLACE INTO olm_failures (key, at_ms, value) VALUES (?1, ?2, ?3)",
                params![key, now as i64, self.seal(f)?],
            )
            .map_err(|e| self.io(e))?;
        }
        let mut seqs = Vec::with_capacity(records.len());
        for record in records {
            let room = room_of(&record.json).map(|r| self.hash("records", &r));
            txn.execute(
                "INSERT INTO records (room, at_ms, value) VALUES (?1, ?2, ?3)",
                params![room, now as i64, self.seal(record)?],
            )
            .map_err(|e| self.io(e))?;
            seqs.push(txn.last_insert_rowid());
        }
        let last = *seqs.last().expect("not empty");
        let first_pending: Option<i64> = txn
            .query_row("SELECT MIN(seq) FROM records WHERE delivered_ms IS NULL", [], |r| r.get(0))
            .map_err(|e| self.io(e))?;
        if let Some(first) = first_pending.filter(|f| last - f >= MAX_PENDING) {
            let keep_from = last - MAX_PENDING * 4 / 5;
            let dropped = txn
                .execute(
                    "DELETE FROM records WHERE delivered_ms IS NULL AND seq >= ?1 AND seq < ?2",
                    params![first, keep_from],
                )
                .map_err(|e| self.io(e))?;
            bump(&txn, "dropped", dropped as i64).map_err(|e| self.io(e))?;
        }
        txn.commit().map_err(|e| self.io(e))?;
        Ok(seqs)
    }

    /// Replaces a kept record (a later look-up filled in what the first
    /// capture could not know: a message index).
    pub(crate) fn replace(&self, seq: i64, record: &Captured) -> CliResult<()> {
        let sealed = self.seal(record)?;
        self.conn()
            .execute("UPDATE records SET value = ?1 WHERE seq = ?2", params![sealed, seq])
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    fn read_records(&self, sql: &str, args: impl rusqlite::Params) -> CliResult<Vec<Kept>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map(args, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.io(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io(e))?;
        rows.into_iter().map(|(seq, bytes)| Ok(Kept { seq, record: self.open_value(&bytes)? })).collect()
    }

    /// The oldest undelivered records, at most `limit`, in order.
    pub(crate) fn pending(&self, limit: usize) -> CliResult<Vec<Kept>> {
        self.read_records(
            "SELECT seq, value FROM records WHERE delivered_ms IS NULL ORDER BY seq LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Records after `after` (delivered or not), at most `limit`, in order;
    /// of one room only when `room` is given.
    pub(crate) fn after(&self, after: i64, room: Option<&str>, limit: usize) -> CliResult<Vec<Kept>> {
        match room {
            Some(room) => self.read_records(
                "SELECT seq, value FROM records WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                params![self.hash("records", room), after, limit as i64],
            ),
            None => self.read_records(
                "SELECT seq, value FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after, limit as i64],
            ),
        }
    }

    /// Delivered records after `after`, at most `limit`, in order (what a
    /// reader that stopped at `after` did not see).
    pub(crate) fn delivered_after(&self, after: i64, limit: usize) -> CliResult<Vec<Kept>> {
        self.read_records(
            "SELECT seq, value FROM records WHERE delivered_ms IS NOT NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
            params![after, limit as i64],
        )
    }

    /// The sequence number before the first undelivered record (the last
    /// one if none is undelivered).
    pub(crate) fn before_pending(&self) -> CliResult<i64> {
        let conn = self.conn();
        let first: Option<i64> = conn
            .query_row("SELECT MIN(seq) FROM records WHERE delivered_ms IS NULL", [], |r| r.get(0))
            .map_err(|e| self.io(e))?;
        match first {
            Some(first) => Ok(first - 1),
            None => {
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| r.get(0)).map_err(|e| self.io(e))
            }
        }
    }

    /// Marks the undelivered records from `first` to `last` delivered, in
    /// one transaction, and lets the oldest delivered ones go (retention).
    pub(crate) fn mark_delivered(&self, first: i64, last: i64) -> CliResult<()> {
        let now = crate::clock::now_ms() as i64;
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        txn.execute(
            "UPDATE records SET delivered_ms = ?1 WHERE seq >= ?2 AND seq <= ?3 AND delivered_ms IS NULL",
            params![now, first, last],
        )
        .map_err(|e| self.io(e))?;
        let old = now - (KEEP_DAYS * 24 * 3600 * 1000) as i64;
        let pruned: Option<i64> = txn
            .query_row(
                "SELECT MAX(seq) FROM records WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1 AND seq <= ?2",
                params![old, last - KEEP_DELIVERED],
                |r| r.get(0),
            )
            .map_err(|e| self.io(e))?;
        if let Some(through) = pruned {
            txn.execute(
                "DELETE FROM records WHERE delivered_ms IS NOT NULL AND seq <= ?1 AND delivered_ms < ?2",
                params![through, old],
            )
            .map_err(|e| self.io(e))?;
            let before = counter(&txn, "pruned_through").map_err(|e| self.io(e))?;
            if through > before {
                set_counter(&txn, "pruned_through", through).map_err(|e| self.io(e))?;
            }
        }
        txn.commit().map_err(|e| self.io(e))
    }

    /// The cursor of a record: opaque to scripts.
    pub(crate) fn cursor(&self, seq: i64) -> String {
        format!("{}-{seq}", self.id)
    }

    /// The sequence number a cursor names, if it is this database's and
    /// what follows it is still kept.
    pub(crate) fn resolve_cursor(&self, cursor: &str) -> CliResult<i64> {
        let hint = format!(
            "use the `cursor` of a record printed by `{}` (or `sync --follow`, `chat`) of this profile",
            crate::ui::hint::ratchet("--json sync")
        );
        let seq = cursor
            .split_once('-')
            .filter(|(id, _)| *id == self.id)
            .and_then(|(_, seq)| seq.parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                CliError::usage(format!("'{cursor}' is not a cursor of this profile's records")).with_hint(hint.clone())
            })?;
        let conn = self.conn();
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| r.get(0)).map_err(|e| self.io(e))?;
        let pruned = counter(&conn, "pruned_through").map_err(|e| self.io(e))?;
        if seq > last {
            return Err(CliError::usage(format!("cursor '{cursor}' names no record of this profile")).with_hint(hint));
        }
        if seq < pruned {
            return Err(CliError::usage(format!(
                "cursor '{cursor}' is too old: records after it are no longer kept (ratchet keeps the last \
                 {KEEP_DELIVERED} delivered records or {KEEP_DAYS} days of them, whichever is more)"
            ))
            .with_hint(format!(
                "run `{}` without --after-cursor to go on from what is undelivered",
                crate::ui::hint::ratchet("sync")
            )));
        }
        Ok(seq)
    }

    /// How many undelivered records went unseen (past [`MAX_PENDING`]).
    pub(crate) fn dropped(&self) -> CliResult<u64> {
        counter(&self.conn(), "dropped").map(|n| n as u64).map_err(|e| self.io(e))
    }

    /// Forgets the count of dropped records, once `sync` reported it.
    pub(crate) fn forget_dropped(&self) -> CliResult<()> {
        set_counter(&self.conn(), "dropped", 0).map_err(|e| self.io(e))
    }

    // ---- the rule ledgers --------------------------------------------------

    /// A ledger's value (`megolm`, `olm`).
    pub(crate) fn ledger<T: DeserializeOwned>(&self, name: &str) -> CliResult<Loaded<T>> {
        let bytes: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT value FROM ledgers WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| self.io(e))?;
        let Some(bytes) = bytes else { return Ok(Loaded::Absent) };
        let plain = match open_plain(&self.cipher, &bytes) {
            Ok(plain) => plain,
            Err(why) => return Ok(Loaded::Damaged(why)),
        };
        match serde_json::from_slice(&plain) {
            Ok(value) => Ok(Loaded::Present(value, plain)),
            Err(e) => Ok(Loaded::Damaged(e.to_string())),
        }
    }

    /// Writes a ledger's value (its plain JSON), in one transaction.
    pub(crate) fn save_ledger(&self, name: &str, plain: &[u8]) -> CliResult<()> {
        let sealed = seal_plain(&self.cipher, plain.to_vec())?;
        self.conn()
            .execute("INSERT OR REPLACE INTO ledgers (name, value) VALUES (?1, ?2)", params![name, sealed])
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// The key-backup version the server said it no longer has (deleted or
    /// replaced elsewhere): backup stays off for it until `recovery`
    /// connects this device to a backup again. A damaged value reads as
    /// none: the next upload finds out again.
    pub(crate) fn backup_gone(&self) -> CliResult<Option<String>> {
        Ok(match self.ledger::<String>("backup_gone")? {
            Loaded::Present(version, _) => Some(version),
            Loaded::Absent | Loaded::Damaged(_) => None,
        })
    }

    /// Records (or, with `None`, forgets) a gone backup version.
    pub(crate) fn set_backup_gone(&self, version: Option<&str>) -> CliResult<()> {
        match version {
            Some(v) => {
                let plain = serde_json::to_vec(v)
                    .map_err(|e| CliError::internal("could not serialise state").with_source(e))?;
                self.save_ledger("backup_gone", &plain)
            }
            None => {
                self.conn().execute("DELETE FROM ledgers WHERE name = 'backup_gone'", []).map_err(|e| self.io(e))?;
                Ok(())
            }
        }
    }

    /// Keeps a damaged ledger value aside (`NAME.damaged`) for whoever
    /// investigates.
    pub(crate) fn keep_damaged(&self, name: &str) -> CliResult<()> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO ledgers (name, value) SELECT ?1 || '.damaged', value FROM ledgers WHERE name = ?1",
                [name],
            )
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Damages a ledger's value on purpose (tests of failing closed).
    #[cfg(test)]
    pub(crate) fn damage_ledger(&self, name: &str) {
        self.conn().execute("UPDATE ledgers SET value = x'00ff' WHERE name = ?1", [name]).unwrap();
    }

    // ---- the send journal --------------------------------------------------

    fn journal_key(&self, device_id: &str, room_id: &str, txn_id: &str) -> Vec<u8> {
        self.hash("journal", &format!("{device_id}\u{0}{room_id}\u{0}{txn_id}"))
    }

    /// What the journal of `device_id` holds for a transaction id.
    pub(crate) fn journal_get(&self, device_id: &str, room_id: &str, txn_id: &str) -> CliResult<Option<JournalEntry>> {
        let key = self.journal_key(device_id, room_id, txn_id);
        let bytes: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT value FROM journal WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.io(e))?;
        bytes.map(|b| self.open_value(&b)).transpose()
    }

    /// Records a delivered message, in one transaction (entries older than
    /// 30 days go).
    pub(crate) fn journal_put(&self, device_id: &str, entry: &JournalEntry) -> CliResult<()> {
        let key = self.journal_key(device_id, &entry.room_id, &entry.txn_id);
        let sealed = self.seal(entry)?;
        let now = crate::clock::now_ms() as i64;
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        txn.execute("INSERT OR REPLACE INTO journal (key, at, value) VALUES (?1, ?2, ?3)", params![key, now, sealed])
            .map_err(|e| self.io(e))?;
        txn.execute("DELETE FROM journal WHERE at < ?1", [now - KEEP_JOURNAL_MS]).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }

    /// Inserts (or replaces) one row of a table that keeps its newest
    /// `keep` rows (numbered in `at`), in one transaction.
    fn put_newest(&self, table: &str, key_column: &str, key: Vec<u8>, sealed: &[u8], keep: i64) -> CliResult<()> {
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        let insert = format!(
            "INSERT OR REPLACE INTO {table} ({key_column}, at, value) \
             VALUES (?1, (SELECT COALESCE(MAX(at), 0) + 1 FROM {table}), ?2)"
        );
        txn.execute(&insert, params![key, sealed]).map_err(|e| self.io(e))?;
        let prune = format!("DELETE FROM {table} WHERE at <= (SELECT MAX(at) FROM {table}) - ?1");
        txn.execute(&prune, [keep]).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }

    // ---- positions of sent messages ------------------------------------------

    /// The positions kept for these events (those it has).
    pub(crate) fn positions(&self, event_ids: &[String]) -> CliResult<HashMap<String, Position>> {
        let mut found = HashMap::new();
        if event_ids.is_empty() {
            return Ok(found);
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT value FROM positions WHERE event = ?1").map_err(|e| self.io(e))?;
        for id in event_ids {
            let bytes: Option<Vec<u8>> =
                stmt.query_row([self.hash("positions", id)], |r| r.get(0)).optional().map_err(|e| self.io(e))?;
            if let Some(bytes) = bytes {
                let position: Position = self.open_value(&bytes)?;
                found.insert(id.clone(), position);
            }
        }
        Ok(found)
    }

    /// Keeps the position of a message this device sent (the newest
    /// [`KEEP_POSITIONS`] are kept).
    pub(crate) fn put_position(&self, position: &Position) -> CliResult<()> {
        let key = self.hash("positions", &position.event_id);
        self.put_newest("positions", "event", key, &self.seal(position)?, KEEP_POSITIONS)
    }

    // ---- Olm failures awaiting recovery --------------------------------------

    /// The failures not yet recovered from (younger than a day).
    pub(crate) fn failures(&self) -> CliResult<Vec<OlmFailure>> {
        let since = crate::clock::now_ms().saturating_sub(FAILURE_TTL_MS) as i64;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT value FROM olm_failures WHERE at_ms >= ?1 ORDER BY at_ms")
            .map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map([since], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.io(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io(e))?;
        rows.iter().map(|b| self.open_value(b)).collect()
    }

    /// Forgets failures a recovery handled (and those past their day).
    pub(crate) fn clear_failures(&self, handled: &[OlmFailure]) -> CliResult<()> {
        let since = crate::clock::now_ms().saturating_sub(FAILURE_TTL_MS) as i64;
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        for f in handled {
            let key = self.hash("olm_failures", &format!("{}\u{0}{}", f.sender, f.sender_key));
            txn.execute("DELETE FROM olm_failures WHERE key = ?1", [key]).map_err(|e| self.io(e))?;
        }
        txn.execute("DELETE FROM olm_failures WHERE at_ms < ?1", [since]).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }
}

/// The room a record is about, from its JSON form.
fn room_of(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["room_id"].as_str().map(str::to_owned)
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

/// Encrypts a value's JSON.
pub(super) fn seal<T: Serialize>(cipher: &StoreCipher, value: &T) -> CliResult<Vec<u8>> {
    let plain =
        serde_json::to_vec(value).map_err(|e| CliError::internal("could not serialise state").with_source(e))?;
    seal_plain(cipher, plain)
}

fn seal_plain(cipher: &StoreCipher, plain: Vec<u8>) -> CliResult<Vec<u8>> {
    let sealed = cipher
        .encrypt_value_base64_data(plain)
        .map_err(|e| CliError::internal("could not encrypt state").with_source(e))?;
    serde_json::to_vec(&sealed).map_err(|e| CliError::internal("could not serialise state").with_source(e))
}

fn open_plain(cipher: &StoreCipher, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let sealed: EncryptedValueBase64 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    cipher.decrypt_value_base64_data(sealed).map_err(|e| e.to_string())
}

fn open_sealed<T: DeserializeOwned>(cipher: &StoreCipher, bytes: &[u8]) -> Result<T, String> {
    let plain = open_plain(cipher, bytes)?;
    serde_json::from_slice(&plain).map_err(|e| e.to_string())
}

/// Whether the profile in `dir` has matrix-sdk's crypto store (a device
/// that existed before this database).
fn existed_store(dir: &Path) -> bool {
    dir.join("store").join("matrix-sdk-crypto.sqlite3").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::session::{generate_key, Secret};

    fn key() -> StoreSecret {
        StoreSecret::Key(Box::new(zeroize::Zeroizing::new(generate_key())))
    }

    fn rec(n: usize, room: &str) -> Captured {
        Captured {
            json: format!(r#"{{"type":"message","room_id":"{room}","body":"secret-{n}"}}"#),
            human: format!("m{n}"),
        }
    }

    #[test]
    fn records_flow_pending_delivered_after_cursor() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = key();
        let db = StateDb::open(tmp.path(), &secret, Opening::New).unwrap().db;
        let seqs = db.append(&[rec(1, "!a"), rec(2, "!b"), rec(3, "!a")]).unwrap();
        assert_eq!(seqs.len(), 3);
        let pending = db.pending(10).unwrap();
        assert_eq!(pending.iter().map(|k| k.record.human.as_str()).collect::<Vec<_>>(), ["m1", "m2", "m3"]);
        // A room's view leaves them pending.
        let a = db.after(0, Some("!a"), 10).unwrap();
        assert_eq!(a.iter().map(|k| k.record.human.as_str()).collect::<Vec<_>>(), ["m1", "m3"]);
        assert_eq!(db.before_pending().unwrap(), seqs[0] - 1);
        db.mark_delivered(seqs[0], seqs[1]).unwrap();
        assert_eq!(db.pending(10).unwrap().len(), 1);
        assert_eq!(db.before_pending().unwrap(), seqs[1]);
        // A reader that stopped after the first gets the second again.
        let cursor = db.cursor(seqs[0]);
        let from = db.resolve_cursor(&cursor).unwrap();
        let again = db.delivered_after(from, 10).unwrap();
        assert_eq!(again.iter().map(|k| k.record.human.as_str()).collect::<Vec<_>>(), ["m2"]);
        // Cursors of another database, or unknown ones, are refused.
        assert!(db.resolve_cursor("ffffffff-1").is_err());
        assert!(db.resolve_cursor(&db.cursor(99)).is_err());
        assert!(db.resolve_cursor("nonsense").is_err());
        // Nothing of the records is on disk in clear.
        drop(db);
        for entry in std::fs::read_dir(tmp.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(7).any(|w| w == b"secret-"));
        }
        // It opens again with its secret, and not with another.
        let back = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
        assert!(!back.fresh);
        assert_eq!(back.db.pending(10).unwrap().len(), 1);
        drop(back);
        let err = StateDb::open(tmp.path(), &key(), Opening::Existing).unwrap_err();
        assert!(err.message.contains("state.sqlite3"), "{}", err.message);
    }

    #[test]
    fn a_lost_database_reads_strictest_and_old_files_left_behind_are_migrated_later() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("store")).unwrap();
        std::fs::write(tmp.path().join("store").join("matrix-sdk-crypto.sqlite3"), b"").unwrap();
        let secret = key();
        let opened = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
        assert!(opened.fresh);
        // The strictest reading is committed with the database itself.
        let Loaded::Present(olm, _) = opened.db.ledger::<crate::profile::olm_ledger::OlmLedger>("olm").unwrap() else {
            panic!("no Olm ledger")
        };
        assert!(olm.all_devices_since.is_some());
        let Loaded::Present(megolm, _) =
            opened.db.ledger::<crate::profile::megolm_ledger::MegolmLedger>("megolm").unwrap()
        else {
            panic!("no Megolm ledger")
        };
        assert!(megolm.distrust_before.is_some());
        drop(opened);
        // An old inbox written after the database exists (an older ratchet
        // ran) is migrated at the next open, and its ledgers do not replace
        // the ones here.
        let line = serde_json::to_string(&rec(7, "!a")).unwrap();
        std::fs::write(tmp.path().join("inbox.jsonl"), format!("{line}\n")).unwrap();
        std::fs::write(tmp.path().join("olm.json"), "{}").unwrap();
        let again = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
        assert!(!again.fresh);
        assert_eq!(again.db.pending(10).unwrap()[0].record.human, "m7");
        assert!(!tmp.path().join("inbox.jsonl").exists() && !tmp.path().join("olm.json").exists());
        let Loaded::Present(olm, _) = again.db.ledger::<crate::profile::olm_ledger::OlmLedger>("olm").unwrap() else {
            panic!("no Olm ledger")
        };
        assert!(olm.all_devices_since.is_some(), "kept, not replaced by the old file");
    }

    #[test]
    fn passphrase_mode_and_a_newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = StoreSecret::Passphrase(Secret::new("correct horse".into()));
        let db = StateDb::open(tmp.path(), &secret, Opening::New).unwrap().db;
        db.append(&[rec(1, "!a")]).unwrap();
        db.conn().pragma_update(None, "user_version", SCHEMA + 1).unwrap();
        drop(db);
        let err = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap_err();
        assert!(err.message.contains("schema version"), "{}", err.message);
    }

    #[test]
    fn a_damaged_file_is_refused_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(FILE), b"this is not a database, it only looks like one to a user".repeat(100))
            .unwrap();
        let err = StateDb::open(tmp.path(), &key(), Opening::Existing).unwrap_err();
        assert_eq!(err.kind.exit_code(), 1);
        assert!(err.message.contains(FILE), "{}", err.message);
    }

    #[test]
    fn retention_of_pending_records_counts_what_went() {
        let tmp = tempfile::tempdir().unwrap();
        let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
        let batch: Vec<Captured> = (0..1000).map(|n| rec(n, "!a")).collect();
        for _ in 0..(MAX_PENDING / 1000 + 1) {
            db.append(&batch).unwrap();
        }
        let pending =
            db.conn().query_row("SELECT COUNT(*) FROM records WHERE delivered_ms IS NULL", [], |r| r.get::<_, i64>(0));
        let pending = pending.unwrap();
        let dropped = db.dropped().unwrap() as i64;
        assert!(pending < MAX_PENDING && dropped > 0, "{pending} {dropped}");
        assert_eq!(pending + dropped, MAX_PENDING + 1000, "every record is kept or counted");
        db.forget_dropped().unwrap();
        assert_eq!(db.dropped().unwrap(), 0);
    }

    #[test]
    fn delivered_records_are_kept_while_young_or_among_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
        let batch: Vec<Captured> = (0..(KEEP_DELIVERED as usize + 500)).map(|n| rec(n, "!a")).collect();
        let seqs = db.append(&batch).unwrap();
        // Delivered a long time ago.
        let old = crate::clock::now_ms() as i64 - (KEEP_DAYS as i64 + 1) * 24 * 3600 * 1000;
        db.conn().execute("UPDATE records SET delivered_ms = ?1", [old]).unwrap();
        let more = db.append(&[rec(0, "!a")]).unwrap();
        db.mark_delivered(more[0], more[0]).unwrap();
        let kept: i64 = db.conn().query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, KEEP_DELIVERED, "the newest 10,000 are kept");
        // A cursor before what went is refused as too old; one after is fine.
        let err = db.resolve_cursor(&db.cursor(seqs[10])).unwrap_err();
        assert!(err.message.contains("too old"), "{}", err.message);
        assert!(db.resolve_cursor(&db.cursor(*seqs.last().unwrap())).is_ok());
    }

    #[test]
    fn journal_positions_failures_ledgers() {
        let tmp = tempfile::tempdir().unwrap();
        let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
        let entry = JournalEntry {
            room_id: "!r".into(),
            txn_id: "p-1".into(),
            text_sha256: text_hash("hi"),
            event_id: Some("$e".into()),
            session_id: None,
            message_index: None,
        };
        db.journal_put("DEV", &entry).unwrap();
        assert_eq!(db.journal_get("DEV", "!r", "p-1").unwrap().unwrap().event_id.as_deref(), Some("$e"));
        assert!(db.journal_get("OTHER", "!r", "p-1").unwrap().is_none());
        for i in 0..(KEEP_POSITIONS + 10) {
            db.put_position(&Position { event_id: format!("$e{i}"), session_id: "s".into(), message_index: i as u32 })
                .unwrap();
        }
        let ids = vec!["$e0".to_owned(), format!("$e{}", KEEP_POSITIONS + 9)];
        let found = db.positions(&ids).unwrap();
        assert_eq!(found.len(), 1, "the oldest went, the newest is kept");
        let f = OlmFailure { sender: "@b:x".into(), sender_key: "k".into() };
        db.append_sync(&[rec(1, "!a")], &[f.clone(), f.clone()]).unwrap();
        assert_eq!(db.failures().unwrap(), vec![f.clone()]);
        db.clear_failures(&[f]).unwrap();
        assert!(db.failures().unwrap().is_empty());
        assert!(matches!(db.ledger::<serde_json::Value>("olm").unwrap(), Loaded::Absent));
        db.save_ledger("olm", br#"{"a":1}"#).unwrap();
        assert!(matches!(db.ledger::<serde_json::Value>("olm").unwrap(), Loaded::Present(..)));
        db.damage_ledger("olm");
        assert!(matches!(db.ledger::<serde_json::Value>("olm").unwrap(), Loaded::Damaged(_)));
    }
}
