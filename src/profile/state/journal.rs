//! `send --txn-prefix`'s journal and the Megolm position of each message
//! this device sent.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::StateDb;
use crate::error::CliResult;

/// Journal entries are kept this long (a rerun of a batch within it is
/// idempotent however long the batch), positions the newest this many.
const KEEP_JOURNAL_MS: i64 = 30 * 24 * 3600 * 1000;
pub(super) const KEEP_POSITIONS: i64 = 2_000;

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
    /// Whether it went encrypted: the session may be unknown (an
    /// interrupted run's event that could not be fetched). Absent in
    /// entries written before it was kept: read from `session_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) encrypted: Option<bool>,
    /// When the intent was written (ms): a server forgets transaction ids
    /// (Synapse after a day), so an old interrupted one is not resent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) intent_ms: Option<u64>,
    /// A file's `mxc://` URI (`send --file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mxc: Option<String>,
}

/// How long ratchet trusts a server to remember a transaction id: a day
/// (Synapse deletes them after 24 hours), less a margin.
pub(crate) const SERVER_TXN_MEMORY_MS: u64 = 23 * 60 * 60 * 1000;

impl JournalEntry {
    pub(crate) fn was_encrypted(&self) -> bool {
        self.encrypted.unwrap_or(self.session_id.is_some())
    }
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

impl StateDb {
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
    pub(super) fn put_newest(
        &self,
        table: &str,
        key_column: &str,
        key: Vec<u8>,
        sealed: &[u8],
        keep: i64,
    ) -> CliResult<()> {
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
}
