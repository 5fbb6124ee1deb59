//! History sharing on invite (MSC4268, spec v1.19): the room keys an
//! inviter hands to the person it invites, as one encrypted file (the
//! "bundle") named by an `m.room_key_bundle` to-device message.
//!
//! Sharing is matrix-sdk's own (`Room::invite_user_by_id` with
//! `enable_share_history_on_invite`): own identity needed, current history
//! visibility `shared` or `world_readable`, the room's keys downloaded from
//! the backup first. ratchet adds what a person wants to know: how many
//! keys went, how many were not shareable (`m.history_not_shared`: sent while
//! the visibility was `joined` or `invited`), and why nothing went.
//!
//! Accepting is matrix-sdk's at join (`Client::finish_join_room`, when the
//! bundle came before the join). A bundle that comes after the join is
//! taken by a background task that ratchet's restore parks (`client.rs`,
//! `SpawnParked`), so [`accept_pending`] does that task's work after every
//! kept sync, in order and under the profile lock: a join in one process,
//! the bundle in the next, still works. The SDK's own window applies: a
//! bundle is taken within a day of the join, only from the inviter.

use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::media::{MediaFormat, MediaRequestParameters};
use matrix_sdk::ruma::events::room::history_visibility::HistoryVisibility;
use matrix_sdk::ruma::events::room::MediaSource;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId, RoomId};
use matrix_sdk::{Client, Room, RoomState};
use matrix_sdk_crypto::store::types::RoomPendingKeyBundleDetails;

use crate::error::{CliError, CliResult};

/// Why an invite shared no history (the SDK's conditions, in its order).
pub(crate) fn not_shareable(room: &Room, has_identity: bool) -> Option<&'static str> {
    if !has_identity {
        return Some("no_identity");
    }
    match room.history_visibility_or_default() {
        HistoryVisibility::Joined => Some("visibility_joined"),
        HistoryVisibility::Invited => Some("visibility_invited"),
        _ => None,
    }
}

/// What a bundle for ROOM holds now: (keys shared, keys marked
/// `m.history_not_shared`). After an invite, this is what the SDK sent.
pub(crate) async fn bundle_counts(client: &Client, room: &RoomId) -> CliResult<(usize, usize)> {
    let machine = super::machine(client).await?;
    let bundle = machine.store().build_room_key_bundle(room).await?;
    Ok((bundle.room_keys.len(), bundle.withheld.len()))
}

/// Room keys of ROOM that came in a bundle: their count and who forwarded
/// them (the first forwarder seen; one inviter per join).
pub(crate) async fn bundled_keys(client: &Client, room: &RoomId) -> CliResult<(usize, Option<String>)> {
    let machine = super::machine(client).await?;
    let sessions = machine.store().get_inbound_group_sessions_by_room_id(room).await?;
    let mut forwarder = None;
    let mut n = 0;
    for s in &sessions {
        if let Some(f) = &s.forwarder_data {
            n += 1;
            forwarder.get_or_insert_with(|| f.user_id().to_string());
        }
    }
    Ok((n, forwarder))
}

/// A bundle taken after a sync.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) room_id: OwnedRoomId,
    pub(crate) inviter: OwnedUserId,
    /// Room keys it added here.
    pub(crate) keys: usize,
}

/// Takes every bundle that came for a room this device joined after an
/// invite, within a day of the join, from the inviter (what the SDK's
/// `BundleReceiverTask` would do). Joins older than a day stop waiting.
pub(crate) async fn accept_pending(client: &Client) -> CliResult<Vec<Accepted>> {
    let machine = super::machine(client).await?;
    let store = machine.store();
    let pending = store.get_all_rooms_pending_key_bundles().await?;
    let mut accepted = Vec::new();
    for RoomPendingKeyBundleDetails { room_id, inviter, invite_accepted_at } in pending {
        let fresh = invite_accepted_at
            .to_system_time()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < std::time::Duration::from_secs(24 * 3600));
        if !fresh {
            store.clear_room_pending_key_bundle(&room_id).await?;
            continue;
        }
        let Some(room) = client.get_room(&room_id).filter(|r| r.state() == RoomState::Joined) else { continue };
        let Some(info) = store.get_received_room_key_bundle_data(&room_id, &inviter).await? else {
            continue; // not come yet: the next sync looks again
        };
        // The forwarder's device must be cross-signed by its owner for the
        // keys to be taken (the crypto store checks): know its keys first.
        let _ = client.encryption().request_user_identity(&info.sender_user).await;
        let before = count(client, &room_id).await?;
        let source = MediaSource::Encrypted(Box::new(info.bundle_data.file.clone()));
        let request = MediaRequestParameters { source, format: MediaFormat::File };
        match client.media().get_media_content(&request, false).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(bundle) => {
                    store.receive_room_key_bundle(&info, bundle, |_, _| {}).await?;
                }
                Err(e) => tracing::warn!(room = %room_id, error = %e, "a room key bundle that does not parse"),
            },
            Err(e) => {
                // Gone from the server: nothing more will come. Anything
                // else (the network) is tried again at the next sync.
                let gone =
                    e.client_api_error_kind().is_some_and(|k| *k == matrix_sdk::ruma::api::error::ErrorKind::NotFound);
                if !gone {
                    return Err(CliError::from(e));
                }
            }
        }
        store.clear_room_pending_key_bundle(&room_id).await?;
        let keys = count(client, room.room_id()).await?.saturating_sub(before);
        accepted.push(Accepted { room_id, inviter, keys });
    }
    Ok(accepted)
}

async fn count(client: &Client, room: &RoomId) -> CliResult<usize> {
    let machine = super::machine(client).await?;
    Ok(machine.store().get_inbound_group_sessions_by_room_id(room).await?.len())
}

/// The ledger (in `state.sqlite3`) of users whose Olm-encrypted to-device
/// messages this device refused for trust: user id → when (ms).
pub(crate) const REFUSED_LEDGER: &str = "refused_to_device";

/// matrix-sdk 0.18 drops, in exclude-insecure mode, an Olm-encrypted
/// to-device message whose sender's identity this device has not fetched
/// yet — a history bundle from an inviter it shares no room with included
/// (matrix-rust-sdk#5770, open). The message is gone (its Olm keys are
/// used up), so it cannot be taken later. What ratchet can do: remember
/// who (so `room join` can say why no history came, and what gets it
/// again), and fetch their identity, so that the next one is taken.
pub(crate) async fn note_refused(
    client: &Client,
    db: &crate::profile::state::StateDb,
    response: &matrix_sdk::sync::SyncResponse,
) -> CliResult<()> {
    use matrix_sdk::deserialized_responses::{ProcessedToDeviceEvent, ToDeviceUnableToDecryptReason};
    let mut senders = std::collections::BTreeSet::new();
    for event in &response.to_device {
        if let ProcessedToDeviceEvent::UnableToDecrypt { encrypted_event, utd_info } = event {
            if matches!(utd_info.reason, ToDeviceUnableToDecryptReason::UnverifiedSenderDevice) {
                if let Ok(Some(sender)) = encrypted_event.get_field::<OwnedUserId>("sender") {
                    senders.insert(sender);
                }
            }
        }
    }
    if senders.is_empty() {
        return Ok(());
    }
    let mut refused: std::collections::BTreeMap<String, u64> = match db.ledger(REFUSED_LEDGER)? {
        crate::profile::state::Loaded::Present(map, _) => map,
        _ => Default::default(),
    };
    let now = crate::clock::now_ms();
    refused.retain(|_, at| now.saturating_sub(*at) < 24 * 3600 * 1000);
    for sender in &senders {
        refused.insert(sender.to_string(), now);
        let _ = client.encryption().request_user_identity(sender).await;
    }
    let plain = serde_json::to_vec(&refused).map_err(|e| CliError::internal(e.to_string()))?;
    db.save_ledger(REFUSED_LEDGER, &plain)
}

/// When this device last refused a to-device message from USER (within a
/// day), per [`note_refused`].
pub(crate) fn refused_from(db: &crate::profile::state::StateDb, user: &str) -> CliResult<Option<u64>> {
    Ok(match db.ledger::<std::collections::BTreeMap<String, u64>>(REFUSED_LEDGER)? {
        crate::profile::state::Loaded::Present(map, _) => map.get(user).copied(),
        _ => None,
    })
}

/// History read as Element reads it: an event refused for trust whose room
/// key this device imported (history shared on invite, the key backup, a
/// key file), its sender's device unknown or unprovable, is decrypted
/// anyway and marked (`insecure_source`, and who shared it), rather than
/// left unreadable.
///
/// Why ratchet does it: matrix-sdk-crypto 0.18 accepts an imported key in
/// exclude-insecure mode only while it knows nothing of the sender's device
/// (a "legacy" session). Once their device keys arrive, the session's
/// sender data is recalculated and, since an imported key can never prove
/// its device (`Device::is_owner_of_session`), it becomes "unknown device"
/// and every message of it is refused: history read yesterday turns
/// unreadable today, and a member's history shared on invite is refused as
/// soon as this device meets them. Events whose device is known to be
/// unsigned by its owner, or from an identity you verified that changed,
/// or whose sender does not own the key, stay refused (MSC4153).
pub(crate) async fn read_as_history(room: &Room, event: TimelineEvent) -> TimelineEvent {
    use matrix_sdk::deserialized_responses::{TimelineEventKind, UnableToDecryptReason, VerificationLevel};
    let TimelineEventKind::UnableToDecrypt { event: raw, utd_info } = &event.kind else { return event };
    if !matches!(utd_info.reason, UnableToDecryptReason::SenderIdentityNotTrusted(VerificationLevel::None(_))) {
        return event;
    }
    let Some(session_id) = utd_info.session_id.as_deref() else { return event };
    let Ok(machine) = super::machine(&room.client()).await else { return event };
    let imported = matches!(
        machine.store().get_inbound_group_session(room.room_id(), session_id).await,
        Ok(Some(s)) if s.has_been_imported()
    );
    if !imported {
        return event;
    }
    let lenient = matrix_sdk_crypto::DecryptionSettings {
        sender_device_trust_requirement: matrix_sdk_crypto::TrustRequirement::Untrusted,
    };
    match machine.decrypt_room_event(raw.cast_ref_unchecked(), room.room_id(), &lenient).await {
        Ok(decrypted) => TimelineEvent::from_decrypted(decrypted, None),
        Err(e) => {
            tracing::debug!(error = %e, "an imported key's event still does not decrypt");
            event
        }
    }
}
