//! What `ratchet sync` does after a sync, beyond printing it: recovery from
//! undecryptable Olm messages (R9–R11, R13), decided by `e2ee::recovery`
//! and carried out here, and the Olm bookkeeping for R7. Every step is one
//! `recovery` record on stdout.
//!
//! This works around matrix-sdk's own unwedging (see `sdk::olm`): the SDK
//! acts only on a session over an hour old, and never sends its `m.dummy`.

use std::collections::BTreeSet;

use matrix_sdk::deserialized_responses::{AlgorithmInfo, ProcessedToDeviceEvent};
use matrix_sdk::ruma::{OwnedUserId, RoomId, UserId};
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::Client;
use serde::Serialize;
use serde_json::Value;

use super::olm;
use crate::clock::now_ms;
use crate::e2ee::recovery::{self as policy, CreatedBy, RecoveryStep, Unwedge};
use crate::error::CliResult;
use crate::events::{render, Rendered};
use crate::profile::olm_ledger::OlmLedger;
use crate::profile::Ledger;
use crate::ui::output::{Output, Record};

/// One step of a recovery.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RecoveryRecord {
    step: RecoveryStep,
    user_id: String,
    device_id: Option<String>,
    /// The Olm session (new_olm_session, dummy_sent) or Megolm session
    /// (key_request) concerned.
    session_id: Option<String>,
    room_id: Option<String>,
    /// Who created the new Olm session: ratchet or sdk.
    created_by: Option<CreatedBy>,
    /// rate_limited: milliseconds until R11 allows another session.
    wait_ms: Option<u64>,
    request_id: Option<String>,
    message: Option<String>,
}

impl RecoveryRecord {
    fn new(step: RecoveryStep, user_id: String) -> RecoveryRecord {
        RecoveryRecord {
            step,
            user_id,
            device_id: None,
            session_id: None,
            room_id: None,
            created_by: None,
            wait_ms: None,
            request_id: None,
            message: None,
        }
    }
}

impl Record for RecoveryRecord {
    const TYPE: &'static str = "recovery";
    fn human(&self) -> String {
        use crate::ui::terminal::inert;
        // Ids taken from the undecryptable event's content: anybody's text.
        let who = format!("{} {}", inert(&self.user_id), inert(self.device_id.as_deref().unwrap_or("?")));
        match self.step {
            RecoveryStep::OlmUndecryptable => format!("recovery: an Olm message from {who} could not be decrypted (R9)"),
            RecoveryStep::RateLimited => format!(
                "recovery: a session with {who} was created less than an hour ago; not creating another (R11, {}s left)",
                self.wait_ms.unwrap_or(0) / 1000
            ),
            RecoveryStep::UnknownDevice => {
                format!("recovery: the sending device of {} is unknown; cannot recover", inert(&self.user_id))
            }
            RecoveryStep::NewOlmSession => format!(
                "recovery: new Olm session {} with {who} (created by {})",
                self.session_id.as_deref().unwrap_or("?"),
                match self.created_by {
                    Some(CreatedBy::Ratchet) => "ratchet",
                    Some(CreatedBy::Sdk) => "sdk",
                    None => "?",
                }
            ),
            RecoveryStep::DummySent => format!("recovery: m.dummy sent to {who} over the new session (R10)"),
            RecoveryStep::KeyRequest => format!(
                "recovery: asked {} for Megolm session {} of {} again (R13)",
                inert(&self.user_id),
                inert(self.session_id.as_deref().unwrap_or("?")),
                inert(self.room_id.as_deref().unwrap_or("?"))
            ),
            RecoveryStep::Failed => format!("recovery failed for {who}: {}", self.message.as_deref().unwrap_or("?")),
        }
    }
}

/// After a sync: note which Olm sessions received messages (R7) and recover
/// from undecryptable ones. `started_ms` is when the sync began.
pub(crate) async fn after_sync(
    client: &Client,
    response: &SyncResponse,
    ledger: &mut Ledger<OlmLedger>,
    started_ms: u64,
    out: &Output,
    failures: &[crate::profile::state::OlmFailure],
) -> CliResult<()> {
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
        olm::note_received(client, curve, ledger, now).await?;
    }

    // The senders whose Olm messages failed, once each: in this sync, and
    // in the syncs of other commands since (kept in the state database:
    // those commands do not recover, so that `doctor` can still see a
    // wedge as it is).
    let mut failed: Vec<(OwnedUserId, String)> = Vec::new();
    for f in failures {
        let Ok(sender) = UserId::parse(f.sender.as_str()) else { continue };
        if !failed.iter().any(|(u, k)| *u == sender && *k == f.sender_key) {
            failed.push((sender, f.sender_key.clone()));
        }
    }

    for (sender, curve) in failed {
        let device = olm::device_by_curve(client, &sender, &curve).await?;
        let mut record = RecoveryRecord::new(RecoveryStep::OlmUndecryptable, sender.to_string());
        record.device_id = device.as_ref().map(|d| d.to_string());
        out.data(&record)?;
        let Some(device) = device else {
            record.step = RecoveryStep::UnknownDevice;
            out.data(&record)?;
            continue;
        };
        let sessions = olm::device_sessions(client, &curve, ledger).await?;
        let result = match policy::unwedge(ledger.last_created(&sender, &device), &sessions.sessions, started_ms, now) {
            Unwedge::RateLimited { wait_ms } => {
                record.step = RecoveryStep::RateLimited;
                record.wait_ms = Some(wait_ms);
                out.data(&record)?;
                continue;
            }
            Unwedge::DummyOverSdkSession { session_id } => {
                olm::send_dummy(client, &sender, &device).await.map(|()| (session_id, CreatedBy::Sdk))
            }
            Unwedge::NewSession => {
                match olm::force_new_session(client, &sender, &device).await {
                    Ok(n) => {
                        // R11's record is kept the moment the session
                        // exists, before the dummy: a failed dummy or a run
                        // cut short must not allow another at once.
                        ledger.record_created(&sender, &device, now);
                        ledger.save()?;
                        olm::send_dummy(client, &sender, &device).await.map(|()| (n.session_id, CreatedBy::Ratchet))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok((session_id, created_by)) => {
                ledger.record_created(&sender, &device, now);
                ledger.save()?;
                record.step = RecoveryStep::NewOlmSession;
                record.session_id = Some(session_id.clone());
                record.created_by = Some(created_by);
                out.data(&record)?;
                record.step = RecoveryStep::DummySent;
                record.created_by = None;
                out.data(&record)?;
            }
            Err(e) => {
                record.step = RecoveryStep::Failed;
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
            let request_id = super::keys::request_room_key(client, room_id, &session_id, &sender, &sender_key).await?;
            ledger.key_requests.insert(session_id.clone(), now_ms());
            let mut request = RecoveryRecord::new(RecoveryStep::KeyRequest, sender.to_string());
            request.device_id = Some(device.to_string());
            request.session_id = Some(session_id);
            request.room_id = Some(room_id.to_string());
            request.request_id = Some(request_id);
            out.data(&request)?;
        }
    }
    ledger.save()?;
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
