//! Read-only views into the crypto machine that matrix-sdk does not expose
//! publicly. They go through `Client::olm_machine_for_testing` (feature
//! `testing`), which is the SDK's own `OlmMachine` of this process: no second
//! store handle, no stale cache. Guards are held only inside each function.
//!
//! Nothing here returns secret key material: only ids, counters and times.

use matrix_sdk::ruma::RoomId;
use matrix_sdk::Client;

use crate::error::{CliError, CliResult};

/// The room's current outbound Megolm session: its id and the index the
/// *next* message will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundPosition {
    pub(crate) session_id: String,
    pub(crate) next_index: u32,
}

pub(crate) async fn outbound_position(
    client: &Client,
    room_id: &RoomId,
) -> CliResult<Option<OutboundPosition>> {
    let guard = client.olm_machine_for_testing().await;
    let machine = guard
        .as_ref()
        .ok_or_else(|| CliError::internal("no crypto machine after login"))?;
    let session = machine
        .store()
        .get_outbound_group_session(room_id)
        .await
        .map_err(|e| {
            CliError::failed("could not read the outbound Megolm session").with_source(e)
        })?;
    Ok(match session {
        Some(s) => Some(OutboundPosition {
            session_id: s.session_id().to_owned(),
            next_index: s.message_index().await,
        }),
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
        let machine = guard
            .as_ref()
            .ok_or_else(|| CliError::internal("no crypto machine after login"))?;
        machine
            .upload_device_keys()
            .await
            .map_err(|e| CliError::failed("could not prepare the device keys").with_source(e))?
    };
    if let Some((txn_id, request)) = pending {
        let response = client.send(request).await?;
        let guard = client.olm_machine_for_testing().await;
        let machine = guard
            .as_ref()
            .ok_or_else(|| CliError::internal("no crypto machine after login"))?;
        machine
            .mark_request_as_sent(&txn_id, &response)
            .await
            .map_err(|e| CliError::failed("could not record the key upload").with_source(e))?;
    }
    Ok(())
}
