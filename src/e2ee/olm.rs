//! Olm sessions as policy: which session to use (R7, and what matrix-sdk
//! uses instead), how many to keep (R8), and when a new one may be made to
//! unwedge a device (R9–R11). Plain functions over plain data; the SDK is
//! reached from `sdk::olm`, the record is `profile::olm_ledger`.

use serde::Serialize;

/// R11: at most one new session per device per hour.
pub(crate) const UNWEDGE_INTERVAL_MS: u64 = 3_600_000;
/// R8: keep at least this many sessions per device.
pub(crate) const R8_MIN_CAP: usize = 4;

/// One Olm session with a device, without its ratchet state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct SessionInfo {
    pub(crate) session_id: String,
    pub(crate) created_ms: u64,
    pub(crate) last_used_ms: u64,
    /// When it last received and decrypted a message, as far as ratchet saw.
    pub(crate) last_received_ms: Option<u64>,
    /// The same, as matrix-sdk-crypto records it (whole seconds; null: it
    /// received nothing, or before the patched crate recorded it).
    pub(crate) sdk_last_received_ms: Option<u64>,
    pub(crate) created_using_fallback_key: bool,
}

impl SessionInfo {
    /// R7's clock: the last receipt, or the creation time if none.
    fn r7_time(&self) -> u64 {
        self.last_received_ms.unwrap_or(self.created_ms)
    }
}

/// R7: the session that last received and decrypted a message; a session
/// that has received nothing counts its creation time as that moment.
pub(crate) fn r7_choice(sessions: &[SessionInfo]) -> Option<&SessionInfo> {
    sessions.iter().max_by_key(|s| s.r7_time())
}

/// The session matrix-sdk-crypto encrypts with, as ratchet builds it
/// (`DeviceData::get_most_recent_session`, patched for R7: see
/// `patches/matrix-sdk-crypto-r7.diff`): the one it last received and
/// decrypted a message over, a session that received nothing counting its
/// creation time; a stable sort, so of equal times the newest created, and
/// the last of equals, wins. The published 0.18 took the newest *created*
/// (matrix-rust-sdk#3356).
pub(crate) fn sdk_choice(sessions: &[SessionInfo]) -> Option<&SessionInfo> {
    let mut ordered: Vec<&SessionInfo> = sessions.iter().collect();
    ordered.sort_by_key(|s| (s.sdk_last_received_ms.unwrap_or(s.created_ms), s.created_ms));
    ordered.last().copied()
}

/// The session that just received a message: decryption has just moved its
/// `last_use_time` to the newest. matrix-sdk exposes no Olm session id with
/// a decrypted event, and keeps `last_use_time` in whole seconds: when two
/// sessions were used within the same second, the newer created is taken
/// (a known limit of ratchet's R7 bookkeeping).
pub(crate) fn just_received(sessions: &[SessionInfo]) -> Option<&SessionInfo> {
    sessions.iter().max_by_key(|s| (s.last_used_ms, s.created_ms))
}

/// R11: milliseconds until another session may be created with a device
/// that ratchet last made one with at `last_created`, or `None` if now.
pub(crate) fn wait_before_new(last_created: Option<u64>, now: u64) -> Option<u64> {
    let next = last_created? + UNWEDGE_INTERVAL_MS;
    (now < next).then(|| next - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r11_one_new_session_per_device_per_hour() {
        assert_eq!(wait_before_new(None, 10), None);
        assert_eq!(wait_before_new(Some(1_000), 1_000), Some(UNWEDGE_INTERVAL_MS));
        assert_eq!(wait_before_new(Some(1_000), 1_000 + UNWEDGE_INTERVAL_MS - 1), Some(1));
        assert_eq!(wait_before_new(Some(1_000), 1_000 + UNWEDGE_INTERVAL_MS), None);
    }

    fn s(id: &str, created: u64, received: Option<u64>) -> SessionInfo {
        SessionInfo {
            session_id: id.into(),
            created_ms: created,
            last_used_ms: created,
            last_received_ms: received,
            sdk_last_received_ms: received.map(|ms| ms / 1000 * 1000),
            created_using_fallback_key: false,
        }
    }

    #[test]
    fn r7_prefers_last_received_then_creation() {
        let id = |v: &[SessionInfo]| r7_choice(v).map(|s| s.session_id.clone());
        // A newer session that never received loses to an older one that
        // received after it was created.
        let sessions = [s("old", 100_000, Some(500_000)), s("new", 300_000, None)];
        assert_eq!(id(&sessions).as_deref(), Some("old"));
        // ... and so does the patched SDK (the published one took "new").
        assert_eq!(sdk_choice(&sessions).map(|s| s.session_id.as_str()), Some("old"));
        // Of equal times, the newest created (a session just made by
        // unwedge wins over one that received in the same second).
        let same = [s("old", 100_000, Some(300_000)), s("new", 300_000, None)];
        assert_eq!(sdk_choice(&same).map(|s| s.session_id.as_str()), Some("new"));
        // Without receipts, creation time decides.
        assert_eq!(id(&[s("old", 100, None), s("new", 300, None)]).as_deref(), Some("new"));
    }
}
