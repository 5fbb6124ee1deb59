//! What `ratchet sync` does after a sync, beyond printing it: recovery from
//! undecryptable Olm messages (R9–R11, R13) and the Olm bookkeeping for R7.
//!
//! For each to-device message that could not be decrypted, from a device
//! ratchet knows:
//! 1. R11: if ratchet created a session with that device in the past hour,
//!    stop there (record `rate_limited`).
//! 2. R9/R10: otherwise a new Olm session and an `m.dummy` over it. If
//!    matrix-sdk has just created one itself (it does when its newest session
//!    with the device is over an hour old), that session is used and only
//!    the `m.dummy` is sent — the SDK queues one but never sends it.
//! 3. R13: an `m.room_key_request` for each Megolm session of that sender
//!    that is undecryptable in the same sync.
//!
//! Every step is one `recovery` record on stdout.

use std::collections::BTreeSet;

use matrix_sdk::deserialized_responses::{AlgorithmInfo, ProcessedToDeviceEvent};
use matrix_sdk::ruma::{OwnedUserId, RoomId, UserId};
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::Client;
use serde::Serialize;
use serde_json::Value;

use crate::error::CliResult;
use crate::events::{render, Rendered};
use crate::megolm::now_ms;
use crate::olm::{self, OlmLedger};
use crate::output::{Output, Record};

/// One step of a recovery.
#[derive(Debug, Default, Serialize)]
pub(crate) struct RecoveryRecord {
    /// olm_undecryptable, rate_limited, unknown_device, new_olm_session,
    /// dummy_sent, key_request, or failed.
    step: &'static str,
    user_id: String,
    device_id: Option<String>,
    /// The Olm session (new_olm_session, dummy_sent) or Megolm session
    /// (key_request) concerned.
    session_id: Option<String>,
    room_id: Option<String>,
    /// Who created the new Olm session: ratchet or sdk.
    created_by: Option<&'static str>,
    /// rate_limited: milliseconds until R11 allows another session.
    wait_ms: Option<u64>,
    request_id: Option<String>,
    message: Option<String>,
}

impl Record for RecoveryRecord {
    const TYPE: &'static str = "recovery";
    fn human(&self) -> String {
        let who = format!("{} {}", self.user_id, self.device_id.as_deref().unwrap_or("?"));
        match self.step {
            "olm_undecryptable" => format!("recovery: an Olm message from {who} could not be decrypted (R9)"),
            "rate_limited" => format!(
                "recovery: a session with {who} was created less than an hour ago; not creating another (R11, {}s left)",
                self.wait_ms.unwrap_or(0) / 1000
            ),
            "unknown_device" => format!("recovery: the sending device of {} is unknown; cannot recover", self.user_id),
            "new_olm_session" => format!(
                "recovery: new Olm session {} with {who} (created by {})",
                self.session_id.as_deref().unwrap_or("?"),
                self.created_by.unwrap_or("?")
            ),
            "dummy_sent" => format!("recovery: m.dummy sent to {who} over the new session (R10)"),
            "key_request" => format!(
                "recovery: asked {} for Megolm session {} of {} again (R13)",
                self.user_id,
                self.session_id.as_deref().unwrap_or("?"),
                self.room_id.as_deref().unwrap_or("?")
            ),
            _ => format!("recovery failed for {who}: {}", self.message.as_deref().unwrap_or("?")),
        }
    }
}

/// After a sync: note which Olm sessions received messages (R7) and recover
/// from undecryptable ones. `started_ms` is when the sync began.
pub(crate) async fn after_sync(
    client: &Client,
    response: &SyncResponse,
    ledger_path: &std::path::Path,
    started_ms: u64,
    out: &Output,
) -> CliResult<()> {
    let mut ledger = OlmLedger::load(ledger_path);
    let mut changed = false;
    let now = now_ms();

    // R7 bookkeeping: which session each decrypted Olm message came in on.
    let mut received_from = BTreeSet::new();
    for event in &response.to_device {
        if let ProcessedToDeviceEvent::Decrypted { encryption_info, .. } = event {
            if let AlgorithmInfo::OlmV1Curve25519AesSha2 { curve25519_public_key_base64 } =
                &encryption_info.algorithm_info
            {
                received_from.insert(curve25519_public_key_base64.clone());
            }
        }
    }
    for curve in &received_from {
        if olm::note_received(client, curve, &mut ledger, now).await?.is_some() {
            changed = true;
        }
    }

    // The senders whose Olm messages failed, once each.
    let mut failed: Vec<(OwnedUserId, String)> = Vec::new();
    for event in &response.to_device {
        if let ProcessedToDeviceEvent::UnableToDecrypt { encrypted_event, .. } = event {
            let json: Value = encrypted_event.deserialize_as().unwrap_or(Value::Null);
            let (Some(sender), Some(key)) = (json["sender"].as_str(), json["content"]["sender_key"].as_str()) else {
                continue;
            };
            let Ok(sender) = UserId::parse(sender) else { continue };
            if !failed.iter().any(|(u, k)| *u == sender && k == key) {
                failed.push((sender, key.to_owned()));
            }
        }
    }

    for (sender, curve) in failed {
        let device = olm::device_by_curve(client, &sender, &curve).await?;
        let mut record = RecoveryRecord {
            step: "olm_undecryptable",
            user_id: sender.to_string(),
            device_id: device.as_ref().map(|d| d.to_string()),
            ..Default::default()
        };
        out.data(&record)?;
        let Some(device) = device else {
            record.step = "unknown_device";
            out.data(&record)?;
            continue;
        };
        if let Some(wait) = ledger.wait_before_new(&sender, &device, now) {
            record.step = "rate_limited";
            record.wait_ms = Some(wait);
            out.data(&record)?;
            continue;
        }
        // Did the SDK just create a session itself (its own unwedging)?
        let sessions = olm::device_sessions(client, &curve, &ledger).await?;
        let sdk_new = sessions
            .sessions
            .iter()
            .find(|s| Some(&s.session_id) == sessions.sdk_choice.as_ref() && s.created_ms + 1000 >= started_ms)
            .map(|s| s.session_id.clone());
        let result = match sdk_new {
            Some(id) => olm::send_dummy(client, &sender, &device).await.map(|()| (id, "sdk")),
            None => olm::force_new_session(client, &sender, &device).await.map(|n| (n.session_id, "ratchet")),
        };
        match result {
            Ok((session_id, created_by)) => {
                ledger.record_created(&sender, &device, now);
                changed = true;
                record.step = "new_olm_session";
                record.session_id = Some(session_id.clone());
                record.created_by = Some(created_by);
                out.data(&record)?;
                record.step = "dummy_sent";
                record.created_by = None;
                out.data(&record)?;
            }
            Err(e) => {
                record.step = "failed";
                record.message = Some(e.message.clone());
                out.data(&record)?;
                continue;
            }
        }
        // R13: ask again for what this sender's broken session may have
        // carried: its Megolm sessions that are undecryptable right here.
        for (room_id, session_id, sender_key) in undecryptable_sessions(response, &sender) {
            let room_id: &RoomId = match room_id.as_str().try_into() {
                Ok(r) => r,
                Err(_) => continue,
            };
            let request_id =
                crate::crypto::request_room_key(client, room_id, &session_id, &sender, &sender_key).await?;
            ledger.key_requests.insert(session_id.clone(), now_ms());
            changed = true;
            out.data(&RecoveryRecord {
                step: "key_request",
                user_id: sender.to_string(),
                device_id: Some(device.to_string()),
                session_id: Some(session_id),
                room_id: Some(room_id.to_string()),
                request_id: Some(request_id),
                ..Default::default()
            })?;
        }
    }
    if changed {
        ledger.save(ledger_path)?;
    }
    Ok(())
}

/// (room, Megolm session, sender key) of each distinct undecryptable event
/// from `sender` in this sync.
fn undecryptable_sessions(response: &SyncResponse, sender: &UserId) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = Vec::new();
    for (room_id, update) in &response.rooms.joined {
        for event in &update.timeline.events {
            let Rendered::Utd(utd) = render(room_id.as_str(), event, None) else { continue };
            if utd.sender.as_deref() != Some(sender.as_str()) {
                continue;
            }
            let raw: Value = event.raw().deserialize_as().unwrap_or(Value::Null);
            let (Some(session_id), Some(sender_key)) =
                (utd.session_id.clone(), raw["content"]["sender_key"].as_str().map(str::to_owned))
            else {
                continue;
            };
            let entry = (room_id.to_string(), session_id, sender_key);
            if !found.contains(&entry) {
                found.push(entry);
            }
        }
    }
    found
}
