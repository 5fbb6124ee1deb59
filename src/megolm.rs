//! Megolm outbound sessions: the room's rotation limits (R2, R5), what the
//! current outbound session has done against them, and the decision to rotate
//! before a send (R4) — made by ratchet, exactly, rather than left to
//! matrix-sdk.
//!
//! Why not leave it to the SDK: matrix-sdk-crypto 0.18 treats any
//! `rotation_period_ms` below one hour as one hour
//! (`OutboundGroupSession::safe_rotation_period`, olm/group_sessions/
//! outbound.rs) and clamps `rotation_period_msgs` to 1..=10000. R5 says the
//! room's values are the limits. So before every encrypted send ratchet
//! compares the stored outbound session against the room's current values and
//! discards it (`Room::discard_room_key`, persisted) once either limit is
//! reached; the SDK then creates and shares a new one as part of the send.
//!
//! The SDK records a session's creation time in whole seconds. For
//! millisecond limits ratchet keeps its own record, the *ledger*
//! (`<profile>/megolm.json`): per room, the session id and the time taken just
//! before the send that created it (so it is never later than the real
//! creation and the age is never under-estimated), plus the id of a session
//! that `ratchet rotate` discarded, so the next send can say `forced`.
//!
//! Nothing here exposes key material: the pickle is read for its counters and
//! share list only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use matrix_sdk::ruma::RoomId;
use matrix_sdk::{Client, Room, RoomMemberships};
use matrix_sdk_crypto::olm::ShareInfo;
use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};
use crate::session;

/// R5's defaults when the room's `m.room.encryption` leaves a limit out.
pub(crate) const DEFAULT_ROTATION_MSGS: u64 = 100;
pub(crate) const DEFAULT_ROTATION_MS: u64 = 604_800_000;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The room's effective rotation limits, with the defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// The limits ratchet applies: the room's current settings, but never
    /// looser than the strictest this profile has seen for the room (R3: a
    /// later m.room.encryption must not weaken encryption, so a loosening
    /// from the network is not followed). Records what it saw; returns
    /// `None` when the room is not encrypted.
    pub(crate) fn effective(room: &Room, ledger: &mut Ledger) -> Option<RoomLimits> {
        let mut limits = RoomLimits::of(room)?;
        let seen = ledger.strictest.entry(room.room_id().to_string()).or_insert(Strictest {
            rotation_period_msgs: limits.rotation_period_msgs,
            rotation_period_ms: limits.rotation_period_ms,
        });
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
        seen.rotation_period_msgs = limits.rotation_period_msgs;
        seen.rotation_period_ms = limits.rotation_period_ms;
        Some(limits)
    }

    /// The room's current m.room.encryption, defaults filled in.
    fn of(room: &Room) -> Option<RoomLimits> {
        let settings = room.encryption_settings()?;
        let msgs = settings.rotation_period_msgs.map(u64::from);
        let ms = settings.rotation_period_ms.map(u64::from);
        Some(RoomLimits {
            // A room that says 0 cannot mean "encrypt nothing": one message,
            // as the SDK also reads it.
            rotation_period_msgs: msgs.unwrap_or(DEFAULT_ROTATION_MSGS).max(1),
            rotation_period_msgs_is_default: msgs.is_none(),
            rotation_period_ms: ms.unwrap_or(DEFAULT_ROTATION_MS),
            rotation_period_ms_is_default: ms.is_none(),
            kept_by_r3: false,
        })
    }
}

/// The strictest rotation limits seen for a room (R3).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Strictest {
    pub(crate) rotation_period_msgs: u64,
    pub(crate) rotation_period_ms: u64,
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
    /// The SDK rotated it for a reason of its own (device deleted or
    /// blacklisted, history visibility changed).
    Sdk,
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
            Rotation::Sdk => "sdk",
        }
    }
}

/// One device the outbound session was shared with.
#[derive(Debug, Clone, Serialize)]
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

    /// R5: has either limit been reached?
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

/// Reads the room's outbound Megolm session from the crypto store.
pub(crate) async fn outbound(client: &Client, room_id: &RoomId, ledger: &Ledger) -> CliResult<Option<Outbound>> {
    let guard = client.olm_machine_for_testing().await;
    let machine = crate::crypto::machine(&guard)?;
    let Some(session) = machine
        .store()
        .get_outbound_group_session(room_id)
        .await
        .map_err(|e| CliError::failed("could not read the outbound Megolm session").with_source(e))?
    else {
        return Ok(None);
    };
    let pickle = session.pickle().await;
    let session_id = session.session_id().to_owned();
    let (created_ms, created_precise) = match ledger.rooms.get(room_id.as_str()) {
        Some(entry) if entry.session_id == session_id => (entry.created_ms, true),
        _ => (u64::from(pickle.creation_time.get()) * 1000, false),
    };
    let mut shared_with = Vec::new();
    for (user, devices) in &pickle.shared_with_set {
        for (device, info) in devices {
            let (message_index, withheld) = match info {
                ShareInfo::Shared(s) => (Some(s.message_index), None),
                ShareInfo::Withheld(code) => (None, Some(code.as_str().to_owned())),
            };
            shared_with.push(SharedWith {
                user_id: user.to_string(),
                device_id: device.to_string(),
                message_index,
                withheld,
            });
        }
    }
    Ok(Some(Outbound {
        session_id,
        created_ms,
        created_precise,
        message_count: pickle.message_count,
        invalidated: pickle.invalidated,
        shared: pickle.shared,
        shared_with,
    }))
}

/// ratchet's own record of outbound sessions, beside the SDK's store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Ledger {
    #[serde(default)]
    pub(crate) rooms: BTreeMap<String, LedgerEntry>,
    /// Per room, the strictest limits seen (see `RoomLimits::effective`).
    #[serde(default)]
    pub(crate) strictest: BTreeMap<String, Strictest>,
    /// The file's text as loaded or last saved: an unchanged ledger is not
    /// rewritten (each write is a synced file replacement, on every send).
    #[serde(skip)]
    on_disk: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LedgerEntry {
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

impl Ledger {
    pub(crate) fn load(path: &Path) -> Ledger {
        // A missing or unreadable ledger only costs precision: the SDK's own
        // creation times (whole seconds) are used instead.
        let text = std::fs::read_to_string(path).ok();
        let mut ledger: Ledger = text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        ledger.on_disk = text;
        ledger
    }

    pub(crate) fn save(&mut self, path: &Path) -> CliResult<()> {
        let text = serde_json::to_string_pretty(self).expect("the ledger always serialises");
        if self.on_disk.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        session::write_secret(path, text.as_bytes()).map_err(crate::context::session_error)?;
        self.on_disk = Some(text);
        Ok(())
    }

    pub(crate) fn record_new(&mut self, room_id: &RoomId, session_id: &str, created_ms: u64) {
        self.rooms.insert(
            room_id.to_string(),
            LedgerEntry { session_id: session_id.to_owned(), created_ms, discarded: None },
        );
    }

    /// ratchet discarded `session_id` (`Forced` or `SettingsChanged`); the
    /// next send reports that reason for its new session.
    pub(crate) fn record_discard(&mut self, room_id: &RoomId, session_id: &str, reason: Rotation) {
        let entry = self.rooms.entry(room_id.to_string()).or_insert_with(|| LedgerEntry {
            session_id: session_id.to_owned(),
            created_ms: 0,
            discarded: None,
        });
        entry.discarded = Some(Discarded { session_id: session_id.to_owned(), reason });
    }

    /// Why ratchet discarded `session_id`, if it did.
    fn discard_reason(&self, room_id: &RoomId, session_id: &str) -> Option<Rotation> {
        let discarded = self.rooms.get(room_id.as_str())?.discarded.as_ref()?;
        (discarded.session_id == session_id).then_some(discarded.reason)
    }
}

/// The state before one encrypted send.
#[derive(Debug)]
pub(crate) struct Prepared {
    before: Option<Outbound>,
    /// Why the next message will need a new session, if ratchet knows.
    planned: Option<Rotation>,
    /// Taken before the send: the earliest the new session can be created.
    started_ms: u64,
}

/// R4/R5 before a send: look at the room's outbound session and discard it
/// when a limit has been reached, so the SDK starts a new one for this
/// message. The decision is ratchet's, against the room's exact values.
pub(crate) async fn prepare_send(room: &Room, limits: &RoomLimits, ledger: &Ledger) -> CliResult<Prepared> {
    let client = room.client();
    let before = outbound(&client, room.room_id(), ledger).await?;
    let now = now_ms();
    let planned = match &before {
        None => Some(Rotation::New),
        Some(s) if s.invalidated => {
            Some(ledger.discard_reason(room.room_id(), &s.session_id).unwrap_or(Rotation::Invalidated))
        }
        Some(s) => {
            let reached = s.limit_reached(limits, now);
            if let Some(reason) = reached {
                tracing::debug!(session_id = %s.session_id, ?reason, "rotation limit reached; discarding");
                room.discard_room_key().await?;
            }
            reached
        }
    };
    Ok(Prepared { before, planned, started_ms: now })
}

/// After a send: was `session_id` a new session, and why? Records a new
/// session in the ledger.
pub(crate) async fn after_send(
    room: &Room,
    prepared: &Prepared,
    session_id: &str,
    ledger: &mut Ledger,
) -> CliResult<Option<Rotation>> {
    let same = prepared.before.as_ref().is_some_and(|b| b.session_id == session_id);
    if same {
        return Ok(None);
    }
    ledger.record_new(room.room_id(), session_id, prepared.started_ms);
    if let Some(reason) = prepared.planned {
        return Ok(Some(reason));
    }
    // The SDK rotated on its own. If someone the old session was shared with
    // is no longer in the room, that is why (it must not read what follows).
    let members: BTreeSet<String> =
        room.members(RoomMemberships::ACTIVE).await?.iter().map(|m| m.user_id().to_string()).collect();
    let left = prepared.before.as_ref().is_some_and(|b| b.shared_with.iter().any(|s| !members.contains(&s.user_id)));
    Ok(Some(if left { Rotation::MemberLeft } else { Rotation::Sdk }))
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
        RoomLimits {
            rotation_period_msgs: msgs,
            rotation_period_msgs_is_default: false,
            rotation_period_ms: ms,
            rotation_period_ms_is_default: false,
            kept_by_r3: false,
        }
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
    fn ledger_roundtrip_and_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("megolm.json");
        let room: &RoomId = "!r:x".try_into().unwrap();
        let mut l = Ledger::default();
        l.record_new(room, "s1", 5);
        l.record_discard(room, "s1", Rotation::Forced);
        l.save(&path).unwrap();
        let back = Ledger::load(&path);
        assert_eq!(back.discard_reason(room, "s1"), Some(Rotation::Forced));
        assert_eq!(back.discard_reason(room, "s2"), None);
        assert_eq!(back.rooms[room.as_str()].created_ms, 5);
        // Garbage on disk is not fatal.
        std::fs::write(&path, "nonsense").unwrap();
        assert!(Ledger::load(&path).rooms.is_empty());
    }

    #[test]
    fn unchanged_ledger_is_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("megolm.json");
        let room: &RoomId = "!r:x".try_into().unwrap();
        let mut l = Ledger::default();
        l.record_new(room, "s1", 5);
        l.save(&path).unwrap();
        let mut back = Ledger::load(&path);
        // Someone else's write after our load stays: we had nothing new.
        std::fs::write(&path, "marker").unwrap();
        back.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "marker");
        // A change is written.
        back.record_new(room, "s2", 6);
        back.save(&path).unwrap();
        assert_eq!(Ledger::load(&path).rooms[room.as_str()].session_id, "s2");
    }
}
