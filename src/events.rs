//! Turning room events into output records: decrypted messages, plain
//! events, and events that could not be decrypted (with the SDK's reason).
//! Shared by `messages` and `sync`.
//!
//! The Megolm message index is not part of what the SDK hands back after
//! decryption, so where the ciphertext is available it is read from it
//! (vodozemac's `MegolmMessage`); that is the receiver's own view of the
//! index, independent of what the sender claims.

use matrix_sdk::deserialized_responses::{TimelineEvent, TimelineEventKind, UnableToDecryptReason};
use matrix_sdk::encryption::vodozemac::megolm::MegolmMessage;
use matrix_sdk::ruma::serde::Raw;
use serde::Serialize;
use serde_json::Value;

use crate::clock::format_ts;
use crate::ui::output::Record;
use crate::ui::terminal::{inert, inert_lines};

/// A decrypted or plaintext `m.room.message` (or other message-like event).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct MessageRecord {
    pub(crate) room_id: String,
    pub(crate) event_id: Option<String>,
    pub(crate) sender: Option<String>,
    pub(crate) origin_server_ts: Option<u64>,
    pub(crate) event_type: String,
    pub(crate) msgtype: Option<String>,
    pub(crate) body: Option<String>,
    /// For `m.file`, `m.image`, `m.audio` and `m.video`: the file (its
    /// name, size, type and `mxc://` URI; never its key). `download`
    /// fetches it.
    pub(crate) file: Option<Box<crate::attach::FileRef>>,
    pub(crate) encrypted: bool,
    pub(crate) session_id: Option<String>,
    pub(crate) message_index: Option<u32>,
    pub(crate) sender_device: Option<String>,
    /// The room key came from the server-side key backup just now.
    pub(crate) key_from_backup: bool,
    /// The room key came in history shared on invite (MSC4268): the user
    /// who shared it when inviting you (null otherwise). Who sent the
    /// message then rests on their word, as Element marks it.
    pub(crate) shared_by: Option<String>,
    /// With `shared_by`: the device that shared it.
    pub(crate) shared_by_device: Option<String>,
    /// What the SDK could establish about the sender when it decrypted
    /// (null: not encrypted): `verified`, `unverified_identity` (the user
    /// is not verified by you; the device is cross-signed by them),
    /// `verification_violation` (verified once, identity changed since),
    /// `unsigned_device` (not cross-signed by its owner), `unknown_device`,
    /// `insecure_source` (the key came from an import, the backup or a
    /// forward: who sent the message cannot be proven), `mismatched_sender`.
    pub(crate) sender_trust: Option<&'static str>,
    /// In `sync`'s stream, for an event that could not be decrypted when it
    /// came and decrypts now (its key, or its sender's keys, arrived
    /// later): the `cursor` of the `utd` record this message replaces
    /// (null otherwise).
    pub(crate) replaces: Option<String>,
    /// With `replaces`: how long it stayed undecryptable here (ms).
    pub(crate) waited_ms: Option<u64>,
    /// In a stream of several rooms (`sync`): the room's name or short id,
    /// for the human line. Not part of the JSON record (`room_id` is).
    #[serde(skip)]
    pub(crate) room_label: Option<String>,
}

/// The name of a decrypted event's verification state.
fn verification_name(state: &matrix_sdk::deserialized_responses::VerificationState) -> &'static str {
    use matrix_sdk::deserialized_responses::{DeviceLinkProblem as P, VerificationLevel as L, VerificationState as S};
    match state {
        S::Verified => "verified",
        S::Unverified(L::UnverifiedIdentity) => "unverified_identity",
        S::Unverified(L::VerificationViolation) => "verification_violation",
        S::Unverified(L::UnsignedDevice) => "unsigned_device",
        S::Unverified(L::None(P::MissingDevice)) => "unknown_device",
        S::Unverified(L::None(P::InsecureSource)) => "insecure_source",
        S::Unverified(L::MismatchedSender) => "mismatched_sender",
    }
}

/// The human line's marker for a sender trust, as Element's shields: none
/// for verified or a merely unverified user; a warning (`!`) where Element
/// shows red, a doubt (`?`) where it shows grey.
fn trust_marker(trust: Option<&str>) -> &'static str {
    match trust {
        Some("verification_violation") => "  [! identity changed since you verified]",
        Some("unsigned_device") => "  [! device not verified by its owner]",
        Some("mismatched_sender") => "  [! sender does not own this key]",
        Some("unknown_device") => "  [? unknown or deleted device]",
        Some("insecure_source") => "  [? authenticity not guaranteed: key imported]",
        _ => "",
    }
}

impl Record for MessageRecord {
    const TYPE: &'static str = "message";
    fn human(&self) -> String {
        let when = self.origin_server_ts.map(format_ts).unwrap_or_else(|| "?".into());
        let who = inert(self.sender.as_deref().unwrap_or("?"));
        // Text from the network: shown, never run (ui::terminal); a
        // multi-line body continues indented under its first line.
        let what = match (&self.file, &self.body, self.event_type.as_str()) {
            (Some(file), _, _) => file.human(),
            (None, Some(body), _) => inert_lines(body, "    "),
            (None, None, t) => format!("[{}]", inert(t)),
        };
        let from_backup = if self.key_from_backup { "  (key from backup)" } else { "" };
        let lock = match (&self.session_id, self.message_index) {
            (Some(s), Some(i)) => format!("  [megolm {} #{i}]", short(s)),
            (Some(s), None) => format!("  [megolm {}]", short(s)),
            _ if self.encrypted => "  [encrypted]".into(),
            _ => "  [not encrypted]".into(),
        };
        let trust = trust_marker(self.sender_trust);
        let shared = match &self.shared_by {
            Some(by) => format!("  [? history shared by {} when you were invited]", inert(by)),
            None => String::new(),
        };
        let late = match self.waited_ms.filter(|_| self.replaces.is_some()) {
            Some(ms) => format!("  (decrypted late: undecryptable for {:.1} s)", ms as f64 / 1000.0),
            None => String::new(),
        };
        let tail = format!("{lock}{trust}{shared}{from_backup}{late}");
        match self.msgtype.as_deref() {
            // As clients show them: `* alice waves`; a notice (bots) marked.
            Some("m.emote") => format!("{}[{when}] * {who} {what}{tail}", label(&self.room_label)),
            Some("m.notice") => format!("{}[{when}] {who} (notice): {what}{tail}", label(&self.room_label)),
            _ => format!("{}[{when}] {who}: {what}{tail}", label(&self.room_label)),
        }
    }
}

/// A room left: by `room leave`, or as seen in a sync.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct LeftRecord {
    pub(crate) room_id: String,
}

impl Record for LeftRecord {
    const TYPE: &'static str = "left";
    fn human(&self) -> String {
        format!("left {}", self.room_id)
    }
}

/// An event that could not be decrypted.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct UtdRecord {
    pub(crate) room_id: String,
    pub(crate) event_id: Option<String>,
    pub(crate) sender: Option<String>,
    pub(crate) origin_server_ts: Option<u64>,
    pub(crate) session_id: Option<String>,
    pub(crate) message_index: Option<u32>,
    pub(crate) sender_device: Option<String>,
    /// The SDK's reason, as a stable snake_case name.
    pub(crate) reason: String,
    /// For a withheld key: the withheld code the sender gave.
    pub(crate) withheld_code: Option<String>,
    /// For `sender_identity_not_trusted` (MSC4153): why the sender is not
    /// trusted enough here: unsigned_device (not cross-signed by its owner),
    /// verification_violation (their identity changed since you verified
    /// them), unverified_identity, unknown_device or mismatched_sender.
    pub(crate) sender_trust: Option<&'static str>,
    /// In a stream of several rooms (`sync`): the room's name or short id,
    /// for the human line. Not part of the JSON record (`room_id` is).
    #[serde(skip)]
    pub(crate) room_label: Option<String>,
}

impl Record for UtdRecord {
    const TYPE: &'static str = "utd";
    fn human(&self) -> String {
        let when = self.origin_server_ts.map(format_ts).unwrap_or_else(|| "?".into());
        let who = inert(self.sender.as_deref().unwrap_or("?"));
        let session = match (&self.session_id, self.message_index) {
            (Some(s), Some(i)) => format!(" (megolm {} #{i})", inert(&short(s))),
            (Some(s), None) => format!(" (megolm {})", inert(&short(s))),
            _ => String::new(),
        };
        let withheld = self.withheld_code.as_ref().map(|c| format!(", withheld: {}", inert(c))).unwrap_or_default();
        let trust =
            self.sender_trust.filter(|t| *t != self.reason).map(|t| format!(", sender: {t}")).unwrap_or_default();
        format!(
            "{}[{when}] {who}: ** unable to decrypt: {}{withheld}{trust}{session}",
            label(&self.room_label),
            self.reason
        )
    }
}

/// Any other event (state changes and the like), shown with `--all`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct EventRecord {
    pub(crate) room_id: String,
    pub(crate) event_id: Option<String>,
    pub(crate) sender: Option<String>,
    pub(crate) origin_server_ts: Option<u64>,
    pub(crate) event_type: String,
    pub(crate) state_key: Option<String>,
    pub(crate) encrypted: bool,
    /// In a stream of several rooms (`sync`): the room's name or short id,
    /// for the human line. Not part of the JSON record (`room_id` is).
    #[serde(skip)]
    pub(crate) room_label: Option<String>,
    /// In `sync`'s human stream: a room's furniture (its creation, power
    /// levels, join rules…), kept in the JSON stream but given no human
    /// line (issue 30: a join printed a screenful of them).
    #[serde(skip)]
    pub(crate) quiet: bool,
}

impl EventRecord {
    /// State events a person reading `sync` does not need a line for.
    pub(crate) fn is_furniture(&self) -> bool {
        self.state_key.is_some()
            && matches!(
                self.event_type.as_str(),
                "m.room.create"
                    | "m.room.power_levels"
                    | "m.room.join_rules"
                    | "m.room.guest_access"
                    | "m.room.server_acl"
                    | "m.room.avatar"
                    | "m.room.canonical_alias"
                    | "m.room.aliases"
                    | "m.room.pinned_events"
            )
    }
}

impl Record for EventRecord {
    const TYPE: &'static str = "event";
    fn human(&self) -> String {
        if self.quiet {
            return String::new();
        }
        let when = self.origin_server_ts.map(format_ts).unwrap_or_else(|| "?".into());
        let who = self.sender.as_deref().unwrap_or("?");
        let key = match self.state_key.as_deref() {
            Some("") | None => String::new(),
            Some(k) => format!(" ({})", inert(k)),
        };
        format!("{}[{when}] {}: [{}{key}]", label(&self.room_label), inert(who), inert(&self.event_type))
    }
}

/// What one room event becomes on output.
#[derive(Debug)]
pub(crate) enum Rendered {
    Message(MessageRecord),
    Utd(UtdRecord),
    Other(EventRecord),
}

/// The Megolm session id and message index read from an `m.room.encrypted`
/// event's own ciphertext.
pub(crate) fn megolm_position(encrypted: &Value) -> (Option<String>, Option<u32>) {
    let content = &encrypted["content"];
    let session_id = content["session_id"].as_str().map(str::to_owned);
    let index =
        content["ciphertext"].as_str().and_then(|c| MegolmMessage::from_base64(c).ok()).map(|m| m.message_index());
    (session_id, index)
}

/// Renders a timeline event. `original` is the event as the server sent it
/// (still encrypted), when the caller has it, for the message index.
pub(crate) fn render(room_id: &str, event: &TimelineEvent, original: Option<&Value>) -> Rendered {
    let json: Value = event.raw().deserialize_as().unwrap_or(Value::Null);
    let common = Common::from(&json);
    let position = original.map(megolm_position).unwrap_or((None, None));
    match &event.kind {
        TimelineEventKind::UnableToDecrypt { utd_info, event: raw } => {
            let raw_json: Value = raw.deserialize_as().unwrap_or(Value::Null);
            let (sid, idx) = if original.is_some() { position } else { megolm_position(&raw_json) };
            let withheld_code = match &utd_info.reason {
                UnableToDecryptReason::MissingMegolmSession { withheld_code: Some(code) } => {
                    Some(code.as_str().to_owned())
                }
                _ => None,
            };
            Rendered::Utd(UtdRecord {
                room_id: room_id.to_owned(),
                event_id: common.event_id,
                sender: common.sender,
                origin_server_ts: common.ts,
                session_id: utd_info.session_id.clone().or(sid),
                message_index: idx,
                sender_device: raw_json["content"]["device_id"].as_str().map(str::to_owned),
                reason: utd_reason_name(&utd_info.reason).to_owned(),
                withheld_code,
                sender_trust: sender_trust_name(&utd_info.reason),
                room_label: None,
            })
        }
        TimelineEventKind::Decrypted(_)
            if event.encryption_info().is_some_and(|i| {
                matches!(
                    i.verification_state,
                    matrix_sdk::deserialized_responses::VerificationState::Unverified(
                        matrix_sdk::deserialized_responses::VerificationLevel::MismatchedSender
                    )
                )
            }) =>
        {
            // Decrypted (all-devices mode), but from a device that is not the
            // sender's: withheld as undecryptable rather than shown under a
            // false name.
            let info = event.encryption_info();
            let device = original.and_then(|o| o["content"]["device_id"].as_str().map(str::to_owned));
            Rendered::Utd(UtdRecord {
                room_id: room_id.to_owned(),
                event_id: common.event_id,
                sender: common.sender,
                origin_server_ts: common.ts,
                session_id: info.and_then(|i| i.session_id().map(str::to_owned)).or(position.0),
                message_index: position.1,
                sender_device: device,
                reason: MISMATCHED_SENDER.to_owned(),
                withheld_code: None,
                sender_trust: Some("mismatched_sender"),
                room_label: None,
            })
        }
        TimelineEventKind::Decrypted(_) | TimelineEventKind::PlainText { .. } => {
            let info = event.encryption_info();
            let encrypted = info.is_some();
            let event_type = json["type"].as_str().unwrap_or("").to_owned();
            if json.get("state_key").is_some() || !is_message_like(&event_type) {
                return Rendered::Other(EventRecord {
                    room_id: room_id.to_owned(),
                    event_id: common.event_id,
                    sender: common.sender,
                    origin_server_ts: common.ts,
                    state_key: json["state_key"].as_str().map(str::to_owned),
                    event_type,
                    encrypted,
                    room_label: None,
                    quiet: false,
                });
            }
            Rendered::Message(MessageRecord {
                room_id: room_id.to_owned(),
                event_id: common.event_id,
                sender: common.sender,
                origin_server_ts: common.ts,
                msgtype: json["content"]["msgtype"].as_str().map(str::to_owned),
                body: json["content"]["body"].as_str().map(str::to_owned),
                file: crate::attach::FileRef::of(&json["content"]).map(Box::new),
                event_type,
                encrypted,
                session_id: info.and_then(|i| i.session_id().map(str::to_owned)).or(position.0),
                message_index: position.1,
                sender_device: info.and_then(|i| i.sender_device.as_ref().map(|d| d.to_string())),
                key_from_backup: false,
                shared_by: info.and_then(|i| i.forwarder.as_ref().map(|f| f.user_id.to_string())),
                shared_by_device: info.and_then(|i| i.forwarder.as_ref().map(|f| f.device_id.to_string())),
                sender_trust: info.map(|i| verification_name(&i.verification_state)),
                replaces: None,
                waited_ms: None,
                room_label: None,
            })
        }
    }
}

fn is_message_like(event_type: &str) -> bool {
    matches!(event_type, "m.room.message" | "m.sticker" | "m.reaction")
}

struct Common {
    event_id: Option<String>,
    sender: Option<String>,
    ts: Option<u64>,
}

impl From<&Value> for Common {
    fn from(json: &Value) -> Self {
        Common {
            event_id: json["event_id"].as_str().map(str::to_owned),
            sender: json["sender"].as_str().map(str::to_owned),
            ts: json["origin_server_ts"].as_u64(),
        }
    }
}

/// The `utd` reason of an event whose `sender` does not own the device that
/// made its room key: a spoofed sender. ratchet never shows such a message's
/// text, in any isolation mode, since the line would name the wrong author.
pub(crate) const MISMATCHED_SENDER: &str = "mismatched_sender";

/// Stable names for the SDK's reasons: part of the JSON contract.
pub(crate) fn utd_reason_name(reason: &UnableToDecryptReason) -> &'static str {
    match reason {
        UnableToDecryptReason::MissingMegolmSession { withheld_code: Some(_) } => "withheld",
        UnableToDecryptReason::MissingMegolmSession { withheld_code: None } => "missing_megolm_session",
        UnableToDecryptReason::UnknownMegolmMessageIndex => "unknown_megolm_message_index",
        UnableToDecryptReason::MegolmDecryptionFailure => "megolm_decryption_failure",
        UnableToDecryptReason::MalformedEncryptedEvent => "malformed_encrypted_event",
        UnableToDecryptReason::PayloadDeserializationFailure => "payload_deserialization_failure",
        UnableToDecryptReason::MismatchedIdentityKeys => "mismatched_identity_keys",
        // Not a question of trust in the sender: the event's `sender` is not
        // who made the key (complement-crypto's TestSpoofedEventSenderHandling).
        UnableToDecryptReason::SenderIdentityNotTrusted(
            matrix_sdk::deserialized_responses::VerificationLevel::MismatchedSender,
        ) => MISMATCHED_SENDER,
        UnableToDecryptReason::SenderIdentityNotTrusted(_) => "sender_identity_not_trusted",
        _ => "unknown",
    }
}

/// The room prefix of a human line in a multi-room stream.
fn label(room: &Option<String>) -> String {
    room.as_deref().map(|r| format!("{} ", inert(r))).unwrap_or_default()
}

/// Why the sender was not trusted enough to decrypt (MSC4153), as a
/// stable name: part of the JSON contract.
pub(crate) fn sender_trust_name(reason: &UnableToDecryptReason) -> Option<&'static str> {
    use matrix_sdk::deserialized_responses::VerificationLevel as L;
    let UnableToDecryptReason::SenderIdentityNotTrusted(level) = reason else { return None };
    Some(match level {
        L::UnsignedDevice => "unsigned_device",
        L::VerificationViolation => "verification_violation",
        L::UnverifiedIdentity => "unverified_identity",
        L::None(_) => "unknown_device",
        L::MismatchedSender => "mismatched_sender",
    })
}

/// Casts a raw event for `Room::decrypt_event`.
pub(crate) fn as_encrypted<T>(
    raw: &Raw<T>,
) -> &Raw<matrix_sdk::ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent> {
    raw.cast_ref_unchecked()
}

/// Decrypts an event of ROOM as ratchet reads it: matrix-sdk's decryption,
/// then history whose imported key it refuses read and marked
/// ([`crate::sdk::history::read_as_history`]).
pub(crate) async fn decrypt<T>(room: &matrix_sdk::Room, raw: &Raw<T>) -> crate::error::CliResult<TimelineEvent> {
    let event = room.decrypt_event(as_encrypted(raw), None).await?;
    Ok(crate::sdk::history::read_as_history(room, event).await)
}

/// The first 10 characters of an id, for people.
pub(crate) fn short(id: &str) -> String {
    id.chars().take(10).collect()
}

/// One event of recent history: as the server sent it (still encrypted, for
/// the ciphertext's session and index), and as this device reads it.
pub(crate) struct HistoryEvent {
    pub(crate) original: Value,
    pub(crate) event: TimelineEvent,
    /// Its room key came from the server-side backup just now (it was
    /// undecryptable with the keys this device held).
    pub(crate) key_from_backup: bool,
}

/// The room's last `limit` events, oldest first, each decrypted here if
/// encrypted (the room's keys as of now). An event whose key this device
/// lacks is looked up in the key backup (when this device has the backup
/// key) before it is called undecryptable.
pub(crate) async fn recent_history(room: &matrix_sdk::Room, limit: u32) -> crate::error::CliResult<Vec<HistoryEvent>> {
    use matrix_sdk::ruma::api::client::message::get_message_events;
    let mut request = get_message_events::v3::Request::backward(room.room_id().to_owned());
    request.limit = matrix_sdk::ruma::UInt::from(limit);
    let response = room.client().send(request).await?;
    let mut out = Vec::with_capacity(response.chunk.len());
    // Sessions whose key came from the backup in this call: every event
    // of theirs decrypted with it says so, not only the first (which
    // fetched it).
    let mut fetched: std::collections::HashSet<String> = Default::default();
    // Senders whose keys were queried in this call (see below).
    let mut queried: std::collections::HashSet<String> = Default::default();
    // The server returns newest first.
    for raw in response.chunk.iter().rev() {
        let original: Value = raw.deserialize_as().unwrap_or(Value::Null);
        let session = original["content"]["session_id"].as_str().map(str::to_owned);
        let mut key_from_backup = session.as_ref().is_some_and(|s| fetched.contains(s));
        let event = if original["type"] == "m.room.encrypted" {
            let mut event = decrypt(room, raw).await?;
            if let (TimelineEventKind::UnableToDecrypt { utd_info, .. }, Some(session)) =
                (&event.kind, original["content"]["session_id"].as_str())
            {
                let missing = matches!(
                    utd_info.reason,
                    UnableToDecryptReason::MissingMegolmSession { .. }
                        | UnableToDecryptReason::UnknownMegolmMessageIndex
                );
                // Refused for trust, from a sender whose identity this
                // device never fetched (a member it met only in history
                // shared on invite, or one lazy loading left out): their
                // keys first, then judged again, as a sync does.
                let untrusted = matches!(utd_info.reason, UnableToDecryptReason::SenderIdentityNotTrusted(_));
                let sender = original["sender"].as_str().and_then(|s| matrix_sdk::ruma::UserId::parse(s).ok());
                if let (true, Some(sender)) = (untrusted, sender) {
                    let client = room.client();
                    let known = client.encryption().get_user_identity(&sender).await.ok().flatten().is_some();
                    if !known && queried.insert(sender.to_string()) {
                        if let Err(e) = client.encryption().request_user_identity(&sender).await {
                            tracing::debug!(error = %e, %sender, "could not query a sender's keys");
                        }
                        event = decrypt(room, raw).await?;
                    }
                }
                if missing && crate::sdk::backup::download_one(&room.client(), room.room_id(), session).await? {
                    event = decrypt(room, raw).await?;
                    key_from_backup = !matches!(event.kind, TimelineEventKind::UnableToDecrypt { .. });
                    if key_from_backup {
                        fetched.insert(session.to_owned());
                    }
                }
            }
            event
        } else {
            TimelineEvent::from_plaintext(raw.clone().cast())
        };
        out.push(HistoryEvent { original, event, key_from_backup });
    }
    Ok(out)
}

/// The encrypted events of one sync's room timeline as the server sent
/// them, by event id, for their message index: matrix-sdk hands back a
/// decrypted sync event without its ciphertext. One `/messages` request,
/// forward from the timeline's `prev_batch` (the position just before its
/// first event), made only when the timeline holds a decrypted event that
/// this device did not send (`own`: see `profile::positions`). A failure
/// leaves the indexes unknown (null) and is not an error: the events
/// themselves were received.
pub(crate) async fn sync_originals(
    client: &matrix_sdk::Client,
    room_id: &matrix_sdk::ruma::RoomId,
    timeline: &matrix_sdk::sync::Timeline,
    own: &std::collections::HashMap<String, crate::profile::state::Position>,
) -> std::collections::HashMap<String, Value> {
    use matrix_sdk::ruma::api::client::message::get_message_events;
    let decrypted = timeline.events.iter().any(|e| {
        matches!(e.kind, TimelineEventKind::Decrypted(_))
            && e.event_id().is_none_or(|id| !own.contains_key(id.as_str()))
    });
    let Some(from) = timeline.prev_batch.as_ref().filter(|_| decrypted) else {
        return Default::default();
    };
    let mut request = get_message_events::v3::Request::forward(room_id.to_owned());
    request.from = Some(from.clone());
    request.limit = matrix_sdk::ruma::UInt::try_from(timeline.events.len() + 5).unwrap_or(matrix_sdk::ruma::UInt::MAX);
    match client.send(request).await {
        Ok(response) => response
            .chunk
            .iter()
            .filter_map(|raw| raw.deserialize_as::<Value>().ok())
            .filter(|v| v["type"] == "m.room.encrypted")
            .filter_map(|v| Some((v["event_id"].as_str()?.to_owned(), v)))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, %room_id, "could not read the timeline's ciphertexts; message indexes unknown");
            Default::default()
        }
    }
}
