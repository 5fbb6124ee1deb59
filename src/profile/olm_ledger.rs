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

/// How long the ledger keeps an entry, and how many of each kind at most
/// (the newest): R11 looks back one hour, R13 asks again after a day, and
/// R7 compares the sessions of one device, whose receipts are fresh while
/// they are in use.
const KEEP_MS: u64 = 30 * 24 * 3600 * 1000;
const KEEP_ENTRIES: usize = 10_000;

fn prune_map(map: &mut BTreeMap<String, u64>, now: u64) {
    map.retain(|_, at| now.saturating_sub(*at) <= KEEP_MS);
    if map.len() > KEEP_ENTRIES {
        let mut times: Vec<u64> = map.values().copied().collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        let oldest_kept = times[KEEP_ENTRIES - 1];
        map.retain(|_, at| *at >= oldest_kept);
    }
}

impl OlmLedger {
    /// Drops entries older than 30 days, and past 10,000 of a kind the
    /// oldest: the ledger stays bounded however long a profile lives.
    pub(crate) fn prune(&mut self, now: u64) {
        prune_map(&mut self.created, now);
        prune_map(&mut self.last_received, now);
        prune_map(&mut self.key_requests, now);
    }

    /// When ratchet last created a session with the device.
    pub(crate) fn last_created(&self, user: &UserId, device: &DeviceId) -> Option<u64> {
        let recorded = self.created.get(&device_key(user, device)).copied();
        recorded.max(self.all_devices_since)
    }

    pub(crate) fn record_created(&mut self, user: &UserId, device: &DeviceId, now: u64) {
        self.created.insert(device_key(user, device), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_what_the_rules_look_at_and_bounds_the_rest() {
        let now = 100 * 24 * 3600 * 1000;
        let mut l = OlmLedger::default();
        l.created.insert("@a:x OLD".into(), now - KEEP_MS - 1);
        l.created.insert("@a:x NEW".into(), now - 1000);
        for i in 0..(KEEP_ENTRIES as u64 + 50) {
            l.last_received.insert(format!("s{i}"), now - 1_000_000 + i);
        }
        l.prune(now);
        assert_eq!(l.created.keys().collect::<Vec<_>>(), ["@a:x NEW"]);
        assert_eq!(l.last_received.len(), KEEP_ENTRIES);
        assert!(l.last_received.contains_key(&format!("s{}", KEEP_ENTRIES as u64 + 49)));
        assert!(!l.last_received.contains_key("s0"));
    }
}
