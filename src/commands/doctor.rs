//! `ratchet doctor`: why each undecryptable event in a room cannot be
//! decrypted, and the command that would fix (or reproduce) it.

use clap::Args;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomOrAliasId, UserId};
use serde::Serialize;
use tracing::instrument;

use crate::clock::format_ts;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::events::{recent_history, render, HistoryEvent, Rendered, UtdRecord};
use crate::profile::olm_ledger::OlmLedger;
use crate::rooms;
use crate::sdk::{megolm, olm};
use crate::ui::output::Record;

/// Explain why events cannot be decrypted, and what would fix it.
///
/// For each undecryptable event in recent history (or just --event), looks
/// at what this device knows: does it hold the Megolm session, and from
/// which index; was the key withheld, and why; is the sending device known;
/// is there an Olm session with it (room keys travel over Olm); was a key
/// request already sent. Then names the likely cause, the ratchet command
/// that would fix it, and the one that reproduces it on purpose.
///
/// Exit 0 when nothing is undecryptable, 3 otherwise.
///
/// Examples:
///
///   ratchet doctor '!room:example.org'
///   ratchet --json doctor '!room:example.org' --event '$eventid' | jq -r .cause
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct DoctorArgs {
    /// Room id (!…) or alias (#…:server)
    #[arg(value_parser = rooms::parse_room)]
    room: OwnedRoomOrAliasId,
    /// Only this event
    #[arg(long)]
    event: Option<OwnedEventId>,
    /// How many recent events to examine (1–1000)
    #[arg(long, short = 'n', default_value = "50", value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DiagnosisRecord {
    room_id: String,
    event_id: Option<String>,
    sender: Option<String>,
    sender_device: Option<String>,
    session_id: Option<String>,
    message_index: Option<u32>,
    /// The SDK's reason (see `utd`).
    reason: String,
    withheld_code: Option<String>,
    /// Whether this device holds the Megolm session, and from which index.
    session_held: bool,
    first_known_index: Option<u32>,
    /// known, deleted or unknown.
    sender_device_state: &'static str,
    /// Olm sessions with the sending device (room keys travel over them).
    olm_sessions_with_sender: Option<usize>,
    /// When ratchet last sent a key request for this session.
    key_requested_ms: Option<u64>,
    /// A stable name for the cause (see README).
    cause: &'static str,
    explanation: String,
    /// Commands that would fix it, in order.
    fix: Vec<String>,
    /// A command that makes this failure happen on purpose.
    reproduce: Option<String>,
}

impl Record for DiagnosisRecord {
    const TYPE: &'static str = "diagnosis";
    fn human(&self) -> String {
        let mut s = format!(
            "{}  from {} ({})\n  session {} index {}: {}\n  cause: {}",
            self.event_id.as_deref().unwrap_or("?"),
            self.sender.as_deref().unwrap_or("?"),
            self.sender_device.as_deref().unwrap_or("?"),
            self.session_id.as_deref().unwrap_or("?"),
            self.message_index.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
            self.reason,
            self.explanation
        );
        if let Some(ms) = self.key_requested_ms {
            s.push_str(&format!("\n  a key request was sent at {}", format_ts(ms)));
        }
        for f in &self.fix {
            s.push_str(&format!("\n  fix:       {f}"));
        }
        if let Some(r) = &self.reproduce {
            s.push_str(&format!("\n  reproduce: {r}"));
        }
        s
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_doctor(ctx: &mut CommandContext, args: &DoctorArgs) -> CliResult {
    let client = ctx.client().await?;
    crate::sdk::sync_now(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let ledger = ctx.profile.olm_ledger();
    let limit = if args.event.is_some() { 1000 } else { args.limit };

    let mut found = 0;
    let mut seen_event = false;
    for HistoryEvent { original, event } in recent_history(&room, limit).await? {
        if let Some(wanted) = &args.event {
            if original["event_id"].as_str() != Some(wanted.as_str()) {
                continue;
            }
            seen_event = true;
        }
        let Rendered::Utd(utd) = render(room.room_id().as_str(), &event, Some(&original)) else { continue };
        found += 1;
        let sender_key = original["content"]["sender_key"].as_str().map(str::to_owned);
        let record = diagnose(&room, &ledger, &utd, sender_key.as_deref()).await?;
        ctx.out.data(&record)?;
    }
    if let Some(wanted) = &args.event {
        if !seen_event {
            return Err(CliError::failed(format!("{wanted} is not among the last 1000 events of {}", args.room)));
        }
    }
    if found == 0 {
        ctx.out.status("Nothing undecryptable: every encrypted event decrypts here.");
        return Ok(());
    }
    Err(CliError::new(ErrorKind::Partial, format!("{found} undecryptable event(s); see the fixes above")))
}

async fn diagnose(
    room: &matrix_sdk::Room,
    ledger: &OlmLedger,
    utd: &UtdRecord,
    sender_key: Option<&str>,
) -> CliResult<DiagnosisRecord> {
    let client = room.client();
    let room_id = room.room_id().to_string();
    let event_id = utd.event_id.clone().unwrap_or_default();
    let sender = utd.sender.clone().unwrap_or_default();
    let device = utd.sender_device.clone().unwrap_or_default();

    let held = match &utd.session_id {
        Some(sid) => megolm::inbound_session(&client, room.room_id(), sid).await?,
        None => None,
    };
    let first_known_index = held.as_ref().map(|s| s.first_known_index);

    let sender_id = UserId::parse(&sender).ok();
    let (device_state, curve) = match &sender_id {
        Some(user) if !device.is_empty() => match client.encryption().get_device(user, device.as_str().into()).await? {
            Some(d) if d.is_deleted() => ("deleted", d.curve25519_key().map(|k| k.to_base64())),
            Some(d) => ("known", d.curve25519_key().map(|k| k.to_base64())),
            None => ("unknown", None),
        },
        _ => ("unknown", None),
    };
    let curve = curve.or_else(|| sender_key.map(str::to_owned));
    let olm_sessions = match &curve {
        Some(c) => Some(olm::device_sessions(&client, c, ledger).await?.sessions.len()),
        None => None,
    };
    let key_requested_ms = utd.session_id.as_ref().and_then(|s| ledger.key_requests.get(s).copied());

    let room_arg = format!("'{room_id}'");
    let request = format!("ratchet keys request {room_arg} --event '{event_id}'");
    let (cause, explanation, fix, reproduce): (&'static str, String, Vec<String>, Option<String>) =
        match (utd.reason.as_str(), first_known_index, utd.message_index) {
            ("withheld", _, _) => {
                let code = utd.withheld_code.clone().unwrap_or_default();
                let (why, fix) = match code.as_str() {
                    "m.no_olm" => (
                        "the sender had no Olm session with this device to send the key over",
                        vec![format!("ratchet unwedge {sender} {device}"), request.clone()],
                    ),
                    "m.unverified" | "m.blacklisted" => (
                        "the sender's settings keep keys from this (unverified or blocked) device",
                        vec![format!("verify this device with the sender, then ask again: {request}")],
                    ),
                    _ => ("the sender declined to share the key", vec![request.clone()]),
                };
                ("key_withheld", format!("the key was withheld ({code}): {why}"), fix, None)
            }
            ("unknown_megolm_message_index", Some(first), Some(index)) if first > index => (
                "index_before_first_known",
                format!(
                    "this device holds the session only from index {first}; the event is at index {index} \
                     (sent before this device got the key: before it joined, or while its Olm session was broken)"
                ),
                vec![
                    "ratchet keys import FILE   (an export from a device that has the earlier index)".to_owned(),
                    request.clone(),
                ],
                None,
            ),
            ("missing_megolm_session", _, _) if device_state != "known" => (
                "sender_device_unknown",
                format!(
                    "the sending device {device} is {device_state} here, so its keys cannot be checked or requested"
                ),
                vec!["ratchet sync".to_owned(), format!("ratchet devices {sender}")],
                None,
            ),
            ("missing_megolm_session", _, _) if olm_sessions == Some(0) => (
                "olm_session_missing",
                "there is no Olm session with the sending device: the room key, which travels over Olm, \
                 could not be decrypted here (a lost or wedged Olm session)"
                    .to_owned(),
                vec![format!("ratchet unwedge {sender} {device}"), request.clone()],
                Some(format!("ratchet debug forget-olm {sender} {device} --yes")),
            ),
            ("missing_megolm_session", _, _) => (
                "room_key_missing",
                "the room key never reached this device, or was lost here (there is an Olm session with the sender, \
                 so it was not shared with this device or is still on its way)"
                    .to_owned(),
                vec![request.clone(), "ratchet keys import FILE".to_owned()],
                utd.session_id.as_ref().map(|s| format!("ratchet debug forget-room-key {room_arg} '{s}' --yes")),
            ),
            (other, _, _) => (
                "other",
                format!("decryption failed ({other}); the event or the key may be damaged or forged"),
                vec![request.clone()],
                None,
            ),
        };
    Ok(DiagnosisRecord {
        room_id,
        event_id: utd.event_id.clone(),
        sender: utd.sender.clone(),
        sender_device: utd.sender_device.clone(),
        session_id: utd.session_id.clone(),
        message_index: utd.message_index,
        reason: utd.reason.clone(),
        withheld_code: utd.withheld_code.clone(),
        session_held: held.is_some(),
        first_known_index,
        sender_device_state: device_state,
        olm_sessions_with_sender: olm_sessions,
        key_requested_ms,
        cause,
        explanation,
        fix,
        reproduce,
    })
}
