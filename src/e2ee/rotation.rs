//! Megolm rotation as policy (R1–R5): the room's limits, their defaults and
//! bounds, how they are parsed and compared, and when an outbound session
//! must be replaced. Plain functions over plain data; the SDK is reached
//! from `sdk::megolm`, the record of sessions is `profile::megolm_ledger`.
//!
//! Why ratchet decides rotation itself: matrix-sdk-crypto 0.18 treats any
//! `rotation_period_ms` below one hour as one hour
//! (`OutboundGroupSession::safe_rotation_period`, olm/group_sessions/
//! outbound.rs) and clamps `rotation_period_msgs` to 1..=10000. R5 says the
//! room's values are the limits.

use matrix_sdk::ruma::events::room::encryption::{
    PossiblyRedactedRoomEncryptionEventContent, RoomEncryptionEventContent,
};
use matrix_sdk::ruma::{EventEncryptionAlgorithm, UInt};
use serde::{Deserialize, Serialize};

/// R5's defaults when the room's `m.room.encryption` leaves a limit out.
pub(crate) const DEFAULT_ROTATION_MSGS: u64 = 100;
pub(crate) const DEFAULT_ROTATION_MS: u64 = 604_800_000;

/// Upper bounds for settings ratchet sends: past these a "rotation" setting
/// means "never", which R5 forbids ("may not be reused indefinitely").
pub(crate) const MAX_ROTATION_MSGS: u64 = 1_000_000;
pub(crate) const MAX_ROTATION_MS: u64 = 365 * 24 * 3600 * 1000;

/// clap value parser for `--rotation-msgs`.
pub(crate) fn parse_rotation_msgs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 (a session has to encrypt something)".into()),
        Ok(n) if n > MAX_ROTATION_MSGS => Err(format!("must be at most {MAX_ROTATION_MSGS}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a positive whole number")),
    }
}

/// clap value parser for `--rotation-ms`.
pub(crate) fn parse_rotation_ms(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 millisecond".into()),
        Ok(n) if n > MAX_ROTATION_MS => Err(format!("must be at most {MAX_ROTATION_MS} (one year)")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a positive whole number of milliseconds")),
    }
}

/// The rotation settings of an `m.room.encryption` event as sent (R2):
/// `None` is "left out" (the defaults apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub(crate) struct RotationSettings {
    pub(crate) rotation_period_msgs: Option<u64>,
    pub(crate) rotation_period_ms: Option<u64>,
}

impl RotationSettings {
    pub(crate) fn of(c: &PossiblyRedactedRoomEncryptionEventContent) -> RotationSettings {
        RotationSettings {
            rotation_period_msgs: c.rotation_period_msgs.map(u64::from),
            rotation_period_ms: c.rotation_period_ms.map(u64::from),
        }
    }

    /// The `m.room.encryption` content for these settings (R1, R2).
    pub(crate) fn content(self) -> RoomEncryptionEventContent {
        let mut content = RoomEncryptionEventContent::new(EventEncryptionAlgorithm::MegolmV1AesSha2);
        content.rotation_period_msgs = self.rotation_period_msgs.map(|n| UInt::new(n).expect("bounded by the parser"));
        content.rotation_period_ms = self.rotation_period_ms.map(|n| UInt::new(n).expect("bounded by the parser"));
        content
    }

    /// The limits these settings mean, defaults filled in (R5). A room that
    /// says 0 messages cannot mean "encrypt nothing": one message, as the
    /// SDK also reads it.
    pub(crate) fn limits(self) -> RoomLimits {
        RoomLimits {
            rotation_period_msgs: self.rotation_period_msgs.unwrap_or(DEFAULT_ROTATION_MSGS).max(1),
            rotation_period_msgs_is_default: self.rotation_period_msgs.is_none(),
            rotation_period_ms: self.rotation_period_ms.unwrap_or(DEFAULT_ROTATION_MS),
            rotation_period_ms_is_default: self.rotation_period_ms.is_none(),
            kept_by_r3: false,
        }
    }

    /// Whether `self` lets a session live longer than `old` on either limit
    /// (what R3 calls weakening).
    pub(crate) fn weaker_than(self, old: RotationSettings) -> bool {
        let (new, old) = (self.limits(), old.limits());
        new.rotation_period_msgs > old.rotation_period_msgs || new.rotation_period_ms > old.rotation_period_ms
    }
}

/// The strictest rotation limits seen for a room (R3), as kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Strictest {
    pub(crate) rotation_period_msgs: u64,
    pub(crate) rotation_period_ms: u64,
}

/// The room's effective rotation limits, with the defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub(crate) struct RoomLimits {
    pub(crate) rotation_period_msgs: u64,
    pub(crate) rotation_period_msgs_is_default: bool,
    pub(crate) rotation_period_ms: u64,
    pub(crate) rotation_period_ms_is_default: bool,
    /// R3: the room's current m.room.encryption is looser than one seen
    /// before, and the stricter limits seen before are kept.
    pub(crate) kept_by_r3: bool,
}

impl RoomLimits {
    /// R3: the limits to apply are the room's current ones, but never looser
    /// than the strictest seen before (a later m.room.encryption must not
    /// weaken encryption, so a loosening from the network is not followed).
    /// Returns the limits and what is now the strictest seen.
    pub(crate) fn under_r3(self, seen: Option<Strictest>) -> (RoomLimits, Strictest) {
        let mut limits = self;
        if let Some(seen) = seen {
            if seen.rotation_period_msgs < limits.rotation_period_msgs {
                limits.rotation_period_msgs = seen.rotation_period_msgs;
                limits.rotation_period_msgs_is_default = false;
                limits.kept_by_r3 = true;
            }
            if seen.rotation_period_ms < limits.rotation_period_ms {
                limits.rotation_period_ms = seen.rotation_period_ms;
                limits.rotation_period_ms_is_default = false;
                limits.kept_by_r3 = true;
            }
        }
        let strictest = Strictest {
            rotation_period_msgs: limits.rotation_period_msgs,
            rotation_period_ms: limits.rotation_period_ms,
        };
        (limits, strictest)
    }

    /// This profile's own explicit choice (`encrypt`): it replaces the
    /// strictest limits seen, which only guard against changes by others.
    pub(crate) fn as_strictest(self) -> Strictest {
        Strictest { rotation_period_msgs: self.rotation_period_msgs, rotation_period_ms: self.rotation_period_ms }
    }
}

/// Why a message went out in a new Megolm session. Part of the JSON contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Rotation {
    /// There was no outbound session for the room yet.
    New,
    /// The session had encrypted `rotation_period_msgs` messages (R5).
    MessageLimit,
    /// The session was older than `rotation_period_ms` (R5).
    AgeLimit,
    /// `ratchet rotate` discarded it.
    Forced,
    /// `ratchet encrypt --force` changed the room's settings and discarded it.
    SettingsChanged,
    /// The SDK invalidated it (a member left, a device was removed, …).
    Invalidated,
    /// The SDK rotated it because someone it was shared with left the room.
    MemberLeft,
    /// matrix-sdk reloaded the room's full member list before this send (it
    /// is marked incomplete after a sync whose timeline was `limited`, and
    /// in a room whose members were never loaded) and, since 0.17 (MSC4268),
    /// discards the room key after every such reload, as a precaution
    /// against a join and leave it may have missed.
    MemberListReload,
    /// The SDK rotated it for a reason of its own (device deleted or
    /// blacklisted, history visibility changed).
    Sdk,
    /// ratchet's record of the session (`megolm.json`) was damaged: its age
    /// could not be trusted, so it was replaced (failing closed).
    RecordDamaged,
}

impl Rotation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rotation::New => "new",
            Rotation::MessageLimit => "message_limit",
            Rotation::AgeLimit => "age_limit",
            Rotation::Forced => "forced",
            Rotation::SettingsChanged => "settings_changed",
            Rotation::Invalidated => "invalidated",
            Rotation::MemberLeft => "member_left",
            Rotation::MemberListReload => "member_list_reload",
            Rotation::Sdk => "sdk",
            Rotation::RecordDamaged => "record_damaged",
        }
    }
}

/// One device the outbound session was shared with (also as kept in the
/// profile's sharing records, `doctor --sent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct SharedWith {
    pub(crate) user_id: String,
    pub(crate) device_id: String,
    /// The first index that device can decrypt; `None` when withheld.
    pub(crate) message_index: Option<u32>,
    pub(crate) withheld: Option<String>,
}

/// What the outbound session of a room has done, without its secrets.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    pub(crate) session_id: String,
    /// Milliseconds since the epoch: ratchet's ledger when it knows this
    /// session, else the SDK's whole-second creation time.
    pub(crate) created_ms: u64,
    pub(crate) created_precise: bool,
    pub(crate) message_count: u64,
    pub(crate) invalidated: bool,
    pub(crate) shared: bool,
    pub(crate) shared_with: Vec<SharedWith>,
}

impl Outbound {
    pub(crate) fn age_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.created_ms)
    }

    /// R5: has either limit been reached? Once one is, no more messages may
    /// go out in this session.
    pub(crate) fn limit_reached(&self, limits: &RoomLimits, now: u64) -> Option<Rotation> {
        if self.message_count >= limits.rotation_period_msgs {
            Some(Rotation::MessageLimit)
        } else if self.age_ms(now) >= limits.rotation_period_ms {
            Some(Rotation::AgeLimit)
        } else {
            None
        }
    }
}

/// R4 before a send: given the room's outbound session (if any), whether to
/// discard it, and why the next message will be in a new session (if
/// ratchet knows). `discarded_by_ratchet` is the reason ratchet recorded
/// when it discarded this session itself.
pub(crate) fn before_send(
    current: Option<&Outbound>,
    limits: &RoomLimits,
    discarded_by_ratchet: Option<Rotation>,
    distrust_before: Option<u64>,
    now: u64,
) -> BeforeSend {
    match current {
        // The record of this session's age was lost: fail closed.
        Some(s) if !s.invalidated && !s.created_precise && distrust_before.is_some_and(|t| s.created_ms <= t) => {
            BeforeSend { discard: true, planned: Some(Rotation::RecordDamaged) }
        }
        None => BeforeSend { discard: false, planned: Some(Rotation::New) },
        Some(s) if s.invalidated => {
            BeforeSend { discard: false, planned: Some(discarded_by_ratchet.unwrap_or(Rotation::Invalidated)) }
        }
        Some(s) => {
            let reached = s.limit_reached(limits, now);
            BeforeSend { discard: reached.is_some(), planned: reached }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BeforeSend {
    /// The session has reached a limit: discard it before encrypting.
    pub(crate) discard: bool,
    pub(crate) planned: Option<Rotation>,
}

/// After a send whose message went out in a session other than the one
/// before it: why. ratchet's own reason when it had one; otherwise the SDK
/// rotated by itself — because someone the old session was shared with left
/// the room (they must not read what follows), or for a reason of its own.
pub(crate) fn why_new(planned: Option<Rotation>, a_recipient_left: bool) -> Rotation {
    match planned {
        Some(reason) => reason,
        None if a_recipient_left => Rotation::MemberLeft,
        None => Rotation::Sdk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(count: u64, created_ms: u64) -> Outbound {
        Outbound {
            session_id: "s".into(),
            created_ms,
            created_precise: true,
            message_count: count,
            invalidated: false,
            shared: true,
            shared_with: vec![],
        }
    }

    fn limits(msgs: u64, ms: u64) -> RoomLimits {
        RotationSettings { rotation_period_msgs: Some(msgs), rotation_period_ms: Some(ms) }.limits()
    }

    #[test]
    fn r5_limits_are_exact() {
        let l = limits(3, 2000);
        // Two messages encrypted, 1999 ms old: still usable.
        assert_eq!(outbound(2, 1000).limit_reached(&l, 2999), None);
        // The third message was the last one (indexes 0, 1, 2).
        assert_eq!(outbound(3, 1000).limit_reached(&l, 1001), Some(Rotation::MessageLimit));
        // 2000 ms means 2 s, not an hour.
        assert_eq!(outbound(1, 1000).limit_reached(&l, 3000), Some(Rotation::AgeLimit));
    }

    #[test]
    fn r5_defaults_and_zero() {
        let none = RotationSettings { rotation_period_msgs: None, rotation_period_ms: None }.limits();
        assert_eq!((none.rotation_period_msgs, none.rotation_period_ms), (100, 604_800_000));
        assert!(none.rotation_period_msgs_is_default && none.rotation_period_ms_is_default);
        let zero = RotationSettings { rotation_period_msgs: Some(0), rotation_period_ms: None }.limits();
        assert_eq!(zero.rotation_period_msgs, 1);
    }

    #[test]
    fn r4_before_send() {
        let l = limits(3, 2000);
        assert_eq!(before_send(None, &l, None, None, 0), BeforeSend { discard: false, planned: Some(Rotation::New) });
        assert_eq!(
            before_send(Some(&outbound(1, 0)), &l, None, None, 10),
            BeforeSend { discard: false, planned: None }
        );
        assert_eq!(
            before_send(Some(&outbound(3, 0)), &l, None, None, 10),
            BeforeSend { discard: true, planned: Some(Rotation::MessageLimit) }
        );
        let mut gone = outbound(1, 0);
        gone.invalidated = true;
        assert_eq!(before_send(Some(&gone), &l, None, None, 10).planned, Some(Rotation::Invalidated));
        assert_eq!(before_send(Some(&gone), &l, Some(Rotation::Forced), None, 10).planned, Some(Rotation::Forced));
        // A damaged record: a session whose age is not ratchet's own record
        // rotates; a precisely recorded one (made since) does not.
        let mut unsure = outbound(1, 5);
        unsure.created_precise = false;
        assert_eq!(
            before_send(Some(&unsure), &l, None, Some(7), 10),
            BeforeSend { discard: true, planned: Some(Rotation::RecordDamaged) }
        );
        assert_eq!(before_send(Some(&outbound(1, 5)), &l, None, Some(7), 10).planned, None);
        assert_eq!(why_new(None, true), Rotation::MemberLeft);
        assert_eq!(why_new(None, false), Rotation::Sdk);
        assert_eq!(why_new(Some(Rotation::AgeLimit), true), Rotation::AgeLimit);
    }

    #[test]
    fn r3_keeps_the_strictest() {
        let first = limits(10, 5000);
        let (applied, seen) = first.under_r3(None);
        assert!(!applied.kept_by_r3);
        let looser = limits(50, 9000);
        let (applied, seen2) = looser.under_r3(Some(seen));
        assert!(applied.kept_by_r3);
        assert_eq!((applied.rotation_period_msgs, applied.rotation_period_ms), (10, 5000));
        assert_eq!(seen2, seen);
        let stricter = limits(5, 9000);
        let (applied, seen3) = stricter.under_r3(Some(seen2));
        assert_eq!((applied.rotation_period_msgs, applied.rotation_period_ms), (5, 5000));
        assert_eq!(seen3, Strictest { rotation_period_msgs: 5, rotation_period_ms: 5000 });
    }

    #[test]
    fn weakening() {
        let s = |m, t| RotationSettings { rotation_period_msgs: m, rotation_period_ms: t };
        assert!(!s(Some(5), None).weaker_than(s(Some(10), None)));
        assert!(s(Some(20), None).weaker_than(s(Some(10), None)));
        assert!(s(None, None).weaker_than(s(Some(10), None)), "absent means 100");
        assert!(s(None, None).weaker_than(s(None, Some(1000))), "absent means a week");
        assert!(!s(Some(100), Some(604_800_000)).weaker_than(s(None, None)));
    }

    #[test]
    fn rotation_limits() {
        assert_eq!(parse_rotation_msgs("3"), Ok(3));
        assert!(parse_rotation_msgs("0").is_err());
        assert!(parse_rotation_msgs("-1").is_err());
        assert!(parse_rotation_msgs("abc").is_err());
        assert!(parse_rotation_msgs("99999999999999999999999").is_err());
        assert_eq!(parse_rotation_ms("2000"), Ok(2000));
        assert!(parse_rotation_ms("0").is_err());
        assert!(parse_rotation_ms(&(MAX_ROTATION_MS + 1).to_string()).is_err());
    }

    #[test]
    fn encryption_content_carries_limits() {
        let s = |m, t| RotationSettings { rotation_period_msgs: m, rotation_period_ms: t };
        let json = serde_json::to_value(s(Some(3), Some(2000)).content()).unwrap();
        assert_eq!(json["algorithm"], "m.megolm.v1.aes-sha2");
        assert_eq!(json["rotation_period_msgs"], 3);
        assert_eq!(json["rotation_period_ms"], 2000);
        let plain = serde_json::to_value(s(None, None).content()).unwrap();
        assert!(plain.get("rotation_period_msgs").is_none());
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Exactly 1..=MAX is accepted, as written; nothing panics.
        #[test]
        fn rotation_msgs_bounds(n in any::<i128>()) {
            let ok = parse_rotation_msgs(&n.to_string()).is_ok();
            prop_assert_eq!(ok, (1..=MAX_ROTATION_MSGS as i128).contains(&n));
        }

        #[test]
        fn rotation_ms_bounds(n in any::<i128>()) {
            let parsed = parse_rotation_ms(&n.to_string());
            prop_assert_eq!(parsed.is_ok(), (1..=MAX_ROTATION_MS as i128).contains(&n));
            if let Ok(v) = parsed { prop_assert_eq!(v as i128, n); }
        }

        #[test]
        fn counts_from_any_text_never_panic(s in "\\PC{0,40}") {
            let _ = parse_rotation_msgs(&s);
            let _ = parse_rotation_ms(&s);
        }

        /// R3: whatever the room says next, the limits applied never loosen.
        #[test]
        fn r3_never_loosens(a in 1u64..1000, b in 1u64..100_000, c in 1u64..1000, d in 1u64..100_000) {
            let s = |m, t| RotationSettings { rotation_period_msgs: Some(m), rotation_period_ms: Some(t) };
            let (_, seen) = s(a, b).limits().under_r3(None);
            let (applied, _) = s(c, d).limits().under_r3(Some(seen));
            prop_assert!(applied.rotation_period_msgs <= a && applied.rotation_period_ms <= b);
        }
    }
}
