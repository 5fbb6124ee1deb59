//! What a sync brought, as records: room events (decrypted where possible),
//! invites, rooms left, to-device events (with the fate of forwarded keys),
//! and, across a stream of syncs, late decryptions and Megolm rotations.
//! Every command that syncs keeps them in the profile's state database
//! (`profile::state`) the moment the sync returns — [`stage`] does no
//! network request and nothing that can fail — and only then looks
//! further ([`enrich`]: the message indexes `/messages` gives; late
//! decryptions; recovery). `sync` delivers them from there, once.

use std::collections::{BTreeMap, HashMap};

use matrix_sdk::deserialized_responses::{ProcessedToDeviceEvent, TimelineEventKind, ToDeviceUnableToDecryptReason};
use matrix_sdk::ruma::events::AnySyncTimelineEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::OwnedRoomId;
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::Client;
use serde::Serialize;
use serde_json::Value;

use crate::clock::now_ms;
use crate::error::CliResult;
use crate::events::{render, LeftRecord, Rendered};
use crate::profile::state::{Gap, OlmFailure, PendingUtd, Position, StateDb};
use crate::ui::output::{Captured, Output, Record};
use crate::ui::terminal::inert;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InviteRecord {
    room_id: String,
}

impl Record for InviteRecord {
    const TYPE: &'static str = "invite";
    fn human(&self) -> String {
        format!(
            "invited to {}  ({})",
            inert(&self.room_id),
            crate::ui::hint::ratchet("room join").arg(inert(&self.room_id))
        )
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
    /// Set when it was not decrypted: `decryption_failure` (a broken Olm
    /// session: R9), `unverified_sender_device` (refused for trust: the
    /// sending device is not cross-signed by its owner), `no_olm_machine`,
    /// `encryption_disabled`; `invalid_event` for one that does not parse.
    utd_reason: Option<String>,
    /// For an Olm-encrypted one: the sending device's curve25519 key, and
    /// the device it belongs to (null: a device this one does not know).
    sender_key: Option<String>,
    sender_device: Option<String>,
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
        // Every field here may be anybody's text: a to-device event's
        // plaintext content is the sender's to choose.
        let from = match &self.sender_device {
            Some(device) => format!("{} {}", inert(self.sender.as_deref().unwrap_or("?")), inert(device)),
            None => inert(self.sender.as_deref().unwrap_or("?")),
        };
        let how = if self.encrypted { "olm" } else { "plain" };
        let mut s = format!("to-device {} from {from} ({how})", inert(&self.event_type));
        if let (Some(room), Some(session)) = (&self.room_id, &self.session_id) {
            s.push_str(&format!(": session {} for {}", inert(session), inert(room)));
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

/// The closing record of `sync`: what it delivered.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct SyncSummary {
    rooms: usize,
    events: usize,
    utd: usize,
    to_device: usize,
    /// Delivered from what this profile's follower (`agent`, `chat`, `sync
    /// --follow`) kept, without a request of this process's own: how long
    /// ago its last sync ended (ms). Since then it has been waiting for
    /// news in a long poll, which the server answers as anything arrives.
    /// Absent: this process synced itself.
    pub(crate) follower_synced_ms_ago: Option<u64>,
    #[serde(skip)]
    seen_rooms: std::collections::BTreeSet<String>,
}

impl SyncSummary {
    /// Counts one delivered record.
    pub(crate) fn count(&mut self, record: &Captured) {
        let v: Value = serde_json::from_str(&record.json).unwrap_or(Value::Null);
        match v["type"].as_str() {
            Some("message") | Some("event") | Some("utd") => {
                self.events += 1;
                self.utd += usize::from(v["type"] == "utd");
                self.seen_rooms.insert(v["room_id"].as_str().unwrap_or_default().to_owned());
                self.rooms = self.seen_rooms.len();
            }
            Some("to_device") => self.to_device += 1,
            _ => {}
        }
    }
}

impl Record for SyncSummary {
    const TYPE: &'static str = "sync";
    fn human(&self) -> String {
        let via = match self.follower_synced_ms_ago {
            Some(ms) => format!(
                " (kept by this profile's agent, which synced {:.1} s ago and waits for news)",
                ms as f64 / 1000.0
            ),
            None => String::new(),
        };
        format!(
            "synced: {} events in {} rooms ({} undecryptable), {} to-device{via}",
            self.events, self.rooms, self.utd, self.to_device
        )
    }
}

/// State carried across the syncs of one run: the Megolm session each
/// sender last used in each room (rotations seen). Undecryptable events
/// are kept in the state database (`PendingUtd`), across processes.
#[derive(Default)]
pub(crate) struct Watcher {
    sessions: BTreeMap<(String, String, String), String>,
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
}

/// Printed first by `sync` when undelivered records had to go (see
/// `profile::state`): they are gone, and this says how many.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InboxGapRecord {
    pub(crate) dropped: u64,
}

impl Record for InboxGapRecord {
    const TYPE: &'static str = "inbox_gap";
    fn human(&self) -> String {
        format!(
            "({} earlier record(s) were dropped unseen: ratchet keeps {} undelivered records at most for `sync`; \
             run it, or keep `sync --follow` running, more often)",
            self.dropped,
            crate::profile::state::MAX_PENDING
        )
    }
}

/// A sync's records, staged: both forms of each, in order, and what a
/// later look-up may still fill in.
pub(crate) struct Staged {
    pub(crate) records: Vec<Captured>,
    /// The senders of Olm messages that could not be decrypted (R9).
    pub(crate) failures: Vec<OlmFailure>,
    /// Messages of others whose index only the ciphertext gives: (their
    /// place in `records`, room, place in that room's timeline).
    unindexed: Vec<(usize, OwnedRoomId, usize)>,
    /// Positions of this device's own messages among them.
    own: HashMap<String, Position>,
    /// The undecryptable events among them, by place, kept to retry.
    pub(crate) utds: Vec<(usize, PendingUtd)>,
    /// Each room's last timeline event.
    pub(crate) marks: Vec<(String, String)>,
    /// Limited timelines: the gaps before them, with the places of their
    /// rooms' records.
    pub(crate) gaps: Vec<(Gap, Vec<usize>)>,
}

/// A sync's records, from what the response holds and the local stores
/// only: no network request, and nothing here fails (a look-up that does is
/// left out of the record), so that the records are kept before anything
/// else happens.
pub(crate) async fn stage(
    client: &Client,
    out: &Output,
    response: &SyncResponse,
    watcher: &mut Watcher,
    db: &StateDb,
) -> Staged {
    let keep = out.capturing();
    let mut failures = Vec::new();
    let mut unindexed = Vec::new();
    let mut utds = Vec::new();
    let mut marks = Vec::new();
    let mut gaps = Vec::new();
    // The first sync kept after login fills no gap: nothing before it was
    // delivered, and the server's timeline is where the stream starts.
    let fills = db.has_synced().unwrap_or_else(|e| {
        tracing::debug!(error = %e.message, "could not read whether this profile synced before");
        false
    });
    // The positions of this device's own messages, for the decrypted
    // events only (an idle sync reads nothing).
    let decrypted: Vec<String> = response
        .rooms
        .joined
        .values()
        .flat_map(|u| u.timeline.events.iter())
        .filter(|e| matches!(e.kind, TimelineEventKind::Decrypted(_)))
        .filter_map(|e| e.event_id().map(|id| id.to_string()))
        .collect();
    let own = db.positions(&decrypted).unwrap_or_else(|e| {
        tracing::debug!(error = %e.message, "could not read the positions of sent messages");
        HashMap::new()
    });
    for event in &response.to_device {
        let mut record = to_device_record(event);
        // Which device sent it, from its identity key (the store only).
        // Only for an undecryptable Olm message, whose sender key is the
        // one it was encrypted with: a plaintext event's content is the
        // sender's to write, and names no device anyone vouches for.
        let undecryptable = matches!(event, ProcessedToDeviceEvent::UnableToDecrypt { .. });
        if let (true, None, Some(sender), Some(key)) =
            (undecryptable, &record.sender_device, &record.sender, &record.sender_key)
        {
            if let Ok(user) = matrix_sdk::ruma::UserId::parse(sender.as_str()) {
                record.sender_device =
                    crate::sdk::olm::device_by_curve(client, &user, key).await.ok().flatten().map(|d| d.to_string());
            }
        }
        if record.event_type == "m.forwarded_room_key" {
            if let Err(e) = judge_forward(client, &mut record).await {
                tracing::debug!(error = %e.message, "could not tell whether a forwarded key was kept");
            }
        }
        // R9 is about a wedged Olm session: only a real decryption failure
        // is one. A message refused for trust (`UnverifiedSenderDevice`: a
        // device its owner has not cross-signed, in exclude-insecure mode)
        // decrypts fine once trusted; a new session would fix nothing and
        // spend R11's hour.
        if let ProcessedToDeviceEvent::UnableToDecrypt { utd_info, .. } = event {
            if !matches!(utd_info.reason, ToDeviceUnableToDecryptReason::DecryptionFailure) {
                tracing::debug!(reason = ?utd_info.reason, "to-device message not decrypted, not a wedge (R9)");
                logged(keep.data(&record));
                continue;
            }
            if let (Some(sender), Some(key)) = (&record.sender, &record.sender_key) {
                let failure = OlmFailure { sender: sender.clone(), sender_key: key.clone() };
                if !failures.contains(&failure) {
                    failures.push(failure);
                }
            }
        }
        logged(keep.data(&record));
    }
    for (room_id, update) in &response.rooms.joined {
        // Every human line of the stream names its room.
        let name = client.get_room(room_id).and_then(|r| r.name());
        let room_label = Some(format!("[{}]", name.unwrap_or_else(|| crate::events::short(room_id.as_str()))));
        let first_place = keep.captured_len();
        if let Some(last) = update.timeline.events.last().and_then(|e| e.event_id()) {
            marks.push((room_id.to_string(), last.to_string()));
        }
        // A limited timeline left out what came between the last sync and
        // its first event: fetched right after this is kept (`gapfill`).
        // A room with no event kept yet (joined since the last sync, or
        // quiet since the stream began) starts its stream here: nothing
        // before it was missed. Nor does a timeline that holds this
        // account's join.
        let me = client.user_id().map(|u| u.to_string()).unwrap_or_default();
        let joins_here = update
            .timeline
            .events
            .iter()
            .any(|e| crate::gapfill::is_join_of(&e.raw().deserialize_as().unwrap_or(Value::Null), &me));
        let gap = match &update.timeline.prev_batch {
            Some(from) if update.timeline.limited && fills && !joins_here => {
                let until = db.mark(room_id.as_str()).unwrap_or_else(|e| {
                    tracing::debug!(error = %e.message, "could not read the room's last kept event");
                    None
                });
                until.map(|until| Gap {
                    room_id: room_id.to_string(),
                    from: from.clone(),
                    until: Some(until),
                    after: Vec::new(),
                    fetched: 0,
                })
            }
            _ => None,
        };
        let sdk_room = client.get_room(room_id);
        for (at, event) in update.timeline.events.iter().enumerate() {
            // History refused by matrix-sdk only for its imported key's
            // unprovable device: read, and marked (sdk::history).
            let reread = match (&sdk_room, &event.kind) {
                (Some(room), TimelineEventKind::UnableToDecrypt { .. }) => {
                    Some(crate::sdk::history::read_as_history(room, event.clone()).await)
                }
                _ => None,
            };
            let event = reread.as_ref().unwrap_or(event);
            let mut rendered = render(room_id.as_str(), event, None);
            if let Rendered::Message(r) = &mut rendered {
                fill_own_index(r, &own);
            }
            match &mut rendered {
                Rendered::Message(r) => r.room_label = room_label.clone(),
                Rendered::Utd(r) => r.room_label = room_label.clone(),
                Rendered::Other(r) => r.room_label = room_label.clone(),
            }
            match rendered {
                Rendered::Message(r) => {
                    logged(watcher.note_session(&keep, room_id.as_str(), &r));
                    let place = keep.captured_len();
                    let needs_index =
                        r.message_index.is_none() && r.event_id.as_ref().is_some_and(|id| !own.contains_key(id));
                    match keep.data(&r) {
                        Ok(()) if needs_index => unindexed.push((place, room_id.clone(), at)),
                        result => logged(result),
                    }
                }
                Rendered::Utd(r) => {
                    // Only what did not decrypt is retried (a decrypted one
                    // refused as a spoof never will be).
                    let undecrypted = matches!(event.kind, TimelineEventKind::UnableToDecrypt { .. });
                    let raw = event.raw().deserialize_as().ok().filter(|_| undecrypted);
                    if let Some(utd) = pending_utd(room_id.as_str(), &r, raw) {
                        utds.push((keep.captured_len(), utd));
                    }
                    logged(keep.data(&r))
                }
                Rendered::Other(mut r) => {
                    r.quiet = r.is_furniture();
                    logged(keep.data(&r))
                }
            }
        }
        if let Some(gap) = gap {
            gaps.push((gap, (first_place..keep.captured_len()).collect()));
        }
    }
    for room_id in response.rooms.invited.keys() {
        logged(keep.data(&InviteRecord { room_id: room_id.to_string() }));
    }
    for room_id in response.rooms.left.keys() {
        logged(keep.data(&LeftRecord { room_id: room_id.to_string() }));
    }
    Staged { records: keep.take_captured(), failures, unindexed, own, utds, marks, gaps }
}

/// A record that cannot be serialised is a bug, not a lost message: said
/// in the log, and the rest of the sync is kept.
fn logged(result: CliResult<()>) {
    if let Err(e) = result {
        tracing::warn!(error = %e.message, "a record could not be kept");
    }
}

/// The index of one of this device's own messages, from what `send` kept.
fn fill_own_index(r: &mut crate::events::MessageRecord, own: &HashMap<String, Position>) {
    let mine = r.event_id.as_ref().and_then(|id| own.get(id));
    if let Some(p) = mine.filter(|p| r.message_index.is_none() && r.session_id.as_ref() == Some(&p.session_id)) {
        r.message_index = Some(p.message_index);
    }
}

/// After the records are kept (`seqs`, one per staged record): the message
/// index of others' messages, which only the ciphertext gives (matrix-sdk
/// hands a decrypted event back without it), read from `/messages` and
/// written into the kept records. Best effort: a failed look-up leaves the
/// index null.
pub(crate) async fn enrich(
    client: &Client,
    out: &Output,
    response: &SyncResponse,
    staged: &Staged,
    seqs: &[i64],
    db: &StateDb,
) -> CliResult<()> {
    let mut rooms: Vec<&OwnedRoomId> = staged.unindexed.iter().map(|u| &u.1).collect();
    rooms.dedup();
    for room_id in rooms {
        let Some(update) = response.rooms.joined.get(room_id) else { continue };
        let originals = crate::events::sync_originals(client, room_id, &update.timeline, &staged.own).await;
        if originals.is_empty() {
            continue;
        }
        for (place, _, at) in staged.unindexed.iter().filter(|u| u.1 == *room_id) {
            let event = &update.timeline.events[*at];
            let original = event.event_id().and_then(|id| originals.get(id.as_str()));
            let Rendered::Message(mut r) = render(room_id.as_str(), event, original) else { continue };
            if r.message_index.is_none() {
                continue;
            }
            let name = client.get_room(room_id).and_then(|r| r.name());
            r.room_label = Some(format!("[{}]", name.unwrap_or_else(|| crate::events::short(room_id.as_str()))));
            let keep = out.capturing();
            keep.data(&r)?;
            if let (Some(record), Some(seq)) = (keep.take_captured().pop(), seqs.get(*place)) {
                db.replace(*seq, &record)?;
            }
        }
    }
    Ok(())
}

/// A `utd` record's event, kept to retry (its JSON as the server sent it).
pub(crate) fn pending_utd(room_id: &str, r: &crate::events::UtdRecord, event: Option<Value>) -> Option<PendingUtd> {
    Some(PendingUtd {
        room_id: room_id.to_owned(),
        event_id: r.event_id.clone()?,
        event: event?,
        seen_ms: now_ms(),
        seq: 0,
        trust: r.sender_trust.is_some(),
    })
}

/// Your own cross-signing identity was replaced elsewhere (Element's "reset
/// cryptographic identity", `recovery reset` on another device): this
/// device is no longer verified, and says how to be again.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct IdentityResetRecord {
    pub(crate) user_id: String,
    /// The master key this device knew, and the new one (base64).
    pub(crate) old_master_key: String,
    pub(crate) new_master_key: String,
    /// Whether the new identity signs this device (false until it is
    /// verified again).
    pub(crate) this_device_cross_signed: bool,
    /// Commands that verify this device again, to paste.
    pub(crate) fixes: Vec<String>,
}

impl Record for IdentityResetRecord {
    const TYPE: &'static str = "identity_reset";
    fn human(&self) -> String {
        format!(
            "your cryptographic identity was reset on another device (master key {} -> {}): this device is {}. \
             To verify it again: `{}` with the new recovery key, or `{}` and verify from the other device",
            crate::events::short(&self.old_master_key),
            crate::events::short(&self.new_master_key),
            if self.this_device_cross_signed { "signed by it" } else { "no longer verified" },
            self.fixes.first().map(String::as_str).unwrap_or_default(),
            self.fixes.get(1).map(String::as_str).unwrap_or_default(),
        )
    }
}

/// After a sync: whether our own identity changed since the last one this
/// profile saw (the store only, no request); a change is kept as an
/// `identity_reset` record for `sync`. The first identity seen is only
/// remembered, and so is a new one that signs this device (made here by
/// `recovery reset` or `identity --create`, or recovered already).
pub(crate) async fn watch_own_identity(client: &Client, out: &Output, db: &StateDb) -> CliResult<()> {
    let (Some(now), signed) = crate::sdk::trust::own_master_key(client).await? else { return Ok(()) };
    let before = match db.ledger::<String>("own_master_key")? {
        crate::profile::state::Loaded::Present(key, _) => Some(key),
        _ => None,
    };
    if before.as_deref() == Some(now.as_str()) {
        return Ok(());
    }
    if let Some(old) = before.filter(|_| !signed) {
        let keep = out.capturing();
        keep.data(&IdentityResetRecord {
            user_id: client.user_id().map(|u| u.to_string()).unwrap_or_default(),
            old_master_key: old,
            new_master_key: now.clone(),
            this_device_cross_signed: signed,
            fixes: vec![
                crate::ui::hint::ratchet("recovery recover").to_string(),
                crate::ui::hint::ratchet("verify --accept").to_string(),
            ],
        })?;
        db.append(&keep.take_captured())?;
    }
    let plain = serde_json::to_vec(&now).map_err(|e| crate::error::CliError::internal("serialise").with_source(e))?;
    db.save_ledger("own_master_key", &plain)
}

/// Undecryptable events retried at most per attempt (the newest).
const RETRY_AT_MOST: usize = 500;

/// Retries the undecryptable events kept (by any process); each that
/// decrypts now becomes a `message` record: in place of its `utd` record
/// when that was not delivered yet, else a new one that names the `utd` it
/// replaces (`replaces`, its cursor). Returns how many decrypted.
///
/// Called whenever something may have made them decryptable: a sync that
/// brought to-device events (room keys, forwards), a key query for their senders, a backup restore, `recovery recover`, a
/// key import.
///
/// `trust_only`: only those refused for trust in their sender.
pub(crate) async fn retry_utds(client: &Client, out: &Output, db: &StateDb, trust_only: bool) -> CliResult<usize> {
    let pending = db.pending_utds(RETRY_AT_MOST, trust_only)?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut settled = Vec::new();
    for p in pending {
        let Ok(room_id) = <&matrix_sdk::ruma::RoomId>::try_from(p.room_id.as_str()) else { continue };
        let Some(room) = client.get_room(room_id) else { continue };
        let Ok(raw) = serde_json::value::to_raw_value(&p.event) else { continue };
        let raw: Raw<AnySyncTimelineEvent> = Raw::from_json(raw);
        let event = crate::events::decrypt(&room, &raw).await?;
        if matches!(event.kind, TimelineEventKind::UnableToDecrypt { .. }) {
            continue;
        }
        let name = room.name().unwrap_or_else(|| crate::events::short(&p.room_id));
        let keep = out.capturing();
        match render(&p.room_id, &event, Some(&p.event)) {
            Rendered::Message(mut m) => {
                m.room_label = Some(format!("[{name}]"));
                keep.data(&m)?;
                m.replaces = Some(db.cursor(p.seq));
                m.waited_ms = Some(now_ms().saturating_sub(p.seen_ms));
                keep.data(&m)?;
            }
            // Another kind of event (a reaction, a call): shown as such in
            // place of its `utd`, or once after it.
            Rendered::Other(mut r) => {
                r.room_label = Some(format!("[{name}]"));
                keep.data(&r)?;
                keep.data(&r)?;
            }
            // Decrypted, and refused all the same (a spoofed sender): its
            // `utd` stands, and it is not retried again.
            Rendered::Utd(_) => {
                settled.push((p, None));
                continue;
            }
        }
        let mut both = keep.take_captured();
        let (Some(late), Some(in_place)) = (both.pop(), both.pop()) else { continue };
        settled.push((p, Some((in_place, late))));
    }
    db.settle_utds(&settled)?;
    Ok(settled.iter().filter(|(_, r)| r.is_some()).count())
}

/// Before this sync's undecryptable events are judged: the senders of
/// those refused for trust (MSC4153) whose keys this device may not have
/// fetched yet (a sender of a room just joined) are queried, so that "keys
/// not fetched yet" is not reported as an unsigned or unknown device.
/// Returns whether any was queried (the events are then retried).
pub(crate) async fn query_senders(client: &Client, staged: &Staged) -> bool {
    let mut senders: Vec<matrix_sdk::ruma::OwnedUserId> = staged
        .utds
        .iter()
        .filter(|(_, u)| u.trust)
        .filter_map(|(_, u)| u.event["sender"].as_str().and_then(|s| s.try_into().ok()))
        .collect();
    senders.sort();
    senders.dedup();
    let mut queried = false;
    for sender in senders.iter().take(20) {
        // Known already (a device not signed by a known identity is what it
        // looks like): no query.
        if client.encryption().get_user_identity(sender).await.ok().flatten().is_some() {
            continue;
        }
        match client.encryption().request_user_identity(sender).await {
            Ok(_) => queried = true,
            Err(e) => tracing::debug!(error = %e, %sender, "could not query a sender's keys"),
        }
    }
    queried
}

pub(crate) fn to_device_record(event: &ProcessedToDeviceEvent) -> ToDeviceRecord {
    let json: Value = event.to_raw().deserialize_as().unwrap_or(Value::Null);
    let (encrypted, utd_reason) = match event {
        ProcessedToDeviceEvent::Decrypted { .. } => (true, None),
        ProcessedToDeviceEvent::UnableToDecrypt { utd_info, .. } => {
            (true, Some(crate::sdk::names::to_device_utd_reason(&utd_info.reason).to_owned()))
        }
        ProcessedToDeviceEvent::PlainText(_) => (false, None),
        ProcessedToDeviceEvent::Invalid(_) => (false, Some("invalid_event".to_owned())),
    };
    let content = &json["content"];
    ToDeviceRecord {
        event_type: json["type"].as_str().unwrap_or("?").to_owned(),
        sender: json["sender"].as_str().map(str::to_owned),
        encrypted,
        utd_reason,
        sender_key: content["sender_key"].as_str().map(str::to_owned),
        // A decrypted one says which device sent it; an undecryptable one
        // is looked up by its identity key in `stage`.
        sender_device: match event {
            ProcessedToDeviceEvent::Decrypted { encryption_info, .. } => {
                encryption_info.sender_device.as_ref().map(|d| d.to_string())
            }
            _ => None,
        },
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
