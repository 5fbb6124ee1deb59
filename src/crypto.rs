//! Read-only views into the crypto machine that matrix-sdk does not expose
//! publicly. They go through `Client::olm_machine_for_testing` (feature
//! `testing`), which is the SDK's own `OlmMachine` of this process: no second
//! store handle, no stale cache. Guards are held only inside each function.
//!
//! Nothing here returns secret key material: only ids, counters and times.

use matrix_sdk::ruma::api::client::to_device::send_event_to_device;
use matrix_sdk::ruma::{OwnedUserId, RoomId};
use matrix_sdk::{Client, Room, RoomMemberships};
use matrix_sdk_crypto::{CollectStrategy, EncryptionSettings};

use crate::error::{CliError, CliResult};

/// The room's current outbound Megolm session: its id and the index the
/// *next* message will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundPosition {
    pub(crate) session_id: String,
    pub(crate) next_index: u32,
}

pub(crate) async fn outbound_position(client: &Client, room_id: &RoomId) -> CliResult<Option<OutboundPosition>> {
    let guard = client.olm_machine_for_testing().await;
    let machine = crate::crypto::machine(&guard)?;
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

/// Uploads this device's keys before anything else talks to the server.
///
/// Left to the first `sync_once`, the upload and the `/keys/query` for our
/// own user go out concurrently; when the query wins, the SDK warns that our
/// own device "might have been deleted". Uploading first, in order, avoids
/// that race (matrix-sdk's own `ensure_device_keys_upload` is crate-private).
pub(crate) async fn upload_device_keys(client: &Client) -> CliResult<()> {
    let pending = {
        let guard = client.olm_machine_for_testing().await;
        let machine = crate::crypto::machine(&guard)?;
        machine
            .upload_device_keys()
            .await
            .map_err(|e| CliError::failed("could not prepare the device keys").with_source(e))?
    };
    if let Some((txn_id, request)) = pending {
        let response = client.send(request).await?;
        let guard = client.olm_machine_for_testing().await;
        let machine = crate::crypto::machine(&guard)?;
        machine
            .mark_request_as_sent(&txn_id, &response)
            .await
            .map_err(|e| CliError::failed("could not record the key upload").with_source(e))?;
    }
    Ok(())
}

/// Who gets room keys. Given to the client builder and used by `preshare`,
/// so a pre-shared session goes to exactly the devices a send would reach.
pub(crate) fn recipient_strategy() -> CollectStrategy {
    CollectStrategy::AllDevices
}

/// Creates the room's outbound Megolm session (if it has none, or it was
/// discarded) and shares it with every device in the room now, without
/// sending a room event: matrix-sdk's `Room::preshare_room_key` done in the
/// open (it is private in 0.18). Same steps as the SDK: load the members,
/// claim one-time keys for devices without an Olm session, then share.
/// Returns the number of to-device requests sent.
pub(crate) async fn preshare(room: &Room) -> CliResult<usize> {
    let client = room.client();
    let members: Vec<OwnedUserId> =
        room.members(RoomMemberships::ACTIVE).await?.iter().map(|m| m.user_id().to_owned()).collect();
    let content = room.encryption_settings().ok_or_else(|| CliError::failed("the room is not encrypted"))?;
    let settings =
        EncryptionSettings::from_possibly_redacted(content, room.history_visibility_or_default(), recipient_strategy())
            .ok_or_else(|| CliError::failed("the room's encryption settings cannot be used"))?;

    let claim = {
        let guard = client.olm_machine_for_testing().await;
        let machine = crate::crypto::machine(&guard)?;
        machine.get_missing_sessions(members.iter().map(|u| u.as_ref())).await?
    };
    if let Some((txn_id, request)) = claim {
        let response = client.send(request).await?;
        let guard = client.olm_machine_for_testing().await;
        let machine = crate::crypto::machine(&guard)?;
        machine.mark_request_as_sent(&txn_id, &response).await.map_err(olm_error)?;
    }

    let requests = {
        let guard = client.olm_machine_for_testing().await;
        let machine = crate::crypto::machine(&guard)?;
        machine.share_room_key(room.room_id(), members.iter().map(|u| u.as_ref()), settings).await.map_err(olm_error)?
    };
    for request in &requests {
        let response = client
            .send(send_event_to_device::v3::Request::new_raw(
                request.event_type.clone(),
                request.txn_id.clone(),
                request.messages.clone(),
            ))
            .await?;
        let guard = client.olm_machine_for_testing().await;
        let machine = crate::crypto::machine(&guard)?;
        machine.mark_request_as_sent(&request.txn_id, &response).await.map_err(olm_error)?;
    }
    Ok(requests.len())
}

fn olm_error(e: matrix_sdk::encryption::OlmError) -> CliError {
    CliError::failed("an Olm operation failed").with_source(e)
}

/// R13: asks for a Megolm session again with an `m.room_key_request`
/// (unencrypted to-device, as the spec has it) to every device of the
/// session's sender and of our own user. Returns the request id.
///
/// matrix-sdk sends such requests by itself only to our own devices, and
/// only once one of them is verified; the sender's device answers (with
/// `m.forwarded_room_key`) if it shared the session with us.
pub(crate) async fn request_room_key(
    client: &Client,
    room_id: &RoomId,
    session_id: &str,
    sender: &matrix_sdk::ruma::UserId,
    sender_key: &str,
) -> CliResult<String> {
    use matrix_sdk::ruma::serde::Raw;
    use matrix_sdk::ruma::to_device::DeviceIdOrAllDevices;
    use matrix_sdk::ruma::TransactionId;

    let own_user = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let own_device = client.device_id().ok_or_else(|| CliError::internal("no device id"))?.to_owned();
    let request_id = TransactionId::new().to_string();
    let content = serde_json::json!({
        "action": "request",
        "body": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": room_id,
            "sender_key": sender_key,
            "session_id": session_id,
        },
        "request_id": request_id,
        "requesting_device_id": own_device,
    });
    let raw = Raw::new(&content).map_err(|e| CliError::internal("could not build a key request").with_source(e))?;
    let mut messages = std::collections::BTreeMap::new();
    for user in [sender.to_owned(), own_user] {
        messages.insert(
            user,
            std::collections::BTreeMap::from([(DeviceIdOrAllDevices::AllDevices, raw.clone().cast_unchecked())]),
        );
    }
    client
        .send(send_event_to_device::v3::Request::new_raw("m.room_key_request".into(), TransactionId::new(), messages))
        .await?;
    Ok(request_id)
}

/// The crypto machine behind a guard from `Client::olm_machine_for_testing`
/// (absent only before login, which every caller is past).
pub(crate) fn machine<'a>(
    guard: &'a tokio::sync::RwLockReadGuard<'_, Option<matrix_sdk_crypto::OlmMachine>>,
) -> CliResult<&'a matrix_sdk_crypto::OlmMachine> {
    guard.as_ref().ok_or_else(|| CliError::internal("no crypto machine after login"))
}

/// One incremental sync that returns at once (never long-polls).
pub(crate) async fn sync_now(client: &Client) -> CliResult<matrix_sdk::sync::SyncResponse> {
    Ok(client.sync_once(matrix_sdk::config::SyncSettings::default().timeout(std::time::Duration::ZERO)).await?)
}
