//! What a sync brought, as records: room events (decrypted where possible),
//! invites, rooms left, to-device events (with the fate of forwarded keys),
//! and, across a stream of syncs, late decryptions and Megolm rotations.
//! `ratchet sync` prints them; every other command that syncs keeps them in
//! the profile's inbox for the next `sync` (`profile::inbox`), so `sync`
//! prints every event exactly once whatever else ran.

use std::collections::{BTreeMap, HashMap};

use matrix_sdk::deserialized_responses::{ProcessedToDeviceEvent, TimelineEventKind};
use matrix_sdk::ruma::events::AnySyncTimelineEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::OwnedRoomId;
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::Client;
use serde::Serialize;
use serde_json::Value;

use crate::clock::now_ms;
use crate::error::CliResult;
use crate::events::{as_encrypted, render, LeftRecord, Rendered};
use crate::profile::positions::{OwnPositions, Position};
use crate::ui::output::{Output, Record};

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
    /// For an Olm-encrypted one: the sending device's curve25519 key.
    sender_key: Option<String>,
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
    /// The counts of records other commands kept for `sync`.
    pub(crate) fn of_kept(kept: &[crate::ui::output::Captured]) -> SyncSummary {
        let mut summary = SyncSummary { rooms: 0, events: 0, utd: 0, to_device: 0 };
        let mut rooms = std::collections::BTreeSet::new();
        for record in kept {
            let v: Value = serde_json::from_str(&record.json).unwrap_or(Value::Null);
            match v["type"].as_str() {
                Some("message") | Some("event") | Some("utd") => {
                    summary.events += 1;
                    summary.utd += usize::from(v["type"] == "utd");
                    rooms.insert(v["room_id"].as_str().unwrap_or_default().to_owned());
                }
                Some("to_device") => summary.to_device += 1,
                _ => {}
            }
        }
        summary.rooms = rooms.len();
        summary
    }

    pub(crate) fn add(&mut self, other: &SyncSummary) {
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

/// An event that could not be decrypted when it arrived, kept to retry.
pub(crate) struct Pending {
    room_id: OwnedRoomId,
    raw: Raw<AnySyncTimelineEvent>,
    session_id: Option<String>,
    seen_ms: u64,
}

/// State carried across the syncs of one run: undecryptable events to retry
/// when keys arrive (late decryptions), and the Megolm session each sender
/// last used in each room (rotations seen).
#[derive(Default)]
pub(crate) struct Watcher {
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

/// Printed first by `sync` when the inbox had to drop its oldest records
/// (see `profile::inbox`): they are gone, and this says how many.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InboxGapRecord {
    pub(crate) dropped: u64,
}

impl Record for InboxGapRecord {
    const TYPE: &'static str = "inbox_gap";
    fn human(&self) -> String {
        format!(
            "({} earlier record(s) were dropped unseen: the inbox keeps {} MiB at most for `sync`; run it, or keep \
             `sync --follow` running, more often)",
            self.dropped,
            crate::profile::inbox::MAX_BYTES / (1024 * 1024)
        )
    }
}

pub(crate) async fn print_response(
    client: &Client,
    out: &Output,
    response: &SyncResponse,
    watcher: &mut Watcher,
    own: &OwnPositions,
) -> CliResult<SyncSummary> {
    // The positions of this device's own messages are read only when the
    // sync brought a decrypted event (an idle sync reads no file).
    let decrypted = response
        .rooms
        .joined
        .values()
        .any(|u| u.timeline.events.iter().any(|e| matches!(e.kind, TimelineEventKind::Decrypted(_))));
    let own: HashMap<String, Position> = if decrypted { own.read().unwrap_or_default() } else { HashMap::new() };
    let own = &own;
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
        // Every human line of the stream names its room.
        let name = client.get_room(room_id).and_then(|r| r.name());
        let room_label = Some(format!("[{}]", name.unwrap_or_else(|| crate::events::short(room_id.as_str()))));
        let originals = crate::events::sync_originals(client, room_id, &update.timeline, own).await;
        for event in &update.timeline.events {
            summary.events += 1;
            let original = event.event_id().and_then(|id| originals.get(id.as_str()));
            let mut rendered = render(room_id.as_str(), event, original);
            if let Rendered::Message(r) = &mut rendered {
                let mine = r.event_id.as_ref().and_then(|id| own.get(id));
                if let Some(p) =
                    mine.filter(|p| r.message_index.is_none() && r.session_id.as_ref() == Some(&p.session_id))
                {
                    r.message_index = Some(p.message_index);
                }
            }
            match &mut rendered {
                Rendered::Message(r) => r.room_label = room_label.clone(),
                Rendered::Utd(r) => r.room_label = room_label.clone(),
                Rendered::Other(r) => r.room_label = room_label.clone(),
            }
            match rendered {
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
        sender_key: content["sender_key"].as_str().map(str::to_owned),
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
