//! Who each outbound Megolm session of this device was given to: the
//! sender's side of a decryption failure (`doctor --sent`, issue 32).
//!
//! matrix-sdk keeps one outbound session per room, and forgets it (with
//! whom it was shared) when a new one replaces it. ratchet keeps the
//! sharing record of each of its sessions here, taken after every key share
//! that sent something, so that the question "why can bob's phone not read
//! what I sent last week?" still has an answer after rotations.

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::StateDb;
use crate::e2ee::rotation::SharedWith;
use crate::error::CliResult;

/// Sessions whose sharing record is kept (the newest).
const KEEP_SHARES: i64 = 1_000;

/// What ratchet knows of whom one outbound session went to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShareRecord {
    pub(crate) room_id: String,
    pub(crate) session_id: String,
    /// The users the session was shared with, at any of its shares (the
    /// room's members then, under its history visibility).
    pub(crate) members: Vec<String>,
    /// Every device the SDK decided on, with the outcome (its sharing
    /// record, which only grows). A device withheld and later given shows
    /// as given, from the later index, and keeps the code it was withheld
    /// with (the SDK's record forgets it).
    pub(crate) devices: Vec<SharedWith>,
    /// Servers that did not answer a key query or a one-time-key claim
    /// during one of the shares: their users' devices may be missing.
    pub(crate) unreachable: Vec<String>,
    /// When it was first and last recorded (ms).
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
}

impl ShareRecord {
    /// `self` after a later share: the SDK's record replaces the devices
    /// (it holds every earlier outcome), members and servers accumulate.
    pub(crate) fn merged(mut self, later: ShareRecord) -> ShareRecord {
        for m in later.members {
            if !self.members.contains(&m) {
                self.members.push(m);
            }
        }
        for s in later.unreachable {
            if !self.unreachable.contains(&s) {
                self.unreachable.push(s);
            }
        }
        // A device withheld at first and given later keeps its code, for
        // the messages it missed (`doctor --sent` says why).
        let mut devices = later.devices;
        for d in &mut devices {
            if d.message_index.is_some() && d.withheld.is_none() {
                d.withheld = self
                    .devices
                    .iter()
                    .find(|e| e.user_id == d.user_id && e.device_id == d.device_id)
                    .and_then(|e| e.withheld.clone());
            }
        }
        self.devices = devices;
        self.last_ms = later.last_ms;
        self
    }
}

impl StateDb {
    /// The sharing record of a session, if one was kept.
    pub(crate) fn shares(&self, session_id: &str) -> CliResult<Option<ShareRecord>> {
        let key = self.hash("shares", session_id);
        let bytes: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT value FROM shares WHERE session = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.io(e))?;
        bytes.map(|b| self.open_value(&b)).transpose()
    }

    /// Keeps a share's record, merged into the session's earlier one (the
    /// newest [`KEEP_SHARES`] sessions are kept).
    pub(crate) fn put_shares(&self, record: ShareRecord) -> CliResult<()> {
        let merged = match self.shares(&record.session_id)? {
            Some(earlier) => earlier.merged(record),
            None => record,
        };
        let key = self.hash("shares", &merged.session_id);
        self.put_newest("shares", "session", key, &self.seal(&merged)?, KEEP_SHARES)
    }
}
