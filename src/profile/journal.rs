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
    /// The device that sent it: the homeserver's transaction ids are per
    /// device, so an entry of an earlier login says nothing about this one.
    #[serde(default)]
    pub(crate) device_id: String,
    pub(crate) room_id: String,
    pub(crate) txn_id: String,
    /// SHA-256 of the message text (the text itself is not kept on disk):
    /// a prefix reused for other text is refused, not taken as sent.
    #[serde(default)]
    pub(crate) text_sha256: String,
    pub(crate) event_id: String,
    pub(crate) session_id: Option<String>,
    pub(crate) message_index: Option<u32>,
}

/// The hash a journal entry keeps of a message's text.
pub(crate) fn text_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) struct SendJournal {
    path: PathBuf,
    device_id: String,
    entries: HashMap<(String, String), JournalEntry>,
}

impl SendJournal {
    /// Reads the journal of `device_id`. A torn last line (a crash in the
    /// middle of an append) is cut off, so the next append starts on a line
    /// of its own; that message is covered by the server's dedup instead.
    pub(crate) fn open(path: &Path, device_id: &str) -> CliResult<SendJournal> {
        let mut entries = HashMap::new();
        let read_error =
            |e: std::io::Error| CliError::failed(format!("could not read {}", path.display())).with_source(e);
        match std::fs::read(path) {
            Ok(bytes) => {
                let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                if whole < bytes.len() {
                    let file = OpenOptions::new().write(true).open(path).map_err(read_error)?;
                    file.set_len(whole as u64).and_then(|()| file.sync_data()).map_err(read_error)?;
                }
                for line in BufReader::new(&bytes[..whole]).lines() {
                    let line = line.map_err(read_error)?;
                    if let Ok(e) = serde_json::from_str::<JournalEntry>(&line) {
                        if e.device_id == device_id {
                            entries.insert((e.room_id.clone(), e.txn_id.clone()), e);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_error(e)),
        }
        Ok(SendJournal { path: path.to_owned(), device_id: device_id.to_owned(), entries })
    }

    pub(crate) fn get(&self, room_id: &str, txn_id: &str) -> Option<&JournalEntry> {
        self.entries.get(&(room_id.to_owned(), txn_id.to_owned()))
    }

    /// Appends one entry with a single write (a line and its newline
    /// together), synced.
    pub(crate) fn record(&mut self, mut entry: JournalEntry) -> CliResult<()> {
        entry.device_id = self.device_id.clone();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| CliError::failed(format!("could not write {}", self.path.display())).with_source(e))?;
        let mut line = serde_json::to_string(&entry).expect("entries always serialise");
        line.push('\n');
        file.write_all(line.as_bytes()).and_then(|()| file.sync_data())?;
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
    fn a_torn_tail_is_cut_and_the_next_append_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let e = |t: &str| JournalEntry {
            device_id: String::new(),
            room_id: "!r".into(),
            txn_id: t.into(),
            text_sha256: text_hash(t),
            event_id: format!("$e{t}"),
            session_id: None,
            message_index: None,
        };
        let mut j = SendJournal::open(&path, "DEV").unwrap();
        j.record(e("a-1")).unwrap();
        j.record(e("a-2")).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"room_id\":\"!r\",\"txn").unwrap();
        let mut back = SendJournal::open(&path, "DEV").unwrap();
        assert_eq!(back.get("!r", "a-2").unwrap().event_id, "$ea-2");
        assert!(back.get("!r", "a-3").is_none());
        // The torn line is gone: the next entry is read back whole.
        back.record(e("a-3")).unwrap();
        let again = SendJournal::open(&path, "DEV").unwrap();
        assert_eq!(again.get("!r", "a-3").unwrap().event_id, "$ea-3");
        // Another device's journal is its own.
        assert!(SendJournal::open(&path, "OTHER").unwrap().get("!r", "a-1").is_none());
    }

    #[test]
    fn prefixes() {
        assert!(parse_prefix("batch-2026.11_a").is_ok());
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
