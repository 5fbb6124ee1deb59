//! Direct deletions in the crypto store, for QA's deliberate failures
//! (`debug forget-olm`, `debug forget-room-key`). matrix-sdk's `CryptoStore`
//! can add and update sessions but not delete them.
//!
//! Rows are keyed by keyed hashes of their ids (`StoreCipher::hash_key`,
//! one MAC key per table), so the store cipher is imported with this
//! profile's key or passphrase, exactly as matrix-sdk-sqlite does.
//!
//! Only ever called with no Client open on the store in this process or any
//! other (the profile lock is held), so no cache writes a deleted row back.

use std::path::Path;

use matrix_sdk_store_encryption::StoreCipher;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{CliError, CliResult};
use crate::session::StoreSecret;

pub(crate) struct RawCryptoStore {
    conn: Connection,
    cipher: StoreCipher,
}

fn db_error(e: rusqlite::Error) -> CliError {
    CliError::failed("could not change the crypto store").with_source(e)
}

impl RawCryptoStore {
    pub(crate) fn open(path: &Path, secret: &StoreSecret) -> CliResult<RawCryptoStore> {
        let conn = Connection::open(path).map_err(db_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_error)?;
        let exported: Vec<u8> = conn
            .query_row("SELECT value FROM kv WHERE key = 'cipher'", [], |row| row.get(0))
            .optional()
            .map_err(db_error)?
            .ok_or_else(|| CliError::failed("the crypto store has no cipher: it is not encrypted as expected"))?;
        let cipher = match secret {
            StoreSecret::Key(key) => StoreCipher::import_with_key(key, &exported),
            StoreSecret::Passphrase(p) => StoreCipher::import(p, &exported),
        }
        .map_err(|e| CliError::failed("could not unlock the crypto store").with_source(e))?;
        Ok(RawCryptoStore { conn, cipher })
    }

    /// Deletes every Olm session with the device whose identity key is
    /// `curve25519`; returns how many.
    pub(crate) fn delete_olm_sessions(&self, curve25519: &str) -> CliResult<usize> {
        let sender_key = self.cipher.hash_key("session", curve25519.as_bytes());
        self.conn.execute("DELETE FROM session WHERE sender_key = ?", [&sender_key[..]]).map_err(db_error)
    }

    /// Deletes one inbound Megolm session of a room; returns how many rows
    /// (0 or 1).
    pub(crate) fn delete_inbound_group_session(&self, room_id: &str, session_id: &str) -> CliResult<usize> {
        let room = self.cipher.hash_key("inbound_group_session", room_id.as_bytes());
        let session = self.cipher.hash_key("inbound_group_session", session_id.as_bytes());
        self.conn
            .execute(
                "DELETE FROM inbound_group_session WHERE session_id = ? AND room_id = ?",
                [&session[..], &room[..]],
            )
            .map_err(db_error)
    }
}
