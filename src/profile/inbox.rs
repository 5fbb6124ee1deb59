//! `inbox.jsonl`: what other commands received in their syncs and did not
//! print, kept for the next `ratchet sync` (issue 14). Every command syncs
//! first, and the server then moves the sync position on: without this,
//! a message that arrived during `room list` or `send` would never appear
//! in any `sync` output. Each line holds one record in both forms (JSON and
//! human), in the order received; `sync` prints them before its own, then
//! empties the file.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::files::write_private;
use super::ProfileError;
use crate::ui::output::Captured;

pub(crate) struct Inbox {
    path: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> ProfileError {
    ProfileError::Io { path: path.to_owned(), source }
}

impl Inbox {
    pub(crate) fn new(path: &Path) -> Inbox {
        Inbox { path: path.to_owned() }
    }

    /// Appends records, in one write.
    pub(crate) fn append(&self, records: &[Captured]) -> Result<(), ProfileError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("captured records serialise"));
            text.push('\n');
        }
        let mut file =
            OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path).map_err(|e| io(&self.path, e))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| io(&self.path, e))
    }

    /// Every record kept, oldest first (a torn last line is skipped).
    pub(crate) fn read(&self) -> Result<Vec<Captured>, ProfileError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&self.path, e)),
        }
    }

    /// Replaces what it holds (what `sync` could not print: its reader left).
    pub(crate) fn replace(&self, records: &[Captured]) -> Result<(), ProfileError> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("captured records serialise"));
            text.push('\n');
        }
        write_private(&self.path, text.as_bytes())
    }

    /// Empties it (after `sync` printed what it held).
    pub(crate) fn clear(&self) -> Result<(), ProfileError> {
        if self.path.exists() {
            write_private(&self.path, b"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_clears() {
        let tmp = tempfile::tempdir().unwrap();
        let inbox = Inbox::new(&tmp.path().join("inbox.jsonl"));
        assert!(inbox.read().unwrap().is_empty());
        let r = |n: &str| Captured { json: format!("{{\"n\":\"{n}\"}}"), human: n.to_owned() };
        inbox.append(&[r("1"), r("2")]).unwrap();
        inbox.append(&[r("3")]).unwrap();
        let back: Vec<String> = inbox.read().unwrap().into_iter().map(|c| c.human).collect();
        assert_eq!(back, ["1", "2", "3"]);
        inbox.clear().unwrap();
        assert!(inbox.read().unwrap().is_empty());
    }
}
