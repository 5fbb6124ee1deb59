//! `positions.jsonl`: the Megolm position (session id, message index) of
//! each message this device sent, read when its echo comes back in a sync.
//! matrix-sdk hands a decrypted sync event back without its ciphertext, and
//! the index is only there; for others' messages `sync` reads the
//! ciphertext again from the server (`events::sync_originals`), for our own
//! it reads it here, which saves that request on every command after a
//! `send` (issue 14, item 4).
//!
//! Best effort by design: an entry lost (a kill mid-write; no fsync) only
//! leaves an index unknown (null). The file keeps the newest entries.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::write_private;
use super::ProfileError;

/// Entries kept at most; past that, the older half goes.
const KEEP: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub(crate) event_id: String,
    pub(crate) session_id: String,
    pub(crate) message_index: u32,
}

pub(crate) struct OwnPositions {
    path: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> ProfileError {
    ProfileError::Io { path: path.to_owned(), source }
}

impl OwnPositions {
    pub(crate) fn new(path: &Path) -> OwnPositions {
        OwnPositions { path: path.to_owned() }
    }

    /// Appends one entry in one write (after a newline if a kill left the
    /// last line torn).
    pub(crate) fn append(&self, position: &Position) -> Result<(), ProfileError> {
        use std::os::unix::fs::FileExt;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io(&self.path, e))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut last = [b'\n'];
        if len > 0 {
            let _ = file.read_at(&mut last, len - 1);
        }
        let mut line = if last[0] == b'\n' { String::new() } else { "\n".to_owned() };
        line.push_str(&serde_json::to_string(position).expect("positions serialise"));
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(|e| io(&self.path, e))?;
        // About 150 bytes an entry: trim only when it may be over KEEP.
        if len > (KEEP as u64) * 150 {
            self.trim()?;
        }
        Ok(())
    }

    fn entries(&self) -> Result<Vec<Position>, ProfileError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&self.path, e)),
        }
    }

    fn trim(&self) -> Result<(), ProfileError> {
        let entries = self.entries()?;
        if entries.len() <= KEEP {
            return Ok(());
        }
        let mut text = String::new();
        for p in &entries[entries.len() - KEEP / 2..] {
            text.push_str(&serde_json::to_string(p).expect("positions serialise"));
            text.push('\n');
        }
        write_private(&self.path, text.as_bytes())
    }

    /// Every entry kept, by event id (a damaged line is skipped).
    pub(crate) fn read(&self) -> Result<HashMap<String, Position>, ProfileError> {
        Ok(self.entries()?.into_iter().map(|p| (p.event_id.clone(), p)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: usize) -> Position {
        // Ids as long as real ones (the trim is by size).
        Position { event_id: format!("${i:043}"), session_id: "s".repeat(43), message_index: i as u32 }
    }

    #[test]
    fn appends_reads_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let positions = OwnPositions::new(&dir.path().join("positions.jsonl"));
        assert!(positions.read().unwrap().is_empty());
        for i in 0..KEEP * 2 {
            positions.append(&at(i)).unwrap();
        }
        let kept = positions.read().unwrap();
        assert!(kept.len() <= KEEP + 1 && kept.len() >= KEEP / 2, "{}", kept.len());
        assert_eq!(kept[&at(KEEP * 2 - 1).event_id], at(KEEP * 2 - 1));
        assert!(!kept.contains_key(&at(0).event_id));
    }

    #[test]
    fn a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.jsonl");
        let positions = OwnPositions::new(&path);
        positions.append(&at(1)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event_id\":\"$e2\",\"ses")
            .unwrap();
        assert_eq!(positions.read().unwrap().len(), 1);
        positions.append(&at(3)).unwrap();
        let kept = positions.read().unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[&at(3).event_id], at(3));
    }
}
