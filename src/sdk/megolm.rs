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
//! claiming and sharing cannot carry a session that already encrypted past
//! `rotation_period_ms`; nothing is written between that check and the
//! encryption (`Batch` journals its intent first). A session made for the
//! message is used for it however long its share took (a slow key claim):
//! it has encrypted nothing, and another share would take as long; its
//! age, counted from before the share, rotates it at the next send.
//!
//! The SDK records a session's creation time in whole seconds; ratchet's
//! ledger (`profile::megolm_ledger`) keeps milliseconds.

use std::collections::BTreeSet;

use matrix_sdk::ruma::api::client::to_device::send_event_to_device;
use matrix_sdk::ruma::events::room::history_visibility::HistoryVisibility;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedUserId, RoomId};
use matrix_sdk::{Client, Room, RoomMemberships};
use matrix_sdk_crypto::olm::{InboundGroupSession, SenderData, ShareInfo};
use matrix_sdk_crypto::EncryptionSettings;

use super::{machine, recipient_strategy};
use crate::e2ee::rotation::{self, Outbound, RoomLimits, Rotation, RotationSettings, SharedWith};
use crate::error::{CliError, CliResult};
use crate::profile::megolm_ledger::MegolmLedger;
use crate::profile::state::ShareRecord;

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

/// Every `m.room.encryption` a sync brought, per room in the order the
/// room had them (R3 at sync time: see [`record_sync_limits`]).
pub(crate) fn sync_settings(
    response: &matrix_sdk::sync::SyncResponse,
) -> Vec<(matrix_sdk::ruma::OwnedRoomId, RotationSettings)> {
    use matrix_sdk::deserialized_responses::TimelineEvent;
    use matrix_sdk::sync::State;
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "type")]
        kind: String,
        state_key: Option<String>,
        content: Option<matrix_sdk::ruma::events::room::encryption::PossiblyRedactedRoomEncryptionEventContent>,
    }
    fn settings<T>(raw: &matrix_sdk::ruma::serde::Raw<T>) -> Option<RotationSettings> {
        // Every event of every sync passes here: its type is read alone
        // (a scan, no allocation), the event parsed only when it is one.
        if raw.get_field::<&str>("type").ok().flatten() != Some("m.room.encryption") {
            return None;
        }
        let ev: Event = raw.deserialize_as_unchecked().ok()?;
        (ev.kind == "m.room.encryption" && ev.state_key.as_deref() == Some("")).then_some(())?;
        ev.content.as_ref().map(RotationSettings::of)
    }
    let mut found = Vec::new();
    for (room_id, update) in &response.rooms.joined {
        let timeline = update.timeline.events.iter().map(TimelineEvent::raw).filter_map(settings);
        let in_room: Vec<RotationSettings> = match &update.state {
            // The state before the timeline, then the timeline's own.
            State::Before(state) => state.iter().filter_map(settings).chain(timeline).collect(),
            // The state after the timeline comes last.
            State::After(state) => timeline.chain(state.iter().filter_map(settings)).collect(),
        };
        found.extend(in_room.into_iter().map(|s| (room_id.clone(), s)));
    }
    found
}

/// R3 at sync time: each `m.room.encryption` a sync brought, folded into
/// the strictest limits seen, so that a looser one arriving before this
/// device's next send is not followed (the room's current settings alone
/// would then be the looser ones). Returns the rooms whose new settings
/// were looser than those seen before.
pub(crate) fn record_sync_limits(
    found: &[(matrix_sdk::ruma::OwnedRoomId, RotationSettings)],
    ledger: &mut MegolmLedger,
) -> Vec<matrix_sdk::ruma::OwnedRoomId> {
    let mut loosened = Vec::new();
    for (room_id, settings) in found {
        let seen = ledger.strictest.get(room_id.as_str()).copied();
        let (limits, strictest) = settings.limits().under_r3(seen);
        if limits.kept_by_r3 && !loosened.contains(room_id) {
            loosened.push(room_id.clone());
        }
        ledger.strictest.insert(room_id.to_string(), strictest);
    }
    loosened
}

/// The room's outbound Megolm session in the crypto store, as the SDK
/// keeps it.
async fn outbound_session(
    client: &Client,
    room_id: &RoomId,
) -> CliResult<Option<matrix_sdk_crypto::olm::OutboundGroupSession>> {
    machine(client)
        .await?
        .store()
        .get_outbound_group_session(room_id)
        .await
        .map_err(|e| CliError::failed("could not read the outbound Megolm session").with_source(e))
}

/// Reads the room's outbound Megolm session from the crypto store.
pub(crate) async fn outbound(client: &Client, room_id: &RoomId, ledger: &MegolmLedger) -> CliResult<Option<Outbound>> {
    let Some(session) = outbound_session(client, room_id).await? else {
        return Ok(None);
    };
    let pickle = session.pickle().await;
    let session_id = session.session_id().to_owned();
    let (created_ms, created_precise) = match ledger.created_ms(room_id, &session_id) {
        Some(ms) => (ms, true),
        None => (u64::from(pickle.creation_time.get()) * 1000, false),
    };
    let shared_with = shared_with(&pickle);
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

/// An outbound session's sharing record, as the SDK keeps it: every device
/// it decided on, given (from an index) or withheld (with a code).
fn shared_with(pickle: &matrix_sdk_crypto::olm::PickledOutboundGroupSession) -> Vec<SharedWith> {
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
    shared_with
}

/// The sharing record of the room's outbound session as it is now, for
/// the profile to keep (`doctor --sent`): its devices, the users it was
/// shared with, and the servers that did not answer.
async fn share_record(
    client: &Client,
    room_id: &RoomId,
    recipients: &[OwnedUserId],
    unreachable: &[String],
) -> CliResult<Option<ShareRecord>> {
    let Some(session) = outbound_session(client, room_id).await? else { return Ok(None) };
    let pickle = session.pickle().await;
    let now = crate::clock::now_ms();
    Ok(Some(ShareRecord {
        room_id: room_id.to_string(),
        session_id: session.session_id().to_owned(),
        members: recipients.iter().map(ToString::to_string).collect(),
        devices: shared_with(&pickle),
        unreachable: unreachable.to_vec(),
        first_ms: now,
        last_ms: now,
    }))
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
    /// For a key from history shared on invite (MSC4268): who shared it.
    pub(crate) shared_by: Option<String>,
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
            shared_by: s.forwarder_data.as_ref().map(|f| f.user_id().to_string()),
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
/// sending a room event: matrix-sdk's `Room::preshare_room_key` and the
/// readiness steps of its send (`ensure_room_encryption_ready`) done in the
/// open (they are private in 0.18), so that a send can encrypt and PUT at
/// once (see [`send_encrypted`]). The same steps as the SDK: the member list
/// loaded once, `/keys/query` for members whose devices are unknown or
/// out of date, one-time keys claimed for devices without an Olm session,
/// the key shared with the members history visibility allows (joined only,
/// under `joined`) — and, as the SDK does, the session discarded when a
/// share fails, since messages in it would be undecryptable for those
/// devices. Member ids are read from the state store, not built into
/// member objects. Returns the number of to-device requests sent, and the
/// servers that could not be asked for one-time keys.
pub(crate) async fn preshare(room: &Room) -> CliResult<Shared> {
    let client = room.client();
    let room_id = room.room_id();
    if !room.are_members_synced() {
        room.sync_members().await?;
    }
    let content = room.encryption_settings().ok_or_else(|| CliError::failed("the room is not encrypted"))?;
    let visibility = room.history_visibility_or_default();
    let active = member_ids(&client, room_id, RoomMemberships::ACTIVE).await?;
    let recipients = if visibility == HistoryVisibility::Joined {
        member_ids(&client, room_id, RoomMemberships::JOIN).await?
    } else {
        active.clone()
    };
    let settings = EncryptionSettings::from_possibly_redacted(content, visibility, recipient_strategy())
        .ok_or_else(|| CliError::failed("the room's encryption settings cannot be used"))?;
    let machine = machine(&client).await?;
    let unanswered = query_unknown_devices(&client, &machine, &active).await?;
    let session_before = outbound_session(&client, room_id).await?.map(|s| s.session_id().to_owned());

    let mut unreachable = Vec::new();
    if let Some((txn_id, request)) = machine.get_missing_sessions(active.iter().map(|u| u.as_ref())).await? {
        let response = client.send(request).await?;
        // A server that did not answer the claim (offline, or federation to
        // it failing): its devices without an Olm session get no room key.
        unreachable.extend(response.failures.keys().cloned());
        machine.mark_request_as_sent(&txn_id, &response).await.map_err(olm_error)?;
    }
    let requests =
        machine.share_room_key(room_id, recipients.iter().map(|u| u.as_ref()), settings).await.map_err(olm_error)?;
    for request in &requests {
        let sent = async {
            let response = client
                .send(send_event_to_device::v3::Request::new_raw(
                    request.event_type.clone(),
                    request.txn_id.clone(),
                    request.messages.clone(),
                ))
                .await?;
            machine.mark_request_as_sent(&request.txn_id, &response).await.map_err(olm_error)
        }
        .await;
        if let Err(e) = sent {
            // Some devices may lack the key: no message may use it.
            if let Err(discard) = machine.discard_room_key(room_id).await {
                tracing::warn!(error = %discard, "could not discard a session whose share failed");
            }
            return Err(e);
        }
    }
    // Recorded when something changed: a new session (even one that went
    // to no other device: its members then are the record), a session
    // given or withheld to more devices (the SDK's record only grows), or
    // a server that did not answer.
    let mut servers = unanswered;
    servers.extend(unreachable.iter().filter(|s| !servers.contains(s)).cloned().collect::<Vec<_>>());
    let session_after = outbound_session(&client, room_id).await?.map(|s| s.session_id().to_owned());
    let record = if requests.is_empty() && servers.is_empty() && session_after == session_before {
        None
    } else {
        share_record(&client, room_id, &recipients, &servers).await?
    };
    Ok(Shared { requests: requests.len(), unreachable, record })
}

/// The room's member ids with `memberships`, from the state store.
pub(crate) async fn member_ids(
    client: &Client,
    room_id: &RoomId,
    memberships: RoomMemberships,
) -> CliResult<Vec<OwnedUserId>> {
    client
        .state_store()
        .get_user_ids(room_id, memberships)
        .await
        .map_err(|e| CliError::failed("could not read the room's members").with_source(e))
}

/// `/keys/query` for the members whose devices this device does not track
/// yet, or whose device list changed since it last asked: the SDK's
/// `query_keys_for_untracked_or_dirty_users`, which its send runs first.
async fn query_unknown_devices(
    client: &Client,
    machine: &matrix_sdk_crypto::OlmMachine,
    members: &[OwnedUserId],
) -> CliResult<Vec<String>> {
    use matrix_sdk::ruma::api::client::keys::get_keys;
    let tracked: std::collections::HashMap<OwnedUserId, bool> = machine
        .store()
        .load_tracked_users()
        .await
        .map_err(|e| CliError::failed("could not read the tracked users").with_source(e))?
        .into_iter()
        .map(|t| (t.user_id, t.dirty))
        .collect();
    let unknown = members.iter().filter(|m| tracked.get(*m).is_none_or(|dirty| *dirty));
    let (txn_id, request) = machine.query_keys_for_users(unknown.map(|u| u.as_ref()));
    if request.device_keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = get_keys::v3::Request::new();
    query.device_keys = request.device_keys;
    let response = client.send(query).await?;
    // Servers whose users' devices could not be fetched (federation).
    let failures = response.failures.keys().cloned().collect();
    machine.mark_request_as_sent(&txn_id, &response).await.map_err(olm_error)?;
    Ok(failures)
}

/// One message encrypted in the room's outbound session and sent: what the
/// SDK's `Room::send` does after its readiness pass, which [`before_send`]
/// already did (a second pass found nothing to do, at the cost of reading
/// members, devices and the session again). The session must be shared,
/// and not expired by the SDK's own clamped limits (the SDK's encryption
/// panics otherwise): then it is used, else an error, never a panic.
pub(crate) async fn send_encrypted(
    room: &Room,
    content: &RoomMessageEventContent,
    txn_id: Option<&str>,
) -> CliResult<SentEncrypted> {
    use matrix_sdk::ruma::api::client::message::send_message_event;
    use matrix_sdk::ruma::events::AnyMessageLikeEventContent;
    use matrix_sdk::ruma::serde::Raw;
    use matrix_sdk::ruma::TransactionId;

    let client = room.client();
    let room_id = room.room_id();
    let machine = machine(&client).await?;
    let session = outbound_session(&client, room_id).await?;
    if !session.as_ref().is_some_and(|s| s.shared() && !s.expired() && !s.invalidated()) {
        return Err(CliError::internal("no shared Megolm session to encrypt with after the key share"));
    }
    let raw: Raw<AnyMessageLikeEventContent> = Raw::new(content)
        .map_err(|e| CliError::internal("could not serialise the message").with_source(e))?
        .cast_unchecked();
    let encrypted = machine
        .encrypt_room_event_raw(room_id, "m.room.message", &raw)
        .await
        .map_err(|e| CliError::from(matrix_sdk::Error::from(e)))?;
    let json: serde_json::Value = encrypted.content.deserialize_as().unwrap_or(serde_json::Value::Null);
    let (session_id, message_index) = crate::events::megolm_position(&serde_json::json!({ "content": json }));
    let txn_id = txn_id.map_or_else(TransactionId::new, |t| t.into());
    let request = send_message_event::v3::Request::new_raw(
        room_id.to_owned(),
        txn_id,
        "m.room.encrypted".into(),
        encrypted.content.cast_unchecked(),
    );
    let response = client.send(request).await?;
    Ok(SentEncrypted { event_id: response.event_id, session_id, message_index })
}

/// What [`send_encrypted`] sent: the event, and the session and index its
/// ciphertext says.
pub(crate) struct SentEncrypted {
    pub(crate) event_id: matrix_sdk::ruma::OwnedEventId,
    pub(crate) session_id: Option<String>,
    pub(crate) message_index: Option<u32>,
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
    /// The session's sharing record after this share, when it sent
    /// something (for the profile to keep: `doctor --sent`).
    pub(crate) record: Option<ShareRecord>,
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
    /// The sharing records of the shares it made, for the profile to keep.
    pub(crate) shares: Vec<ShareRecord>,
}

/// R4/R5 before a send: discard the room's outbound session when a limit
/// has been reached, share the room key (a new session's, or the current
/// one's with devices that lack it), and then check the age once more: the
/// claim and share take time, and R5 says no message after the limit.
/// [`send_encrypted`] then only encrypts and sends.
///
/// `shared_in_batch` is the session this batch (one `send`, one turn of
/// `chat`, one warm request) already shared. No sync happens inside a
/// batch, so who should have the key cannot have changed since: while the
/// session is still that one, it is read without its sharing record and
/// not shared again — the same decision, without reading every member and
/// device per message.
pub(crate) async fn before_send(
    room: &Room,
    limits: &RoomLimits,
    ledger: &MegolmLedger,
    shared_in_batch: Option<&str>,
) -> CliResult<Prepared> {
    let client = room.client();
    let room_id = room.room_id();
    let light = match shared_in_batch {
        Some(session_id) => outbound_in_batch(&client, room_id, ledger, session_id).await?,
        None => None,
    };
    let reuse = light.is_some();
    let before = match light {
        Some(session) => Some(session),
        None => outbound(&client, room_id, ledger).await?,
    };
    let started_ms = crate::clock::now_ms();
    let discarded = before.as_ref().and_then(|s| ledger.discard_reason(room_id, &s.session_id));
    let decision = rotation::before_send(before.as_ref(), limits, discarded, ledger.distrust_before, started_ms);
    if decision.discard {
        tracing::debug!(reason = ?decision.planned, "rotation limit reached; discarding");
        room.discard_room_key().await?;
    } else if reuse {
        return Ok(Prepared {
            before,
            planned: decision.planned,
            started_ms,
            unreachable: Vec::new(),
            shares: Vec::new(),
        });
    }
    // matrix-sdk discards the room key after a full member-list reload,
    // which the share below does when the list is marked incomplete.
    let reload = before.is_some() && !room.are_members_synced();
    let shared = preshare(room).await?;
    let mut unreachable = shared.unreachable;
    let mut shares: Vec<ShareRecord> = shared.record.into_iter().collect();
    let mut planned = decision.planned;
    if planned.is_none() {
        // The session is the one from before: it may have aged past the
        // limit while the key was being shared. One the SDK made during the
        // share (its own rotation) is not checked: it has encrypted nothing,
        // another share would take as long, and its creation time is in
        // whole seconds (it could look up to a second old). Its age counts
        // from `started_ms` at the next send (`after_send` records it).
        let same = |c: &Outbound| before.as_ref().is_some_and(|b| b.session_id == c.session_id);
        if let Some(current) = outbound(&client, room_id, ledger).await?.filter(same) {
            let now = crate::clock::now_ms();
            if let Some(reason) = current.limit_reached(limits, now) {
                tracing::debug!(?reason, "limit reached while sharing; discarding");
                room.discard_room_key().await?;
                // The SDK skips a server that just failed: keep the first list.
                let again = preshare(room).await?;
                unreachable.extend(again.unreachable);
                shares.extend(again.record);
                planned = Some(reason);
            }
        }
    }
    if planned.is_none() && reload {
        planned = Some(Rotation::MemberListReload);
    }
    Ok(Prepared { before, planned, started_ms, unreachable, shares })
}

/// The room's outbound session when it is still `session_id` (shared by
/// this batch), usable, and its creation time is in the ledger: read
/// without pickling it (its sharing record is not needed, see
/// [`before_send`]). An outbound session's message count is its ratchet's
/// index, as it starts at 0 and advances once per message. `None` sends
/// the caller to the full read.
async fn outbound_in_batch(
    client: &Client,
    room_id: &RoomId,
    ledger: &MegolmLedger,
    session_id: &str,
) -> CliResult<Option<Outbound>> {
    let session = outbound_session(client, room_id).await?;
    let Some(session) =
        session.filter(|s| s.session_id() == session_id && s.shared() && !s.invalidated() && !s.expired())
    else {
        return Ok(None);
    };
    let Some(created_ms) = ledger.created_ms(room_id, session_id) else { return Ok(None) };
    Ok(Some(Outbound {
        session_id: session_id.to_owned(),
        created_ms,
        created_precise: true,
        message_count: u64::from(session.message_index().await),
        invalidated: false,
        shared: true,
        shared_with: Vec::new(),
    }))
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
            let members: BTreeSet<String> = member_ids(&room.client(), room.room_id(), RoomMemberships::ACTIVE)
                .await?
                .iter()
                .map(|m| m.to_string())
                .collect();
            before.shared_with.iter().any(|s| !members.contains(&s.user_id))
        }
        _ => false,
    };
    Ok(Some(rotation::why_new(prepared.planned, recipient_left)))
}
