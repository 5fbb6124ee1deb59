//! Keys on the wire: this device's key upload, and R13's room-key requests.
//!
//! Deviation (R13): matrix-sdk sends `m.room_key_request` by itself only to
//! our own devices, and only once one of them is verified; ratchet also asks
//! the session's sender, whose device answers with `m.forwarded_room_key`
//! if it shared the session with us.

use matrix_sdk::ruma::api::client::to_device::send_event_to_device;
use matrix_sdk::ruma::RoomId;
use matrix_sdk::Client;

use super::machine;
use crate::error::{CliError, CliResult};

/// Uploads this device's keys before anything else talks to the server.
///
/// Left to the first `sync_once`, the upload and the `/keys/query` for our
/// own user go out concurrently; when the query wins, the SDK warns that our
/// own device "might have been deleted". Uploading first, in order, avoids
/// that race (matrix-sdk's own `ensure_device_keys_upload` is crate-private).
pub(crate) async fn upload_device_keys(client: &Client) -> CliResult<()> {
    let machine = machine(client).await?;
    let pending = machine
        .upload_device_keys()
        .await
        .map_err(|e| CliError::failed("could not prepare the device keys").with_source(e))?;
    if let Some((txn_id, request)) = pending {
        let response = client.send(request).await?;
        machine
            .mark_request_as_sent(&txn_id, &response)
            .await
            .map_err(|e| CliError::failed("could not record the key upload").with_source(e))?;
    }
    Ok(())
}

/// R13: asks the session's sender for a Megolm session again with an
/// `m.room_key_request` (unencrypted to-device, as the spec has it) to
/// every device of the sender. Our own devices are asked by matrix-sdk
/// itself (it requests a key when it fails to decrypt, records the request
/// and sends it with the next sync), which is what makes it accept the
/// forward. Returns the request id.
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
    for user in [sender.to_owned()].into_iter().filter(|u| *u != own_user) {
        messages.insert(
            user,
            std::collections::BTreeMap::from([(DeviceIdOrAllDevices::AllDevices, raw.clone().cast_unchecked())]),
        );
    }
    if !messages.is_empty() {
        client
            .send(send_event_to_device::v3::Request::new_raw(
                "m.room_key_request".into(),
                TransactionId::new(),
                messages,
            ))
            .await?;
    }
    Ok(request_id)
}
