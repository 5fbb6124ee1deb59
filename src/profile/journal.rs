//! The send journal for `send --txn-prefix`: one JSON line per delivered
//! message, appended (and synced) right after the server accepted it, keyed
//! by room and transaction id. A rerun with the same prefix and input looks
//! each message up here first and does not send it again.
//!
//! The window between the server accepting a message and the journal line
//! reaching the disk (a crash, SIGKILL) is covered by the server: the rerun
//! sends that message with the same transaction id, and the homeserver
//! returns the event it already has instead of a new one (Synapse keeps
//! transaction ids for about 30 minutes).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};

/// What was recorded for one delivered message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub(crate) room_id: String,
    pub(crate) txn_id: String,
    pub(crate) event_id: String,
    pub(crate) session_id: Option<String>,
    pub(crate) message_index: Option<u32>,
}

pub(crate) struct SendJournal {
    path: PathBuf,
    entries: HashMap<(String, String), JournalEntry>,
}

impl SendJournal {
    pub(crate) fn open(path: &Path) -> CliResult<SendJournal> {
        let mut entries = HashMap::new();
        match std::fs::File::open(path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    let line = line?;
                    // A torn last line (a crash mid-append) is skipped: that
                    // message is covered by the server's dedup instead.
                    if let Ok(e) = serde_json::from_str::<JournalEntry>(&line) {
                        entries.insert((e.room_id.clone(), e.txn_id.clone()), e);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::failed(format!("could not read {}", path.display())).with_source(e)),
        }
        Ok(SendJournal { path: path.to_owned(), entries })
    }

    pub(crate) fn get(&self, room_id: &str, txn_id: &str) -> Option<&JournalEntry> {
        self.entries.get(&(room_id.to_owned(), txn_id.to_owned()))
    }

    pub(crate) fn record(&mut self, entry: JournalEntry) -> CliResult<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| CliError::failed(format!("could not write {}", self.path.display())).with_source(e))?;
        let line = serde_json::to_string(&entry).expect("entries always serialise");
        writeln!(file, "{line}").and_then(|()| file.sync_data())?;
        self.entries.insert((entry.room_id.clone(), entry.txn_id.clone()), entry);
        Ok(())
    }
}

/// clap value parser: a prefix that makes valid, readable transaction ids.
pub(crate) fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, `.`, `_` or `-`".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_torn_last_line_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut j = SendJournal::open(&path).unwrap();
        let e = |t: &str| JournalEntry {
            room_id: "!r".into(),
            txn_id: t.into(),
            event_id: format!("$e{t}"),
            session_id: None,
            message_index: None,
        };
        j.record(e("a-1")).unwrap();
        j.record(e("a-2")).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"room_id\":\"!r\",\"txn").unwrap();
        let back = SendJournal::open(&path).unwrap();
        assert_eq!(back.get("!r", "a-2").unwrap().event_id, "$ea-2");
        assert!(back.get("!r", "a-3").is_none());
    }

    #[test]
    fn prefixes() {
        assert!(parse_prefix("batch-2026.11_a").is_ok());
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
