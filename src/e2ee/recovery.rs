//! Recovery from an undecryptable Olm message as policy (R9–R11, R13): the
//! steps a recovery takes, and the decision for one sending device. The
//! steps are carried out against the SDK by `sdk::recovery`.
//!
//! For each device whose to-device message could not be decrypted:
//! 1. R11: if ratchet created a session with it in the past hour, stop.
//! 2. R9/R10: otherwise a new Olm session and an `m.dummy` over it. If
//!    matrix-sdk has just created one itself (it does when its newest session
//!    with the device is over an hour old), that session is used and only
//!    the `m.dummy` is sent — the SDK queues one but never sends it.
//! 3. R13: ask again for the Megolm sessions of that sender that are
//!    undecryptable in the same sync.

use serde::Serialize;

use super::olm::{sdk_choice, wait_before_new, SessionInfo};

/// One step of a recovery, as reported in `recovery` records. Part of the
/// JSON contract (`step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecoveryStep {
    /// An Olm message from the device could not be decrypted (R9).
    OlmUndecryptable,
    /// R11 forbids another new session with the device yet.
    RateLimited,
    /// The sending device is not in the device list: nothing to recover with.
    UnknownDevice,
    /// A new Olm session with the device exists (R9).
    NewOlmSession,
    /// The `m.dummy` went out over it (R10).
    DummySent,
    /// An `m.room_key_request` for a lost Megolm session went out (R13).
    KeyRequest,
    /// A step failed; the record's message says why.
    Failed,
}

/// Who created the new Olm session of a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CreatedBy {
    Ratchet,
    Sdk,
}

/// What to do about one device whose Olm message failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unwedge {
    /// R11: wait this many milliseconds first.
    RateLimited { wait_ms: u64 },
    /// The SDK created this session during the sync; send only the m.dummy.
    DummyOverSdkSession { session_id: String },
    /// Create a session and send the m.dummy over it.
    NewSession,
}

/// The decision for one device: `last_created` is when ratchet last created
/// a session with it (R11), `sessions` what the store holds after the sync,
/// and `sync_started_ms` when that sync began.
pub(crate) fn unwedge(last_created: Option<u64>, sessions: &[SessionInfo], sync_started_ms: u64, now: u64) -> Unwedge {
    if let Some(wait_ms) = wait_before_new(last_created, now) {
        return Unwedge::RateLimited { wait_ms };
    }
    // The SDK's creation times are whole seconds: a session it made during
    // this sync may show a time up to a second before the sync began.
    match sdk_choice(sessions) {
        Some(s) if s.created_ms + 1000 >= sync_started_ms => {
            Unwedge::DummyOverSdkSession { session_id: s.session_id.clone() }
        }
        _ => Unwedge::NewSession,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2ee::olm::UNWEDGE_INTERVAL_MS;

    fn session(id: &str, created_ms: u64) -> SessionInfo {
        SessionInfo {
            session_id: id.into(),
            created_ms,
            last_used_ms: created_ms,
            last_received_ms: None,
            sdk_last_received_ms: None,
            created_using_fallback_key: false,
        }
    }

    #[test]
    fn r11_comes_first() {
        let now = 10 * UNWEDGE_INTERVAL_MS;
        assert_eq!(
            unwedge(Some(now - 1000), &[], now, now),
            Unwedge::RateLimited { wait_ms: UNWEDGE_INTERVAL_MS - 1000 }
        );
    }

    #[test]
    fn the_sdks_fresh_session_is_used_an_old_one_is_not() {
        let now = 10 * UNWEDGE_INTERVAL_MS;
        let started = now - 300;
        let fresh = [session("old", 1000), session("sdk", started - 900)];
        assert_eq!(unwedge(None, &fresh, started, now), Unwedge::DummyOverSdkSession { session_id: "sdk".into() });
        let stale = [session("old", 1000)];
        assert_eq!(unwedge(None, &stale, started, now), Unwedge::NewSession);
        assert_eq!(unwedge(Some(now - UNWEDGE_INTERVAL_MS), &stale, started, now), Unwedge::NewSession);
    }
}

/// Whether an event was sent before this device existed (so no room key
/// was ever sent to it: only a copy, from the backup, another device of
/// yours or an export, can help; a new Olm session cannot). A creation
/// time of 0 is unknown: nothing predates it. The server's clock against
/// this machine's, as matrix-sdk's own UTD cause does (no allowance for
/// skew: an event a skewed server stamps early is called history).
pub(crate) fn predates_device(sent_ms: Option<u64>, created_ms: u64) -> bool {
    created_ms > 0 && sent_ms.is_some_and(|t| t < created_ms)
}

#[cfg(test)]
mod predates_tests {
    use super::predates_device;

    #[test]
    fn only_what_was_sent_clearly_before_the_device() {
        assert!(predates_device(Some(1_000), 10_000_000));
        assert!(!predates_device(Some(10_000_000), 10_000_000), "the same millisecond is not before");
        assert!(!predates_device(Some(20_000_000), 10_000_000));
        assert!(!predates_device(None, 10_000_000));
        assert!(!predates_device(Some(1_000), 0), "creation unknown");
    }
}
