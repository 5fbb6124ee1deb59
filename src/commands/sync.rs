//! `ratchet sync`: one incremental sync, or a stream of them with
//! `--follow`, printing what arrived: room events (decrypted where possible),
//! invites, rooms left, and to-device events.

use std::time::Duration;

use clap::Args;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::ProcessedToDeviceEvent;
use matrix_sdk::ruma::events::AnySyncTimelineEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::OwnedRoomId;
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::Client;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tracing::instrument;

use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::error::CliResult;
use crate::events::{as_encrypted, render, LeftRecord, Rendered};
use crate::sdk::recovery;
use crate::ui::output::{Output, Record};

/// Fetch what arrived since the last run and print it.
///
/// Without --follow, one sync that returns at once (it never waits for new
/// events). With --follow, keeps syncing and prints events as they arrive
/// until interrupted; Ctrl-C exits 0 after the store is written.
///
/// When an Olm-encrypted to-device message cannot be decrypted, the Olm
/// session with its sender is taken to be wedged and replaced (rules R9–R11):
/// a new session, an m.dummy over it, at most once per device per hour; then
/// an m.room_key_request for the sender's Megolm sessions that are
/// undecryptable in the same sync (R13). Each step is a `recovery` record.
/// --no-recover leaves it to matrix-sdk, which (0.18) never sends the m.dummy.
///
/// With --follow it also reports, across syncs: events that could not be
/// decrypted on arrival and decrypt once their key comes (late_decryption,
/// with how long that took), and senders moving to a new Megolm session
/// (rotation_seen).
///
/// Record types under --json: message, utd, event, invite, left, to_device,
/// recovery, late_decryption, rotation_seen, and a closing sync summary.
///
/// Examples:
///
///   ratchet sync
///   ratchet --json sync --follow | jq -c 'select(.type == "utd")'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SyncArgs {
    /// Keep syncing until interrupted
    #[arg(long, short)]
    follow: bool,

    /// Do not recover from undecryptable Olm messages (see what matrix-sdk
    /// alone does)
    #[arg(long)]
    no_recover: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InviteRecord {
    room_id: String,
}

impl Record for InviteRecord {
    const TYPE: &'static str = "invite";
    fn human(&self) -> String {
        format!("invited to {}  (ratchet room join {})", self.room_id, self.room_id)
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ToDeviceRecord {
    /// The event's type after decryption (`m.room_key`, `m.dummy`, …), or
    /// `m.room.encrypted` when it could not be decrypted.
    event_type: String,
    sender: Option<String>,
    /// Whether it arrived Olm-encrypted.
    encrypted: bool,
    /// Set when decryption failed.
    utd_reason: Option<String>,
    /// For `m.room_key` / `m.forwarded_room_key`: which Megolm session.
    room_id: Option<String>,
    session_id: Option<String>,
    /// For `m.forwarded_room_key`: accepted (the session is in the store
    /// now) or dropped.
    forward: Option<&'static str>,
    /// Why a forward was dropped (matrix-sdk accepts a forwarded key only
    /// from your own verified devices, and only one this device asked for).
    dropped_because: Option<String>,
}

impl Record for ToDeviceRecord {
    const TYPE: &'static str = "to_device";
    fn human(&self) -> String {
        let from = self.sender.as_deref().unwrap_or("?");
        let how = if self.encrypted { "olm" } else { "plain" };
        let mut s = format!("to-device {} from {from} ({how})", self.event_type);
        if let (Some(room), Some(session)) = (&self.room_id, &self.session_id) {
            s.push_str(&format!(": session {session} for {room}"));
        }
        if let Some(reason) = &self.utd_reason {
            s.push_str(&format!(": ** unable to decrypt: {reason}"));
        }
        match (self.forward, &self.dropped_because) {
            (Some("accepted"), _) => s.push_str("  (forward accepted: the key is held now)"),
            (Some(_), Some(why)) => s.push_str(&format!("  (forward DROPPED: {why})")),
            _ => {}
        }
        s
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SyncSummary {
    rooms: usize,
    events: usize,
    utd: usize,
    to_device: usize,
}

impl SyncSummary {
    fn add(&mut self, other: &SyncSummary) {
        self.rooms += other.rooms;
        self.events += other.events;
        self.utd += other.utd;
        self.to_device += other.to_device;
    }
}

impl Record for SyncSummary {
    const TYPE: &'static str = "sync";
    fn human(&self) -> String {
        format!(
            "synced: {} events in {} rooms ({} undecryptable), {} to-device",
            self.events, self.rooms, self.utd, self.to_device
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_sync(ctx: &mut CommandContext, args: &SyncArgs) -> CliResult {
    let client = ctx.client().await?;
    let mut ledger = ctx.olm_ledger();
    if !args.follow {
        let started = now_ms();
        let response = crate::sdk::sync_now(&client).await?;
        let mut watcher = Watcher::default();
        let mut summary = print_response(&client, &ctx.out, &response, &mut watcher).await?;
        if !args.no_recover {
            recovery::after_sync(&client, &response, &mut ledger, started, &ctx.out).await?;
        }
        // A key request from one of our own devices is answered by
        // matrix-sdk once it has an Olm session with that device: when it
        // had to claim one in this sync, the forward goes out with the next.
        // One more sync delivers it, so a one-shot `sync` answers at once.
        let asked = response
            .to_device
            .iter()
            .any(|e| e.to_raw().deserialize_as::<Value>().is_ok_and(|j| j["type"] == "m.room_key_request"));
        if asked {
            let more = crate::sdk::sync_now(&client).await?;
            let extra = print_response(&client, &ctx.out, &more, &mut watcher).await?;
            summary.add(&extra);
        }
        return ctx.out.data(&summary);
    }
    ctx.out.status("Following; Ctrl-C to stop.");
    let settings = SyncSettings::default().timeout(Duration::from_secs(30));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut watcher = Watcher::default();
    loop {
        let started = now_ms();
        // Dropping an in-flight sync is safe: the SDK writes a response
        // (events, keys, the next token) in one store transaction only after
        // it has arrived, so an interrupted one is simply fetched again.
        tokio::select! {
            _ = &mut interrupted => {
                ctx.out.status("Stopped.");
                return Ok(());
            }
            response = client.sync_once(settings.clone()) => {
                let response = response?;
                print_response(&client, &ctx.out, &response, &mut watcher).await?;
                // Between syncs, never beside one: recovery claims keys itself.
                if !args.no_recover {
                    recovery::after_sync(&client, &response, &mut ledger, started, &ctx.out).await?;
                }
            }
        }
    }
}

/// An event that could not be decrypted when it arrived, kept to retry.
struct Pending {
    room_id: OwnedRoomId,
    raw: Raw<AnySyncTimelineEvent>,
    session_id: Option<String>,
    seen_ms: u64,
}

/// State carried across the syncs of one run: undecryptable events to retry
/// when keys arrive (late decryptions), and the Megolm session each sender
/// last used in each room (rotations seen).
#[derive(Default)]
struct Watcher {
    pending: BTreeMap<String, Pending>,
    sessions: BTreeMap<(String, String, String), String>,
}

/// An event that became decryptable after it arrived.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct LateDecryptionRecord {
    room_id: String,
    event_id: String,
    sender: Option<String>,
    session_id: Option<String>,
    body: Option<String>,
    /// How long it stayed undecryptable, from its arrival here.
    waited_ms: u64,
}

impl Record for LateDecryptionRecord {
    const TYPE: &'static str = "late_decryption";
    fn human(&self) -> String {
        format!(
            "decrypted late ({} ms): {} {}: {}",
            self.waited_ms,
            self.event_id,
            crate::ui::terminal::inert(self.sender.as_deref().unwrap_or("?")),
            crate::ui::terminal::inert_lines(self.body.as_deref().unwrap_or(""), "    ")
        )
    }
}

/// A sender moved to a new Megolm session in a room.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RotationSeenRecord {
    room_id: String,
    sender: String,
    sender_device: String,
    old_session_id: String,
    new_session_id: String,
}

impl Record for RotationSeenRecord {
    const TYPE: &'static str = "rotation_seen";
    fn human(&self) -> String {
        format!(
            "rotation: {} {} in {}: {} -> {}",
            self.sender, self.sender_device, self.room_id, self.old_session_id, self.new_session_id
        )
    }
}

impl Watcher {
    fn note_session(&mut self, out: &Output, room_id: &str, message: &crate::events::MessageRecord) -> CliResult<()> {
        let (Some(sender), Some(device), Some(session)) =
            (&message.sender, &message.sender_device, &message.session_id)
        else {
            return Ok(());
        };
        let key = (room_id.to_owned(), sender.clone(), device.clone());
        if let Some(old) = self.sessions.insert(key, session.clone()) {
            if old != *session {
                out.data(&RotationSeenRecord {
                    room_id: room_id.to_owned(),
                    sender: sender.clone(),
                    sender_device: device.clone(),
                    old_session_id: old,
                    new_session_id: session.clone(),
                })?;
            }
        }
        Ok(())
    }

    /// Retries every pending event; prints those that now decrypt.
    async fn retry(&mut self, client: &Client, out: &Output) -> CliResult<()> {
        let mut done = Vec::new();
        for (event_id, p) in &self.pending {
            let Some(room) = client.get_room(&p.room_id) else { continue };
            let event = room.decrypt_event(as_encrypted(&p.raw), None).await?;
            if let Rendered::Message(m) = render(p.room_id.as_str(), &event, None) {
                done.push(event_id.clone());
                out.data(&LateDecryptionRecord {
                    room_id: p.room_id.to_string(),
                    event_id: event_id.clone(),
                    sender: m.sender,
                    session_id: m.session_id.or_else(|| p.session_id.clone()),
                    body: m.body,
                    waited_ms: now_ms().saturating_sub(p.seen_ms),
                })?;
            }
        }
        for id in done {
            self.pending.remove(&id);
        }
        Ok(())
    }
}

async fn print_response(
    client: &Client,
    out: &Output,
    response: &SyncResponse,
    watcher: &mut Watcher,
) -> CliResult<SyncSummary> {
    let mut summary = SyncSummary { rooms: 0, events: 0, utd: 0, to_device: 0 };
    for event in &response.to_device {
        summary.to_device += 1;
        let mut record = to_device_record(event);
        if record.event_type == "m.forwarded_room_key" {
            judge_forward(client, &mut record).await?;
        }
        out.data(&record)?;
    }
    // Keys that arrived now may open events that arrived before.
    if !watcher.pending.is_empty() && !response.to_device.is_empty() {
        watcher.retry(client, out).await?;
    }
    for (room_id, update) in &response.rooms.joined {
        summary.rooms += 1;
        for event in &update.timeline.events {
            summary.events += 1;
            match render(room_id.as_str(), event, None) {
                Rendered::Message(r) => {
                    watcher.note_session(out, room_id.as_str(), &r)?;
                    out.data(&r)?
                }
                Rendered::Utd(r) => {
                    summary.utd += 1;
                    if let Some(id) = &r.event_id {
                        watcher.pending.insert(
                            id.clone(),
                            Pending {
                                room_id: room_id.clone(),
                                raw: event.raw().clone(),
                                session_id: r.session_id.clone(),
                                seen_ms: now_ms(),
                            },
                        );
                    }
                    out.data(&r)?
                }
                Rendered::Other(r) => out.data(&r)?,
            }
        }
    }
    for room_id in response.rooms.invited.keys() {
        out.data(&InviteRecord { room_id: room_id.to_string() })?;
    }
    for room_id in response.rooms.left.keys() {
        out.data(&LeftRecord { room_id: room_id.to_string() })?;
    }
    Ok(summary)
}

pub(crate) fn to_device_record(event: &ProcessedToDeviceEvent) -> ToDeviceRecord {
    let json: Value = event.to_raw().deserialize_as().unwrap_or(Value::Null);
    let (encrypted, utd_reason) = match event {
        ProcessedToDeviceEvent::Decrypted { .. } => (true, None),
        ProcessedToDeviceEvent::UnableToDecrypt { utd_info, .. } => (true, Some(format!("{:?}", utd_info.reason))),
        ProcessedToDeviceEvent::PlainText(_) => (false, None),
        ProcessedToDeviceEvent::Invalid(_) => (false, Some("invalid event".to_owned())),
    };
    let content = &json["content"];
    ToDeviceRecord {
        event_type: json["type"].as_str().unwrap_or("?").to_owned(),
        sender: json["sender"].as_str().map(str::to_owned),
        encrypted,
        utd_reason,
        room_id: content["room_id"].as_str().map(str::to_owned),
        session_id: content["session_id"].as_str().map(str::to_owned),
        forward: None,
        dropped_because: None,
    }
}

/// Was a forwarded room key kept? It was if the session is in the store
/// now; if not, the likely reason, from who sent it.
async fn judge_forward(client: &Client, record: &mut ToDeviceRecord) -> CliResult<()> {
    let (Some(room), Some(session)) = (&record.room_id, &record.session_id) else { return Ok(()) };
    let Ok(room_id) = <&matrix_sdk::ruma::RoomId>::try_from(room.as_str()) else { return Ok(()) };
    if crate::sdk::megolm::inbound_session(client, room_id, session).await?.is_some() {
        record.forward = Some("accepted");
        return Ok(());
    }
    record.forward = Some("dropped");
    let own = client.user_id().map(|u| u.as_str());
    record.dropped_because = Some(if record.sender.as_deref() != own {
        "forwarded by another user; matrix-sdk accepts forwarded keys only from your own verified devices".to_owned()
    } else {
        "not from one of your verified devices, or not asked for by this device".to_owned()
    });
    Ok(())
}
