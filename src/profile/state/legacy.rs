//! The files of the layout before `state.sqlite3` (ratchet up to issue 14),
//! read once to migrate them into the database (see `state`), in the same
//! transaction that makes it; `state` deletes them once that committed.
//!
//! | file              | goes to                                   |
//! |-------------------|-------------------------------------------|
//! | `inbox.jsonl`     | `records` (undelivered), its gap count, and the undecryptable Olm messages among them (`olm_failures`) |
//! | `sent.jsonl`      | `journal`                                 |
//! | `positions.jsonl` | `positions`                               |
//! | `megolm.json`     | the `megolm` ledger                       |
//! | `olm.json`        | the `olm` ledger                          |
//!
//! Reading is tolerant where the old files were (a torn or damaged line is
//! skipped), except for the rule ledgers: a damaged one is migrated as the
//! strictest case, as the old code read it (and its text is kept aside as
//! `NAME.damaged`, as before).

use std::path::Path;

use matrix_sdk_store_encryption::StoreCipher;
use rusqlite::{params, Transaction};
use serde::Deserialize;

use super::journal::{JournalEntry, Position};
use super::records::OlmFailure;
use super::sealed::seal;
use crate::error::{CliError, CliResult};
use crate::profile::megolm_ledger::MegolmLedger;
use crate::profile::olm_ledger::OlmLedger;
use crate::ui::output::Captured;

/// The old files, by name.
pub(crate) const FILES: [&str; 5] = ["inbox.jsonl", "sent.jsonl", "positions.jsonl", "megolm.json", "olm.json"];

/// A line of the old send journal.
#[derive(Deserialize)]
struct OldJournalEntry {
    #[serde(default)]
    device_id: String,
    #[serde(flatten)]
    entry: JournalEntry,
}

/// Migrates whatever old files are in `dir`; returns the names of those it
/// took (to delete after the commit) and warnings.
pub(crate) fn migrate(
    dir: &Path,
    cipher: &StoreCipher,
    txn: &Transaction<'_>,
) -> CliResult<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    let db_error = |e: rusqlite::Error| CliError::failed("could not migrate the profile's files").with_source(e);
    let now = crate::clock::now_ms();
    let read = |name: &str| -> CliResult<Option<Vec<u8>>> {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::failed(format!("could not read {}", dir.join(name).display())).with_source(e)),
        }
    };
    let lines = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes).lines().map(str::to_owned).filter(|l| !l.trim().is_empty()).collect()
    };

    if let Some(bytes) = read("inbox.jsonl")? {
        // The records are appended, not keyed: an inbox whose deletion a
        // kill (or an error) prevented after the commit is not migrated
        // twice. Only what follows the part already migrated is (an older
        // ratchet may have appended since).
        let done = migrated_inbox(txn, cipher, &bytes).map_err(db_error)?;
        let hash = hex(&cipher.hash_key("legacy", &bytes));
        txn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('legacy_inbox', ?1)",
            [format!("{}:{hash}", bytes.len()).as_bytes()],
        )
        .map_err(db_error)?;
        for line in lines(&bytes[done..]) {
            if let Ok(gap) = serde_json::from_str::<Gap>(&line) {
                txn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped', ?1)",
                    [gap.dropped.to_string().as_bytes()],
                )
                .map_err(db_error)?;
                continue;
            }
            let Ok(record) = serde_json::from_str::<Captured>(&line) else { continue };
            let json: serde_json::Value = serde_json::from_str(&record.json).unwrap_or_default();
            let room = json["room_id"].as_str().map(|r| cipher.hash_key("records", r.as_bytes()).to_vec());
            txn.execute(
                "INSERT INTO records (room, at_ms, value) VALUES (?1, ?2, ?3)",
                params![room, now as i64, seal(cipher, &record)?],
            )
            .map_err(db_error)?;
            // What the old `sync` recovered from at its next run.
            if json["type"] == "to_device" && !json["utd_reason"].is_null() {
                if let (Some(sender), Some(key)) = (json["sender"].as_str(), json["sender_key"].as_str()) {
                    let failure = OlmFailure { sender: sender.to_owned(), sender_key: key.to_owned() };
                    let hash = cipher.hash_key("olm_failures", format!("{sender}\u{0}{key}").as_bytes());
                    txn.execute(
                        "INSERT OR REPLACE INTO olm_failures (key, at_ms, value) VALUES (?1, ?2, ?3)",
                        params![hash.to_vec(), now as i64, seal(cipher, &failure)?],
                    )
                    .map_err(db_error)?;
                }
            }
        }
        found.push("inbox.jsonl".to_owned());
    }

    if let Some(bytes) = read("sent.jsonl")? {
        for (at, line) in lines(&bytes).iter().enumerate() {
            let Ok(old) = serde_json::from_str::<OldJournalEntry>(line) else { continue };
            let e = &old.entry;
            let key =
                cipher.hash_key("journal", format!("{}\u{0}{}\u{0}{}", old.device_id, e.room_id, e.txn_id).as_bytes());
            txn.execute(
                "INSERT OR REPLACE INTO journal (key, at, value) VALUES (?1, ?2, ?3)",
                // `at` is when, in ms (the 30-day purge reads it): now, so
                // that the migrated entries are not purged at once.
                params![key.to_vec(), crate::clock::now_ms() as i64 + at as i64, seal(cipher, e)?],
            )
            .map_err(db_error)?;
        }
        found.push("sent.jsonl".to_owned());
    }

    if let Some(bytes) = read("positions.jsonl")? {
        for (at, line) in lines(&bytes).iter().enumerate() {
            let Ok(p) = serde_json::from_str::<Position>(line) else { continue };
            let key = cipher.hash_key("positions", p.event_id.as_bytes());
            txn.execute(
                "INSERT OR REPLACE INTO positions (event, at, value) VALUES (?1, ?2, ?3)",
                params![key.to_vec(), at as i64 + 1, seal(cipher, &p)?],
            )
            .map_err(db_error)?;
        }
        found.push("positions.jsonl".to_owned());
    }

    for name in ["megolm.json", "olm.json"] {
        let Some(bytes) = read(name)? else { continue };
        let ledger = name.trim_end_matches(".json");
        let plain = match (name, serde_json::from_slice::<serde_json::Value>(&bytes)) {
            ("megolm.json", Ok(v)) if serde_json::from_value::<MegolmLedger>(v.clone()).is_ok() => v,
            ("olm.json", Ok(v)) if serde_json::from_value::<OlmLedger>(v.clone()).is_ok() => v,
            _ => {
                // Damaged: migrated as the strictest case, as the old code
                // read it; its text is kept aside.
                let _ = std::fs::copy(dir.join(name), dir.join(format!("{name}.damaged")));
                warnings.push(format!(
                    "{} was damaged; migrated as the strictest case (a copy is kept as {name}.damaged)",
                    dir.join(name).display()
                ));
                if name == "megolm.json" {
                    serde_json::to_value(MegolmLedger { distrust_before: Some(now), ..Default::default() })
                } else {
                    serde_json::to_value(OlmLedger { all_devices_since: Some(now), ..Default::default() })
                }
                .expect("ledgers serialise")
            }
        };
        txn.execute(
            "INSERT OR IGNORE INTO ledgers (name, value) VALUES (?1, ?2)",
            params![ledger, seal(cipher, &plain)?],
        )
        .map_err(db_error)?;
        found.push(name.to_owned());
    }
    Ok((found, warnings))
}

/// The first line of an old inbox that had dropped records.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Gap {
    dropped: u64,
}

/// How many leading bytes of `bytes` (an old inbox) an earlier open already
/// migrated: the length it recorded, when the file still starts with what
/// it had then.
fn migrated_inbox(txn: &Transaction<'_>, cipher: &StoreCipher, bytes: &[u8]) -> rusqlite::Result<usize> {
    use rusqlite::OptionalExtension;
    let mark: Option<Vec<u8>> =
        txn.query_row("SELECT value FROM meta WHERE key = 'legacy_inbox'", [], |r| r.get(0)).optional()?;
    let Some((len, hash)) = mark.as_deref().and_then(|m| std::str::from_utf8(m).ok()).and_then(|m| m.split_once(':'))
    else {
        return Ok(0);
    };
    let Ok(len) = len.parse::<usize>() else { return Ok(0) };
    Ok(if len <= bytes.len() && hex(&cipher.hash_key("legacy", &bytes[..len])) == hash { len } else { 0 })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
