//! Direct deletions in the crypto store, for QA's deliberate failures
//! (`debug forget-olm`, `debug forget-room-key`). matrix-sdk's `CryptoStore`
//! can add and update sessions but not delete them.
//!
//! This edits another crate's private schema, so it is fenced in:
//! * `matrix-sdk-sqlite` is pinned exactly (Cargo.toml), and the store's
//!   schema version is checked against the one this code was written for
//!   before anything is touched;
//! * the database is opened read-write *without* creating it;
//! * each deletion runs in a transaction that is rolled back unless it
//!   deleted exactly the rows the caller expected.
//!
//! Rows are keyed by keyed hashes of their ids (`StoreCipher::hash_key`,
//! one MAC key per table), so the store cipher is imported with this
//! profile's key or passphrase, exactly as matrix-sdk-sqlite does.
//!
//! Only called with the profile lock held and no client of this process
//! having written since it was restored (see `CommandContext::close_client`),
//! so no cache writes a deleted row back.

use std::path::Path;

use matrix_sdk_store_encryption::StoreCipher;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{CliError, CliResult};
use crate::profile::session::StoreSecret;

/// The crypto store schema of matrix-sdk-sqlite 0.18.0 (the last migration
/// in its `crypto_store.rs` sets version 17). Another version means another
/// schema: refuse rather than guess.
const SCHEMA_VERSION: u8 = 17;

pub(crate) struct RawCryptoStore {
    conn: Connection,
    cipher: StoreCipher,
}

fn db_error(e: rusqlite::Error) -> CliError {
    CliError::failed("could not change the crypto store").with_source(e)
}

impl RawCryptoStore {
    pub(crate) fn open(path: &Path, secret: &StoreSecret) -> CliResult<RawCryptoStore> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(db_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_error)?;
        let kv = |key: &str| -> CliResult<Option<Vec<u8>>> {
            conn.query_row("SELECT value FROM kv WHERE key = ?", [key], |row| row.get(0)).optional().map_err(db_error)
        };
        match kv("version")?.as_deref() {
            Some([v]) if *v == SCHEMA_VERSION => {}
            found => {
                return Err(CliError::failed(format!(
                    "the crypto store has schema version {found:?}; this ratchet edits version {SCHEMA_VERSION} only"
                ))
                .with_hint("nothing was changed; this ratchet was built against another matrix-sdk-sqlite"));
            }
        }
        let exported = kv("cipher")?
            .ok_or_else(|| CliError::failed("the crypto store has no cipher: it is not encrypted as expected"))?;
        let cipher = match secret {
            StoreSecret::Key(key) => StoreCipher::import_with_key(key, &exported),
            StoreSecret::Passphrase(p) => StoreCipher::import(p.expose(), &exported),
        }
        .map_err(|e| CliError::failed("could not unlock the crypto store").with_source(e))?;
        Ok(RawCryptoStore { conn, cipher })
    }

    /// Deletes every Olm session with the device whose identity key is
    /// `curve25519`, which must be exactly `expected` rows.
    pub(crate) fn delete_olm_sessions(&mut self, curve25519: &str, expected: usize) -> CliResult<()> {
        let sender_key = self.cipher.hash_key("session", curve25519.as_bytes());
        self.delete_exactly(expected, "DELETE FROM session WHERE sender_key = ?", &[&sender_key[..]])
    }

    /// Deletes one Olm session with the device whose identity key is
    /// `curve25519`.
    pub(crate) fn delete_olm_session(&mut self, curve25519: &str, session_id: &str) -> CliResult<()> {
        let sender_key = self.cipher.hash_key("session", curve25519.as_bytes());
        let session = self.cipher.hash_key("session", session_id.as_bytes());
        self.delete_exactly(
            1,
            "DELETE FROM session WHERE sender_key = ? AND session_id = ?",
            &[&sender_key[..], &session[..]],
        )
    }

    /// Deletes one inbound Megolm session of a room.
    pub(crate) fn delete_inbound_group_session(&mut self, room_id: &str, session_id: &str) -> CliResult<()> {
        let room = self.cipher.hash_key("inbound_group_session", room_id.as_bytes());
        let session = self.cipher.hash_key("inbound_group_session", session_id.as_bytes());
        self.delete_exactly(
            1,
            "DELETE FROM inbound_group_session WHERE session_id = ? AND room_id = ?",
            &[&session[..], &room[..]],
        )
    }

    /// Runs one DELETE in a transaction, committed only if it removed
    /// exactly `expected` rows.
    fn delete_exactly(&mut self, expected: usize, sql: &str, params: &[&[u8]]) -> CliResult<()> {
        let txn = self.conn.transaction().map_err(db_error)?;
        let deleted = txn.execute(sql, rusqlite::params_from_iter(params)).map_err(db_error)?;
        if deleted != expected {
            // Dropping the transaction rolls it back.
            return Err(CliError::internal(format!(
                "expected to delete {expected} row(s) from the crypto store, matched {deleted}; nothing was changed"
            )));
        }
        txn.commit().map_err(db_error)
    }
}
