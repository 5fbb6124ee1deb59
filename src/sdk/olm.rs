//! Olm sessions in the SDK's crypto store: listing them per device (with
//! R7's choice and the SDK's), forcing a new one with an `m.dummy` (R9,
//! R10), and noting which session received a message (for R7). The rules
//! themselves are in `e2ee::olm`; R11 is enforced by the callers.
//!
//! Deviations (read in the sources, and checked at runtime by tests/olm.rs):
//! * matrix-sdk 0.18 encrypts with the most recently *created* session
//!   (`DeviceData::get_most_recent_session`), not the one that last received
//!   and decrypted a message (R7; upstream matrix-rust-sdk#3356). ratchet
//!   shows both, and makes its unwedging session the newest.
//! * On an undecryptable Olm message the SDK only acts when it has a session
//!   with the sender and the newest is over an hour old; it then creates a
//!   session but never sends the `m.dummy` it queues (`SessionManager`'s
//!   `outgoing_to_device_requests` is never read by `OlmMachine::
//!   outgoing_requests`). With no session at all it does nothing
//!   (matrix-rust-sdk#3427). See `sdk::recovery`.

use std::collections::{BTreeMap, BTreeSet};

use matrix_sdk::ruma::api::client::keys::claim_keys;
use matrix_sdk::ruma::api::client::to_device::send_event_to_device;
use matrix_sdk::ruma::events::ToDeviceEventType;
use matrix_sdk::ruma::to_device::DeviceIdOrAllDevices;
use matrix_sdk::ruma::{DeviceId, OneTimeKeyAlgorithm, OwnedDeviceId, TransactionId, UserId};
use matrix_sdk::Client;
use matrix_sdk_crypto::store::CryptoStore;
use serde::Serialize;

use matrix_sdk_crypto::CollectStrategy;

use super::machine;
use crate::e2ee::olm::{just_received, r7_choice, sdk_choice, SessionInfo};
use crate::error::{CliError, CliResult};
use crate::profile::olm_ledger::OlmLedger;

/// The sessions with one device, oldest first, and the two choices.
#[derive(Debug, Clone)]
pub(crate) struct DeviceSessions {
    pub(crate) sessions: Vec<SessionInfo>,
    /// The session R7 says to use.
    pub(crate) r7_choice: Option<String>,
    /// The session matrix-sdk will encrypt with (R7's, with the vendored
    /// patch; the published 0.18 took the newest created).
    pub(crate) sdk_choice: Option<String>,
}

pub(crate) async fn device_sessions(
    client: &Client,
    curve25519: &str,
    ledger: &OlmLedger,
) -> CliResult<DeviceSessions> {
    let machine = machine(client).await?;
    // The trait method reads the database (sessions are saved after every
    // use), not the SDK's private cache.
    let stored = CryptoStore::get_sessions(&**machine.store(), curve25519)
        .await
        .map_err(|e| CliError::failed("could not read the Olm sessions").with_source(e))?
        .unwrap_or_default();
    let mut sessions = Vec::new();
    for s in stored.iter() {
        sessions.push(SessionInfo {
            session_id: s.session_id.to_string(),
            created_ms: u64::from(s.creation_time.get()) * 1000,
            last_used_ms: u64::from(s.last_use_time.get()) * 1000,
            last_received_ms: ledger.last_received.get(&*s.session_id).copied(),
            sdk_last_received_ms: s.last_received_time.map(|t| u64::from(t.get()) * 1000),
            created_using_fallback_key: s.created_using_fallback_key,
        });
    }
    let r7_choice = r7_choice(&sessions).map(|s| s.session_id.clone());
    let sdk_choice = sdk_choice(&sessions).map(|s| s.session_id.clone());
    Ok(DeviceSessions { sessions, r7_choice, sdk_choice })
}

/// The outcome of forcing a new session with one device.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NewSession {
    pub(crate) user_id: String,
    pub(crate) device_id: String,
    pub(crate) session_id: String,
    /// Whether the `m.dummy` went out over it.
    pub(crate) dummy_sent: bool,
}

/// R9/R10: claim a one-time key of the device, create a new Olm session from
/// it, and send an empty `m.dummy` encrypted with that new session, so the
/// peer learns of it. The caller enforces R11.
///
/// Do not run beside a sync: this claim bypasses the SDK's claim lock.
/// The caller records the session for R11 now (it exists, whatever
/// happens next), then announces it with [`send_dummy`] (R10).
pub(crate) async fn force_new_session(client: &Client, user: &UserId, device: &DeviceId) -> CliResult<NewSession> {
    let machine = machine(client).await?;
    let crypto_device = machine
        .get_device(user, device, None)
        .await
        .map_err(|e| CliError::failed("could not read the device list").with_source(e))?;
    let Some(crypto_device) = crypto_device else {
        return Err(CliError::failed(format!("unknown device {device} of {user}")).with_hint(format!(
            "`{}` lists the devices ratchet knows",
            crate::ui::hint::ratchet("devices").arg(user.as_str())
        )));
    };
    let curve = crypto_device
        .curve25519_key()
        .ok_or_else(|| CliError::failed(format!("device {device} of {user} has no curve25519 key")))?
        .to_base64();
    let ledger = OlmLedger::default();
    let before: BTreeSet<String> =
        device_sessions(client, &curve, &ledger).await?.sessions.into_iter().map(|s| s.session_id).collect();

    // Our own /keys/claim for this one device: the SDK only claims for
    // devices it has no session with.
    let one_time_keys = BTreeMap::from([(
        user.to_owned(),
        BTreeMap::from([(device.to_owned(), OneTimeKeyAlgorithm::SignedCurve25519)]),
    )]);
    let response = client.send(claim_keys::v3::Request::new(one_time_keys)).await?;
    let claimed = response.one_time_keys.get(user).and_then(|d| d.get(device)).is_some_and(|k| !k.is_empty());
    if !claimed {
        return Err(CliError::failed(format!(
            "the server had no one-time key left for device {device} of {user}; no session was created"
        ))
        .with_hint("the device uploads new keys when it next syncs; try again after that"));
    }
    // Creates an Olm session for every device in the response.
    machine
        .mark_request_as_sent(&TransactionId::new(), &response)
        .await
        .map_err(|e| CliError::failed("could not create the Olm session").with_source(e))?;
    let after = device_sessions(client, &curve, &ledger).await?;
    let new: Vec<&SessionInfo> = after.sessions.iter().filter(|s| !before.contains(&s.session_id)).collect();
    let [new] = new.as_slice() else {
        return Err(CliError::internal(format!("expected one new Olm session, found {}", new.len())));
    };
    if after.sdk_choice.as_deref() != Some(new.session_id.as_str()) {
        // A session just created is the SDK's choice (none received after
        // it); if it is not, the m.dummy would not announce it.
        return Err(CliError::internal("the new Olm session is not the one matrix-sdk will encrypt with"));
    }
    Ok(NewSession {
        user_id: user.to_string(),
        device_id: device.to_string(),
        session_id: new.session_id.clone(),
        dummy_sent: false,
    })
}

/// Sends an empty `m.dummy` to the device, Olm-encrypted with the session
/// matrix-sdk picks (see `e2ee::olm::sdk_choice`: a session just created
/// wins, as none received after it).
pub(crate) async fn send_dummy(client: &Client, user: &UserId, device: &DeviceId) -> CliResult<()> {
    // Encrypt right before sending: encryption advances the session.
    let encrypted = machine(client)
        .await?
        .get_device(user, device, None)
        .await
        .map_err(|e| CliError::failed("could not read the device").with_source(e))?
        .ok_or_else(|| CliError::internal("device vanished"))?
        // The m.dummy only announces a session (R10): it goes to the device
        // whatever its trust, as an unwedging must.
        .encrypt_event_raw("m.dummy", &serde_json::json!({}), CollectStrategy::AllDevices)
        .await
        .map_err(|e| CliError::failed("could not encrypt the m.dummy").with_source(e))?;
    let messages = BTreeMap::from([(
        user.to_owned(),
        BTreeMap::from([(DeviceIdOrAllDevices::DeviceId(device.to_owned()), encrypted.cast_unchecked())]),
    )]);
    client
        .send(send_event_to_device::v3::Request::new_raw(
            ToDeviceEventType::RoomEncrypted,
            TransactionId::new(),
            messages,
        ))
        .await?;
    Ok(())
}

/// The devices of `user` as ratchet knows them (after a sync).
pub(crate) async fn user_device_ids(client: &Client, user: &UserId) -> CliResult<Vec<OwnedDeviceId>> {
    let devices = client.encryption().get_user_devices(user).await?;
    Ok(devices.devices().map(|d| d.device_id().to_owned()).collect())
}

/// The device of `user` whose identity key is `curve25519`.
pub(crate) async fn device_by_curve(
    client: &Client,
    user: &UserId,
    curve25519: &str,
) -> CliResult<Option<OwnedDeviceId>> {
    let devices = client.encryption().get_user_devices(user).await?;
    let found = devices
        .devices()
        .find(|d| d.curve25519_key().map(|k| k.to_base64()).as_deref() == Some(curve25519))
        .map(|d| d.device_id().to_owned());
    Ok(found)
}

/// Remembers which session of each device just received a message: the one
/// whose `last_use_time` is the newest (decryption has just moved it).
pub(crate) async fn note_received(
    client: &Client,
    curve25519: &str,
    ledger: &mut OlmLedger,
    now: u64,
) -> CliResult<Option<String>> {
    let sessions = device_sessions(client, curve25519, ledger).await?;
    let latest = just_received(&sessions.sessions).map(|s| s.session_id.clone());
    if let Some(id) = &latest {
        ledger.last_received.insert(id.clone(), now);
    }
    Ok(latest)
}
