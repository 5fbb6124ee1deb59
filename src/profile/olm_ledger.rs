//! The Olm ledger: ratchet's own record of Olm sessions, beside the SDK's store.
//! Plain data; the rules that read it (R7, R11) are in `e2ee::olm`.

use std::collections::BTreeMap;

use matrix_sdk::ruma::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct OlmLedger {
    /// `"<user_id> <device_id>"` → when ratchet last created a session with
    /// it (R11).
    #[serde(default)]
    pub(crate) created: BTreeMap<String, u64>,
    /// Session id → when it last received and decrypted a message (R7; the
    /// SDK's `last_use_time` moves on encryption too).
    #[serde(default)]
    pub(crate) last_received: BTreeMap<String, u64>,
    /// Megolm session id → when ratchet last sent an m.room_key_request for it.
    #[serde(default)]
    pub(crate) key_requests: BTreeMap<String, u64>,
    /// Set when this file was found damaged: R11's record was lost, so every
    /// device counts as having had a new session made at this time (the
    /// strictest reading: none may get another within the hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) all_devices_since: Option<u64>,
}

fn device_key(user: &UserId, device: &DeviceId) -> String {
    format!("{user} {device}")
}

impl OlmLedger {
    /// When ratchet last created a session with the device.
    pub(crate) fn last_created(&self, user: &UserId, device: &DeviceId) -> Option<u64> {
        let recorded = self.created.get(&device_key(user, device)).copied();
        recorded.max(self.all_devices_since)
    }

    pub(crate) fn record_created(&mut self, user: &UserId, device: &DeviceId, now: u64) {
        self.created.insert(device_key(user, device), now);
    }
}
