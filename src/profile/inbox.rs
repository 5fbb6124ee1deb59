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

/// The size past which the oldest records go (see [`Inbox::append`]).
pub(crate) const MAX_BYTES: u64 = 32 * 1024 * 1024;

pub(crate) struct Inbox {
    path: PathBuf,
    max_bytes: u64,
}

/// The first line of an inbox that had to drop its oldest records.
#[derive(serde::Serialize, serde::Deserialize)]
struct Gap {
    dropped: u64,
}

fn io(path: &Path, source: std::io::Error) -> ProfileError {
    ProfileError::Io { path: path.to_owned(), source }
}

impl Inbox {
    pub(crate) fn new(path: &Path) -> Inbox {
        Inbox { path: path.to_owned(), max_bytes: MAX_BYTES }
    }

    /// Appends records, in one write. An inbox nobody empties (a profile
    /// that sends and never runs `sync`) would grow without end: past
    /// `MAX_BYTES` its oldest records go, down to half of it, and how many
    /// went is kept, so that `sync` says so first ([`Inbox::dropped`])
    /// rather than lose them silently.
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
        file.write_all(text.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| io(&self.path, e))?;
        if file.metadata().map(|m| m.len()).unwrap_or(0) > self.max_bytes {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<(), ProfileError> {
        let records = self.read()?;
        let mut kept = Vec::new();
        let mut size = 0u64;
        for r in records.iter().rev() {
            let line = serde_json::to_string(r).expect("captured records serialise");
            size += line.len() as u64 + 1;
            if size > self.max_bytes / 2 {
                break;
            }
            kept.push(line);
        }
        let dropped = self.dropped()? + (records.len() - kept.len()) as u64;
        let mut text = serde_json::to_string(&Gap { dropped }).expect("gaps serialise");
        text.push('\n');
        for line in kept.iter().rev() {
            text.push_str(line);
            text.push('\n');
        }
        write_private(&self.path, text.as_bytes())
    }

    /// How many of the oldest records were dropped unseen (0 normally).
    /// Reads the first line only.
    pub(crate) fn dropped(&self) -> Result<u64, ProfileError> {
        use std::io::BufRead;
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&self.path, e)),
        };
        let mut first = String::new();
        std::io::BufReader::new(file).read_line(&mut first).map_err(|e| io(&self.path, e))?;
        Ok(serde_json::from_str::<Gap>(first.trim_end()).map(|g| g.dropped).unwrap_or(0))
    }

    /// Forgets the count of dropped records (once `sync` reported it).
    pub(crate) fn forget_dropped(&self) -> Result<(), ProfileError> {
        if self.dropped()? > 0 {
            self.write(&self.read()?, 0)?;
        }
        Ok(())
    }

    /// Every record kept, oldest first (a torn last line is skipped, and so
    /// is the count of dropped ones).
    pub(crate) fn read(&self) -> Result<Vec<Captured>, ProfileError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&self.path, e)),
        }
    }

    /// Replaces the records it holds (what `sync` could not print: its
    /// reader left, or what `chat` does not print); the count of dropped
    /// ones stays.
    pub(crate) fn replace(&self, records: &[Captured]) -> Result<(), ProfileError> {
        self.write(records, self.dropped()?)
    }

    fn write(&self, records: &[Captured], dropped: u64) -> Result<(), ProfileError> {
        let mut text = String::new();
        if dropped > 0 {
            text.push_str(&serde_json::to_string(&Gap { dropped }).expect("gaps serialise"));
            text.push('\n');
        }
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("captured records serialise"));
            text.push('\n');
        }
        write_private(&self.path, text.as_bytes())
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
        inbox.replace(&[]).unwrap();
        assert!(inbox.read().unwrap().is_empty());
    }

    #[test]
    fn past_its_size_the_oldest_go_and_are_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let inbox = Inbox { path: tmp.path().join("inbox.jsonl"), max_bytes: 4000 };
        let r = |n: usize| Captured { json: format!("{{\"n\":{n:04}}}"), human: format!("record {n:04}") };
        for n in 0..200 {
            inbox.append(&[r(n)]).unwrap();
        }
        let kept = inbox.read().unwrap();
        let dropped = inbox.dropped().unwrap();
        assert_eq!(dropped + kept.len() as u64, 200, "every record is kept or counted");
        assert!(dropped > 0 && std::fs::metadata(tmp.path().join("inbox.jsonl")).unwrap().len() <= 4000);
        // The newest are kept, in order.
        assert_eq!(kept.last().unwrap().human, "record 0199");
        let n: Vec<usize> = kept.iter().map(|c| c.human[7..].parse().unwrap()).collect();
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
        // Replacing the records keeps the count; forgetting it, only that.
        inbox.replace(&kept).unwrap();
        assert_eq!(inbox.dropped().unwrap(), dropped);
        inbox.forget_dropped().unwrap();
        assert_eq!(inbox.dropped().unwrap(), 0);
        assert_eq!(inbox.read().unwrap().len(), kept.len());
    }
}
