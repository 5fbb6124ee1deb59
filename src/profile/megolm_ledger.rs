//! The Megolm ledger: ratchet's own record of outbound Megolm sessions, beside
//! the SDK's store. Plain data; the rules that read it are in
//! `e2ee::rotation`.
//!
//! * Per room, the current session's id and its creation time in
//!   milliseconds, taken just before the send that created it (so the age is
//!   never under-estimated): the SDK keeps whole seconds only, and R5's
//!   `rotation_period_ms` is in milliseconds.
//! * Per room, the id of a session ratchet itself discarded and why, so the
//!   next send can say `forced` or `settings_changed`.
//! * Per room, the strictest rotation limits seen (R3).

use std::collections::BTreeMap;

use matrix_sdk::ruma::RoomId;
use serde::{Deserialize, Serialize};

use crate::e2ee::rotation::{Rotation, Strictest};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct MegolmLedger {
    #[serde(default)]
    pub(crate) rooms: BTreeMap<String, OutboundEntry>,
    /// Per room, the strictest limits seen (see `e2ee::rotation`).
    #[serde(default)]
    pub(crate) strictest: BTreeMap<String, Strictest>,
    /// Set when this file was found damaged: the precise creation times
    /// were lost, so every outbound session made before this time is taken
    /// as past its limit (it rotates before its next message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) distrust_before: Option<u64>,
}

/// What ratchet knows of a room's outbound session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboundEntry {
    pub(crate) session_id: String,
    pub(crate) created_ms: u64,
    /// A session ratchet itself discarded in this room, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) discarded: Option<Discarded>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Discarded {
    pub(crate) session_id: String,
    pub(crate) reason: Rotation,
}

impl MegolmLedger {
    pub(crate) fn record_new(&mut self, room_id: &RoomId, session_id: &str, created_ms: u64) {
        self.rooms.insert(
            room_id.to_string(),
            OutboundEntry { session_id: session_id.to_owned(), created_ms, discarded: None },
        );
    }

    /// ratchet discarded `session_id` (`Forced` or `SettingsChanged`); the
    /// next send reports that reason for its new session.
    pub(crate) fn record_discard(&mut self, room_id: &RoomId, session_id: &str, reason: Rotation) {
        let entry = self.rooms.entry(room_id.to_string()).or_insert_with(|| OutboundEntry {
            session_id: session_id.to_owned(),
            created_ms: 0,
            discarded: None,
        });
        entry.discarded = Some(Discarded { session_id: session_id.to_owned(), reason });
    }

    /// Why ratchet discarded `session_id`, if it did.
    pub(crate) fn discard_reason(&self, room_id: &RoomId, session_id: &str) -> Option<Rotation> {
        let discarded = self.rooms.get(room_id.as_str())?.discarded.as_ref()?;
        (discarded.session_id == session_id).then_some(discarded.reason)
    }

    /// The precise creation time of `session_id`, if ratchet recorded it.
    pub(crate) fn created_ms(&self, room_id: &RoomId, session_id: &str) -> Option<u64> {
        self.rooms.get(room_id.as_str()).filter(|e| e.session_id == session_id).map(|e| e.created_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_forced() {
        let room: &RoomId = "!r:x".try_into().unwrap();
        let mut l = MegolmLedger::default();
        l.record_new(room, "s1", 5);
        l.record_discard(room, "s1", Rotation::Forced);
        let back: MegolmLedger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back.discard_reason(room, "s1"), Some(Rotation::Forced));
        assert_eq!(back.discard_reason(room, "s2"), None);
        assert_eq!(back.created_ms(room, "s1"), Some(5));
        assert_eq!(back.created_ms(room, "s2"), None);
    }
}
