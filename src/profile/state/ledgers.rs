//! The rule ledgers (`megolm`, `olm`) and the gone backup version.

use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;

use super::sealed::{open_plain, seal_plain};
use super::{Loaded, StateDb};
use crate::error::{CliError, CliResult};

impl StateDb {
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
}
