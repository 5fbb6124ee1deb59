//! Interactive verification (SAS, emoji) driven from one process: a request
//! made or accepted, the emoji shown, a yes or no, and the outcome.
//!
//! All verification state lives in the SDK's memory (shared/trust-layer.md
//! §4), so one command runs the whole flow, syncing in a loop (short
//! long-polls) from the request to `Done` or `Cancelled`: the to-device
//! messages of the flow only move while it syncs. Pitfalls handled here:
//! * the responder must know the requester's device before the request
//!   arrives (it is dropped otherwise): the caller asks the server for the
//!   other user's devices before waiting;
//! * after `Done`, one more sync sends what the SDK queued at the end (the
//!   signature upload of our own new device, `m.key.verification.done`);
//! * every response of the loop is kept for `ratchet sync` (`KeepSync`):
//!   messages that arrive during a verification are not lost to it;
//! * after the emoji appear, the SDK cancels a flow that sees no event for
//!   60 s: the answer is read concurrently with the sync loop.

use std::time::{Duration, Instant};

use matrix_sdk::config::SyncSettings;
use matrix_sdk::encryption::verification::{SasVerification, VerificationRequest, VerificationRequestState};
use matrix_sdk::ruma::{OwnedUserId, UserId};
use matrix_sdk::Client;
use serde_json::Value;
use tokio::sync::oneshot;

use super::KeepSync;

use crate::error::{CliError, CliResult};

/// The seven emoji (and the decimals) both sides must compare.
#[derive(Debug, Clone)]
pub(crate) struct ShortAuth {
    pub(crate) flow_id: String,
    pub(crate) other_user: String,
    pub(crate) other_device: String,
    /// The other device's display name ("Element Desktop"), if it has one.
    pub(crate) other_device_name: Option<String>,
    /// (symbol, name) pairs.
    pub(crate) emoji: Vec<(String, String)>,
    pub(crate) decimals: Option<(u16, u16, u16)>,
}

/// The end of a successful flow.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) flow_id: String,
    pub(crate) other_user: String,
    pub(crate) other_device: String,
}

/// How the person answers "do the emoji match?": `show` is called once
/// with the emoji and returns a channel that yields the answer.
pub(crate) trait Confirm {
    fn show(&mut self, sas: &ShortAuth) -> CliResult<oneshot::Receiver<bool>>;
}

/// Waits for an incoming request (from `from`, if given) and accepts it:
/// a to-device request (a device verification), or one sent as a message
/// in a direct chat (a user verification: `verify USER`). A direct-chat
/// invite from `from` (another user) is joined, so that such a request can
/// be seen; without `from` no room is joined.
pub(crate) async fn accept_incoming(
    client: &Client,
    from: Option<&UserId>,
    deadline: Instant,
    keep: &dyn KeepSync,
) -> CliResult<VerificationRequest> {
    loop {
        if Instant::now() >= deadline {
            return Err(CliError::failed("no verification request arrived in time"));
        }
        let response = sync(client, keep).await?;
        let mut candidates: Vec<(OwnedUserId, String)> = Vec::new();
        for event in &response.to_device {
            let json: Value = event.to_raw().deserialize_as().unwrap_or(Value::Null);
            if json["type"] == "m.key.verification.request" {
                candidates.extend(sender_and(&json, json["content"]["transaction_id"].as_str()));
            }
        }
        for update in response.rooms.joined.values() {
            for event in &update.timeline.events {
                // The decrypted event, when it was encrypted.
                let json: Value = event.raw().deserialize_as().unwrap_or(Value::Null);
                if json["content"]["msgtype"] == "m.key.verification.request" {
                    candidates.extend(sender_and(&json, json["event_id"].as_str()));
                }
            }
        }
        for (sender, flow_id) in candidates {
            if from.is_some_and(|f| f != sender) {
                continue;
            }
            if let Some(request) = client.encryption().get_verification_request(&sender, &flow_id).await {
                request.accept().await?;
                return Ok(request);
            }
        }
        // A user verification comes in a direct chat: join the one `from`
        // invited us to (not every room they invited us to; never for our
        // own devices, whose requests come to-device).
        if let Some(from) = from.filter(|f| Some(*f) != client.user_id()) {
            for room in client.invited_rooms() {
                let invited_by =
                    room.invite_details().await.ok().and_then(|d| d.inviter).map(|m| m.user_id().to_owned());
                if invited_by.as_deref() == Some(from) && room.is_direct().await.unwrap_or(false) {
                    tracing::debug!(room_id = %room.room_id(), "joining the direct chat of a verification");
                    room.join().await?;
                }
            }
        }
    }
}

fn sender_and(json: &Value, flow_id: Option<&str>) -> Option<(OwnedUserId, String)> {
    let sender = OwnedUserId::try_from(json["sender"].as_str()?).ok()?;
    Some((sender, flow_id?.to_owned()))
}

/// Runs a request (ours or accepted) to its end: SAS started by the side
/// that made the request, the emoji shown, the answer applied.
pub(crate) async fn run(
    client: &Client,
    request: VerificationRequest,
    confirm: &mut dyn Confirm,
    deadline: Instant,
    keep: &dyn KeepSync,
) -> CliResult<Verified> {
    let mut sas: Option<SasVerification> = None;
    let mut answer: Option<oneshot::Receiver<bool>> = None;
    let mut answered = false;
    let mut mismatched = false;
    loop {
        if let Some(info) = request.cancel_info() {
            return Err(cancelled(&info, mismatched));
        }
        if sas.is_none() {
            sas = match request.state() {
                VerificationRequestState::Ready { .. } if request.we_started() => request.start_sas().await?,
                VerificationRequestState::Transitioned { verification, .. } => {
                    let found = verification.sas();
                    if let Some(s) = &found {
                        if !s.we_started() {
                            s.accept().await?;
                        }
                    }
                    found
                }
                _ => None,
            };
        }
        if let Some(s) = &sas {
            if let Some(info) = s.cancel_info() {
                return Err(cancelled(&info, mismatched));
            }
            if s.is_done() {
                // What the SDK queued on completion goes out with this sync.
                sync(client, keep).await?;
                return Ok(Verified {
                    flow_id: request.flow_id().to_owned(),
                    other_user: s.other_user_id().to_string(),
                    other_device: s.other_device().device_id().to_string(),
                });
            }
            if answer.is_none() {
                if let Some(emoji) = s.emoji() {
                    let shown = ShortAuth {
                        flow_id: request.flow_id().to_owned(),
                        other_user: s.other_user_id().to_string(),
                        other_device: s.other_device().device_id().to_string(),
                        other_device_name: s.other_device().display_name().map(str::to_owned),
                        emoji: emoji.iter().map(|e| (e.symbol.to_owned(), e.description.to_owned())).collect(),
                        decimals: s.decimals(),
                    };
                    answer = Some(confirm.show(&shown)?);
                }
            }
            if !answered {
                if let Some(rx) = &mut answer {
                    match rx.try_recv() {
                        Ok(true) => {
                            s.confirm().await?;
                            answered = true;
                        }
                        // A "no", or no answer at all (stdin closed).
                        Ok(false) | Err(oneshot::error::TryRecvError::Closed) => {
                            s.mismatch().await?;
                            mismatched = true;
                            answered = true;
                        }
                        Err(oneshot::error::TryRecvError::Empty) => {}
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            if let Some(s) = &sas {
                let _ = s.cancel().await;
            } else {
                let _ = request.cancel().await;
            }
            let _ = sync(client, keep).await;
            return Err(CliError::failed("the verification timed out; it was cancelled")
                .with_hint("both sides must run at the same time; raise --wait if a person is comparing"));
        }
        sync(client, keep).await?;
    }
}

/// One short long-poll, its events kept for `ratchet sync`.
async fn sync(client: &Client, keep: &dyn KeepSync) -> CliResult<matrix_sdk::sync::SyncResponse> {
    let response = client.sync_once(poll()).await?;
    keep.keep(client, &response).await?;
    Ok(response)
}

fn cancelled(info: &matrix_sdk::encryption::verification::CancelInfo, mismatched: bool) -> CliError {
    if mismatched || info.cancel_code().as_str() == "m.mismatched_sas" {
        return CliError::failed("the emoji did not match; the verification was cancelled on both sides")
            .with_hint("nothing was verified; if this was not a typo, someone may be intercepting");
    }
    let who = if info.cancelled_by_us() { "this side" } else { "the other side" };
    CliError::failed(format!("{who} cancelled the verification: {} ({})", info.reason(), info.cancel_code()))
}

/// A short long-poll: returns at once when there is something, else after
/// a second, so the loop notices answers and deadlines.
fn poll() -> SyncSettings {
    SyncSettings::default().timeout(Duration::from_secs(1))
}
