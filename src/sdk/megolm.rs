//! Megolm sessions in the SDK's crypto store: the room's outbound session
//! (read without its secrets), its inbound sessions, pre-sharing a room key,
//! and R4/R5 around a send — carried out here, decided in `e2ee::rotation`.
//!
//! Deviation (R5): matrix-sdk-crypto 0.18 treats any `rotation_period_ms`
//! below one hour as one hour and clamps `rotation_period_msgs` to
//! 1..=10000. So before every encrypted send ratchet compares the stored
//! outbound session against the room's limits and discards it
//! (`Room::discard_room_key`, persisted) once either is reached; the SDK
//! then creates and shares a new one as part of the send. The room key is
//! shared *before* the last check (see [`before_send`]), so the time spent
//! claiming and sharing cannot carry a message past `rotation_period_ms`.
//!
//! The SDK records a session's creation time in whole seconds; ratchet's
//! ledger (`profile::megolm_ledger`) keeps milliseconds.

use std::collections::BTreeSet;

use matrix_sdk::ruma::api::client::to_device::send_event_to_device;
use matrix_sdk::ruma::{OwnedUserId, RoomId};
use matrix_sdk::{Client, Room, RoomMemberships};
use matrix_sdk_crypto::olm::{InboundGroupSession, SenderData, ShareInfo};
use matrix_sdk_crypto::EncryptionSettings;

use super::{machine, recipient_strategy};
use crate::e2ee::rotation::{self, Outbound, RoomLimits, Rotation, RotationSettings, SharedWith};
use crate::error::{CliError, CliResult};
use crate::profile::megolm_ledger::MegolmLedger;

/// The room's current rotation settings as its `m.room.encryption` says
/// them; `None` when the room is not encrypted.
pub(crate) fn room_settings(room: &Room) -> Option<RotationSettings> {
    room.encryption_settings().map(|c| RotationSettings::of(&c))
}

/// The limits ratchet applies in the room: its current settings, never
/// looser than the strictest recorded in the ledger (R3). Read-only: the
/// caller records the new strictest with [`record_limits`] if it may write.
pub(crate) fn room_limits(room: &Room, ledger: &MegolmLedger) -> Option<RoomLimits> {
    let seen = ledger.strictest.get(room.room_id().as_str()).copied();
    room_settings(room).map(|s| s.limits().under_r3(seen).0)
}

/// As [`room_limits`], and records what is now the strictest seen.
pub(crate) fn record_limits(room: &Room, ledger: &mut MegolmLedger) -> Option<RoomLimits> {
    let seen = ledger.strictest.get(room.room_id().as_str()).copied();
    let (limits, strictest) = room_settings(room)?.limits().under_r3(seen);
    ledger.strictest.insert(room.room_id().to_string(), strictest);
    Some(limits)
}

/// Reads the room's outbound Megolm session from the crypto store.
pub(crate) async fn outbound(client: &Client, room_id: &RoomId, ledger: &MegolmLedger) -> CliResult<Option<Outbound>> {
    let machine = machine(client).await?;
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
    let (created_ms, created_precise) = match ledger.created_ms(room_id, &session_id) {
        Some(ms) => (ms, true),
        None => (u64::from(pickle.creation_time.get()) * 1000, false),
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

/// The room's current outbound Megolm session: its id and the index the
/// *next* message will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundPosition {
    pub(crate) session_id: String,
    pub(crate) next_index: u32,
}

pub(crate) async fn outbound_position(client: &Client, room_id: &RoomId) -> CliResult<Option<OutboundPosition>> {
    let machine = machine(client).await?;
    let session = machine
        .store()
        .get_outbound_group_session(room_id)
        .await
        .map_err(|e| CliError::failed("could not read the outbound Megolm session").with_source(e))?;
    Ok(match session {
        Some(s) => {
            Some(OutboundPosition { session_id: s.session_id().to_owned(), next_index: s.message_index().await })
        }
        None => None,
    })
}

/// An inbound Megolm session this device holds, without its key.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    pub(crate) session_id: String,
    pub(crate) sender_key: String,
    pub(crate) sender: Option<String>,
    pub(crate) sender_device: Option<String>,
    pub(crate) first_known_index: u32,
    pub(crate) imported: bool,
}

impl Inbound {
    fn of(s: &InboundGroupSession) -> Inbound {
        let (sender, sender_device) = match &s.sender_data {
            SenderData::DeviceInfo { device_keys, .. } => {
                (Some(device_keys.user_id.to_string()), Some(device_keys.device_id.to_string()))
            }
            SenderData::VerificationViolation(k) | SenderData::SenderUnverified(k) | SenderData::SenderVerified(k) => {
                (Some(k.user_id.to_string()), k.device_id.as_ref().map(|d| d.to_string()))
            }
            SenderData::UnknownDevice { .. } => (None, None),
        };
        Inbound {
            session_id: s.session_id().to_owned(),
            sender_key: s.sender_key().to_base64(),
            sender,
            sender_device,
            first_known_index: s.first_known_index(),
            imported: s.has_been_imported(),
        }
    }
}

/// Every inbound Megolm session this device holds for the room.
pub(crate) async fn inbound_sessions(client: &Client, room_id: &RoomId) -> CliResult<Vec<Inbound>> {
    let sessions = machine(client)
        .await?
        .store()
        .get_inbound_group_sessions_by_room_id(room_id)
        .await
        .map_err(|e| CliError::failed("could not read the inbound Megolm sessions").with_source(e))?;
    Ok(sessions.iter().map(Inbound::of).collect())
}

/// One inbound Megolm session of the room, if this device holds it.
pub(crate) async fn inbound_session(client: &Client, room_id: &RoomId, session_id: &str) -> CliResult<Option<Inbound>> {
    let session = machine(client)
        .await?
        .store()
        .get_inbound_group_session(room_id, session_id)
        .await
        .map_err(|e| CliError::failed("could not read the inbound Megolm session").with_source(e))?;
    Ok(session.as_ref().map(Inbound::of))
}

/// Creates the room's outbound Megolm session (if it has none, or it was
/// discarded) and shares it with every device in the room now, without
/// sending a room event: matrix-sdk's `Room::preshare_room_key` done in the
/// open (it is private in 0.18). Same steps as the SDK: load the members,
/// claim one-time keys for devices without an Olm session, then share.
/// Returns the number of to-device requests sent, and the servers that
/// could not be asked for one-time keys.
pub(crate) async fn preshare(room: &Room) -> CliResult<Shared> {
    let client = room.client();
    let members: Vec<OwnedUserId> =
        room.members(RoomMemberships::ACTIVE).await?.iter().map(|m| m.user_id().to_owned()).collect();
    let content = room.encryption_settings().ok_or_else(|| CliError::failed("the room is not encrypted"))?;
    let settings =
        EncryptionSettings::from_possibly_redacted(content, room.history_visibility_or_default(), recipient_strategy())
            .ok_or_else(|| CliError::failed("the room's encryption settings cannot be used"))?;
    let machine = machine(&client).await?;

    let mut unreachable = Vec::new();
    if let Some((txn_id, request)) = machine.get_missing_sessions(members.iter().map(|u| u.as_ref())).await? {
        let response = client.send(request).await?;
        // A server that did not answer the claim (offline, or federation to
        // it failing): its devices without an Olm session get no room key.
        unreachable.extend(response.failures.keys().cloned());
        machine.mark_request_as_sent(&txn_id, &response).await.map_err(olm_error)?;
    }
    let requests = machine
        .share_room_key(room.room_id(), members.iter().map(|u| u.as_ref()), settings)
        .await
        .map_err(olm_error)?;
    for request in &requests {
        let response = client
            .send(send_event_to_device::v3::Request::new_raw(
                request.event_type.clone(),
                request.txn_id.clone(),
                request.messages.clone(),
            ))
            .await?;
        machine.mark_request_as_sent(&request.txn_id, &response).await.map_err(olm_error)?;
    }
    Ok(Shared { requests: requests.len(), unreachable })
}

/// What one key share did.
pub(crate) struct Shared {
    /// To-device requests sent.
    pub(crate) requests: usize,
    /// Servers whose one-time keys could not be claimed (the claim's
    /// `failures`): their devices that had no Olm session with this one did
    /// not get the room key (complement-crypto's
    /// TestNewUserCannotGetKeysForOfflineServer; examples/qa/offline-server.sh).
    pub(crate) unreachable: Vec<String>,
}

/// An Olm error from sharing a room key, classified like the SDK's own
/// (a recipient problem under MSC4153 says so).
fn olm_error(e: matrix_sdk::encryption::OlmError) -> CliError {
    CliError::from(matrix_sdk::Error::from(e))
}

/// The state before one encrypted send.
#[derive(Debug)]
pub(crate) struct Prepared {
    before: Option<Outbound>,
    /// Why the next message will need a new session, if ratchet knows.
    planned: Option<Rotation>,
    /// Taken before the send: the earliest the new session can be created.
    started_ms: u64,
    /// Servers whose devices may have missed the room key (see `Shared`).
    pub(crate) unreachable: Vec<String>,
}

/// R4/R5 before a send: discard the room's outbound session when a limit
/// has been reached, share the room key (a new session's, or the current
/// one's with devices that lack it), and then check the age once more: the
/// claim and share take time, and R5 says no message after the limit. The
/// SDK's own send then only encrypts.
pub(crate) async fn before_send(room: &Room, limits: &RoomLimits, ledger: &MegolmLedger) -> CliResult<Prepared> {
    let client = room.client();
    let room_id = room.room_id();
    let before = outbound(&client, room_id, ledger).await?;
    let started_ms = crate::clock::now_ms();
    let discarded = before.as_ref().and_then(|s| ledger.discard_reason(room_id, &s.session_id));
    let decision = rotation::before_send(before.as_ref(), limits, discarded, ledger.distrust_before, started_ms);
    if decision.discard {
        tracing::debug!(reason = ?decision.planned, "rotation limit reached; discarding");
        room.discard_room_key().await?;
    }
    let mut unreachable = preshare(room).await?.unreachable;
    let mut planned = decision.planned;
    if planned.is_none() {
        // The session is the one from before: it may have aged past the
        // limit while the key was being shared.
        if let Some(current) = outbound(&client, room_id, ledger).await? {
            let now = crate::clock::now_ms();
            if let Some(reason) = current.limit_reached(limits, now) {
                tracing::debug!(?reason, "limit reached while sharing; discarding");
                room.discard_room_key().await?;
                // The SDK skips a server that just failed: keep the first list.
                unreachable.extend(preshare(room).await?.unreachable);
                planned = Some(reason);
            }
        }
    }
    Ok(Prepared { before, planned, started_ms, unreachable })
}

/// After a send: was `session_id` a new session, and why? Records a new
/// session in the ledger.
pub(crate) async fn after_send(
    room: &Room,
    prepared: &Prepared,
    session_id: &str,
    ledger: &mut MegolmLedger,
) -> CliResult<Option<Rotation>> {
    let same = prepared.before.as_ref().is_some_and(|b| b.session_id == session_id);
    if same {
        return Ok(None);
    }
    ledger.record_new(room.room_id(), session_id, prepared.started_ms);
    let recipient_left = match (&prepared.planned, &prepared.before) {
        (None, Some(before)) => {
            let members: BTreeSet<String> =
                room.members(RoomMemberships::ACTIVE).await?.iter().map(|m| m.user_id().to_string()).collect();
            before.shared_with.iter().any(|s| !members.contains(&s.user_id))
        }
        _ => false,
    };
    Ok(Some(rotation::why_new(prepared.planned, recipient_left)))
}
