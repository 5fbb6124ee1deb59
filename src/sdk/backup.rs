//! Server-side key backup: resuming it in each process, uploading what is
//! pending before a command exits, counting, and downloading.
//!
//! Pitfalls from the sources (shared/trust-layer.md §0, §3):
//! * Backups are resumed in each new process by the SDK's start-up task,
//!   which ratchet parks (it costs requests on every command; see
//!   `sdk::client`). [`resume`] does the same from the store, with no
//!   request: the backup key and version saved by `recovery enable` or
//!   `recovery recover`.
//! * Sending does not trigger an upload, and `wait_for_steady_state` can
//!   return early (matrix-rust-sdk#6529). [`upload_pending`] runs the upload
//!   loop itself, synchronously, until the machine has nothing left: no
//!   request at all when nothing is pending.
//! * There is no public "download everything": [`restore`] walks the rooms.

use matrix_sdk::ruma::api::client::backup::{add_backup_keys, get_latest_backup_info};
use matrix_sdk::ruma::RoomId;
use matrix_sdk::Client;

use super::machine;
use crate::error::{CliError, CliResult};

fn store_error(e: matrix_sdk::encryption::CryptoStoreError) -> CliError {
    CliError::failed("the crypto store failed").with_source(e)
}

/// Turns backups on in this process if this device holds a backup key;
/// returns the backup version. `gone` is a version the server told an
/// earlier command it no longer has (see [`Upload::Gone`]): its key stays
/// in the store, but nothing is uploaded to it.
pub(crate) async fn resume(client: &Client, gone: Option<&str>) -> CliResult<Option<String>> {
    let olm = machine(client).await?;
    let backups = olm.backup_machine();
    // The account's `m.key_backup` says off (another client set it): not
    // on in this process, so that the SDK's own background upload, which
    // runs after every sync and knows nothing of the setting, uploads
    // nothing either. (Turning it off clears the backed-up flags: once on
    // again, every key goes up.)
    if account_setting(client, false).await? == Some(false) {
        if backups.backup_version().await.is_some() {
            backups.disable_backup().await.map_err(store_error)?;
        }
        return Ok(None);
    }
    if let Some(version) = backups.backup_version().await {
        // The crypto machine turns on, at start-up, whatever version its
        // store names (it has no way to forget a version but a new one).
        // One the server said is gone is turned off again (one UPDATE of
        // the store's backed-up flags, which are all clear already).
        if gone == Some(version.as_str()) {
            backups.disable_backup().await.map_err(store_error)?;
            return Ok(None);
        }
        return Ok(Some(version));
    }
    let keys = backups.get_backup_keys().await.map_err(store_error)?;
    let (Some(key), Some(version)) = (keys.decryption_key, keys.backup_version) else { return Ok(None) };
    if gone == Some(version.as_str()) {
        return Ok(None);
    }
    let public = key.megolm_v1_public_key();
    public.set_version(version.clone());
    backups.enable_backup_v1(public).await.map_err(store_error)?;
    Ok(Some(version))
}

/// What [`upload_pending`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upload {
    /// This many room keys went up (0: nothing was pending, or backup is
    /// off here).
    Sent(usize),
    /// The server no longer has the version this device backs up to: it
    /// was deleted (404 `M_NOT_FOUND`), or another device made a new one
    /// (403 `M_WRONG_ROOM_KEYS_VERSION`, naming it). Backup is now off in
    /// this process; the caller remembers `version` so that no later
    /// process turns it back on ([`resume`]).
    Gone { version: String, current: Option<String>, sent: usize },
}

/// Uploads every room key not yet in the backup, in batches, until none is
/// left. No request when nothing is pending or backups are off.
///
/// A backup that is gone from the server turns backup off here (the SDK's
/// own upload loop does the same); ratchet's upload is its own (see the
/// module notes), so it must too. The backup key stays in the store: the
/// old version may still exist (replaced, not deleted) and `recovery
/// recover` can replace it.
///
/// With `honour_setting`, nothing goes up while the account's
/// `m.key_backup` says backup is off ([`account_setting`]).
pub(crate) async fn upload_pending(client: &Client, honour_setting: bool) -> CliResult<Upload> {
    use matrix_sdk::ruma::api::error::ErrorKind;
    let olm = machine(client).await?;
    let backups = olm.backup_machine();
    if !backups.enabled().await {
        return Ok(Upload::Sent(0));
    }
    if honour_setting && account_setting(client, false).await? == Some(false) {
        tracing::debug!("m.key_backup says backup is off for this account: nothing uploaded");
        return Ok(Upload::Sent(0));
    }
    let mut uploaded = 0;
    while let Some((id, request)) = backups.backup().await.map_err(store_error)? {
        let count: usize = request.rooms.values().map(|r| r.sessions.len()).sum();
        let version = request.version.clone();
        crate::process::fail_point("backup_upload")?;
        let response = match client.send(add_backup_keys::v3::Request::new(request.version, request.rooms)).await {
            Ok(response) => response,
            Err(e) => {
                let current = match e.client_api_error_kind() {
                    Some(ErrorKind::NotFound) => None,
                    Some(ErrorKind::WrongRoomKeysVersion(wrong)) => Some(wrong.current_version.clone()),
                    _ => {
                        return Err(
                            CliError::from(e).with_hint("room keys not uploaded now are uploaded by the next command")
                        );
                    }
                };
                tracing::debug!(%version, ?current, "the key backup is gone from the server; backup turned off here");
                backups.disable_backup().await.map_err(store_error)?;
                return Ok(Upload::Gone { version, current, sent: uploaded });
            }
        };
        olm.mark_request_as_sent(&id, &response)
            .await
            .map_err(|e| CliError::failed("could not record the backup upload").with_source(e))?;
        uploaded += count;
    }
    Ok(Upload::Sent(uploaded))
}

/// Turns backup off here without touching the server (after `recovery
/// reset` deleted it); returns the version it was.
pub(crate) async fn forget(client: &Client) -> CliResult<Option<String>> {
    let olm = machine(client).await?;
    let backups = olm.backup_machine();
    let version = match backups.backup_version().await {
        Some(v) => Some(v),
        None => backups.get_backup_keys().await.map_err(store_error)?.backup_version,
    };
    backups.disable_backup().await.map_err(store_error)?;
    Ok(version)
}

/// Room keys this device holds, and how many of them are in the backup.
pub(crate) async fn counts(client: &Client) -> CliResult<(usize, usize)> {
    let olm = machine(client).await?;
    let counts = olm.backup_machine().room_key_counts().await.map_err(store_error)?;
    Ok((counts.total, counts.backed_up))
}

/// The version this device backs up to, if backups are on here.
pub(crate) async fn version_here(client: &Client) -> CliResult<Option<String>> {
    Ok(machine(client).await?.backup_machine().backup_version().await)
}

/// The server's current backup: its version and how many keys it holds.
pub(crate) async fn on_server(client: &Client) -> CliResult<Option<(String, u64)>> {
    match client.send(get_latest_backup_info::v3::Request::new()).await {
        Ok(info) => Ok(Some((info.version, u64::from(info.count)))),
        Err(e) if e.client_api_error_kind() == Some(&matrix_sdk::ruma::api::error::ErrorKind::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Downloads the keys of `rooms` from the backup; returns how many room
/// keys this device holds now that it did not before.
pub(crate) async fn restore(client: &Client, rooms: &[&RoomId]) -> CliResult<usize> {
    let (before, _) = counts(client).await?;
    for room in rooms {
        client.encryption().backups().download_room_keys_for_room(room).await?;
    }
    let (after, _) = counts(client).await?;
    Ok(after.saturating_sub(before))
}

/// Downloads one room key from the backup; false when the backup does not
/// have it (or there is no backup here).
pub(crate) async fn download_one(client: &Client, room: &RoomId, session_id: &str) -> CliResult<bool> {
    if version_here(client).await?.is_none() {
        return Ok(false);
    }
    match client.encryption().backups().download_room_key(room, session_id).await {
        Ok(found) => Ok(found),
        // A session the backup does not hold is a 404.
        Err(e) if e.client_api_error_kind() == Some(&matrix_sdk::ruma::api::error::ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes up a backup key another device of ours sent (`m.secret.send`
/// after a verification: Element sends it with the cross-signing keys),
/// when it opens the server's current backup: saved, and backup turned on
/// here. The SDK does this in its start-up task, which ratchet parks (see
/// `sdk::client`): without this, a device verified by emoji with Element
/// never backed up its keys. Returns the version adopted. No request when
/// nothing waits in the secret inbox.
pub(crate) async fn adopt_received_key(client: &Client) -> CliResult<Option<String>> {
    use matrix_sdk::ruma::events::secret::request::SecretName;
    use matrix_sdk_crypto::store::types::BackupDecryptionKey;
    use matrix_sdk_crypto::types::RoomKeyBackupInfo;
    let olm = machine(client).await?;
    let store = olm.store();
    let secrets = store.get_secrets_from_inbox(&SecretName::RecoveryKey).await.map_err(store_error)?;
    if secrets.is_empty() {
        return Ok(None);
    }
    let mut adopted = None;
    let current = match client.send(get_latest_backup_info::v3::Request::new()).await {
        Ok(info) => Some(info),
        Err(e) if e.client_api_error_kind() == Some(&matrix_sdk::ruma::api::error::ErrorKind::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(current) = current {
        let backups = olm.backup_machine();
        let info: Option<RoomKeyBackupInfo> = current.algorithm.deserialize_as().ok();
        let here = backups.backup_version().await;
        for secret in &secrets {
            let Ok(key) = BackupDecryptionKey::from_base64(secret.as_str()) else { continue };
            if here.as_deref() == Some(current.version.as_str()) {
                break;
            }
            if info.as_ref().is_some_and(|info| key.backup_key_matches(info)) {
                backups.disable_backup().await.map_err(store_error)?;
                let public = key.megolm_v1_public_key();
                public.set_version(current.version.clone());
                backups.save_decryption_key(Some(key), Some(current.version.clone())).await.map_err(store_error)?;
                backups.enable_backup_v1(public).await.map_err(store_error)?;
                adopted = Some(current.version.clone());
                break;
            }
        }
    }
    store.delete_secrets_from_inbox(&SecretName::RecoveryKey).await.map_err(store_error)?;
    Ok(adopted)
}

/// The account's `m.key_backup` setting (spec v1.19: "clients MUST" honour
/// it): whether key backup is on, as any client of the account last set it
/// (null: never set). `Some(false)`: another client turned backup off, and
/// this device uploads nothing until one turns it on again. From the state
/// store (what the last sync brought), or, with `fetch`, the server.
pub(crate) async fn account_setting(client: &Client, fetch: bool) -> CliResult<Option<bool>> {
    use matrix_sdk::ruma::events::GlobalAccountDataEventType;
    let kind = GlobalAccountDataEventType::from("m.key_backup");
    let raw = if fetch {
        client.account().fetch_account_data(kind).await?
    } else {
        client.account().account_data_raw(kind).await?
    };
    let content: Option<serde_json::Value> = raw.and_then(|r| r.deserialize_as().ok());
    Ok(content.and_then(|c| c["enabled"].as_bool()))
}

/// Turns backup on for the account (`m.key_backup` `enabled: true`), as
/// Element does when its user turns it on: `recovery enable`.
pub(crate) async fn set_account_setting(client: &Client, enabled: bool) -> CliResult<()> {
    use matrix_sdk::ruma::events::GlobalAccountDataEventType;
    let content = serde_json::value::to_raw_value(&serde_json::json!({ "enabled": enabled }))
        .map_err(|e| CliError::internal("could not serialise m.key_backup").with_source(e))?;
    client
        .account()
        .set_account_data_raw(
            GlobalAccountDataEventType::from("m.key_backup"),
            matrix_sdk::ruma::serde::Raw::from_json(content),
        )
        .await?;
    Ok(())
}
