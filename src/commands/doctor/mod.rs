//! `ratchet doctor`: why each undecryptable event in a room cannot be
//! decrypted, and the command that would fix (or reproduce) it; with
//! `--sent`, the other side: who could not read what this device sent
//! (`sent`).

mod sent;

#[cfg(test)]
pub(crate) use sent::DeliveryRecord;

use clap::Args;
use matrix_sdk::ruma::{OwnedEventId, UserId};
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
/// With --sent, the other side: "I sent it, why can't bob's phone read
/// it?". For this device's own messages, each device of the room: was it
/// given the Megolm session, and from which index; did it get a withheld
/// code instead (m.unverified, m.blacklisted, m.no_olm), and why; did it
/// appear, or its owner join, after the send; how many Olm sessions link
/// it to this device. Then the command that makes the next message
/// readable to it, or why nothing on this side can. Without --event or
/// --all, only the devices that cannot read are listed.
///
/// Exit 0 when nothing is undecryptable (with --sent: every device in the
/// room can read, as far as ratchet's records say), 3 otherwise (with
/// --sent also when a session has no record).
///
/// Examples:
///
///   ratchet doctor '!room:example.org'
///   ratchet --json doctor '!room:example.org' --event '$eventid' | jq -r .cause
///   ratchet doctor '!room:example.org' --sent -n 20
///   ratchet --json doctor '!room:example.org' --sent --event '$eventid' | jq -c '[.user_id, .device_id, .can_read]'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct DoctorArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
    /// Only this event
    #[arg(long)]
    event: Option<OwnedEventId>,
    /// How many recent events to examine (1–1000): events, not only
    /// undecryptable ones
    #[arg(
        long,
        short = 'n',
        default_value = "50",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    limit: u32,
    /// The sender's side: which devices could not read this device's own
    /// messages, and why
    #[arg(long)]
    sent: bool,
    /// With --sent: every device, also those that can read
    #[arg(long, requires = "sent")]
    all: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DiagnosisRecord {
    room_id: String,
    /// The first (oldest) undecryptable event of this diagnosis.
    event_id: Option<String>,
    /// Every undecryptable event with the same session and cause, oldest
    /// first (one diagnosis per session: one key fixes them all).
    event_ids: Vec<String>,
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
    /// What doctor looked at on this device: the key backup, your other
    /// verified devices, this device's cross-signing.
    checked: Vec<String>,
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
        if self.event_ids.len() > 1 {
            s.push_str(&format!("\n  and {} more event(s) of this session, the same cause", self.event_ids.len() - 1));
        }
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
    if args.sent {
        return sent::cmd_doctor_sent(ctx, args).await;
    }
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    ctx.out.status(format!("Looking at the last {} event(s) of {}…", args.limit, rooms::label(&room)));
    let ledger = ctx.olm_ledger()?;
    let limit = if args.event.is_some() { 1000 } else { args.limit };
    let here = Here::of(&client).await?;

    let mut found = 0;
    let mut seen_event = false;
    let mut diagnoses: Vec<DiagnosisRecord> = Vec::new();
    for HistoryEvent { original, event, .. } in recent_history(&room, limit).await? {
        if let Some(wanted) = &args.event {
            if original["event_id"].as_str() != Some(wanted.as_str()) {
                continue;
            }
            seen_event = true;
        }
        let Rendered::Utd(utd) = render(room.room_id().as_str(), &event, Some(&original)) else { continue };
        found += 1;
        let sender_key = original["content"]["sender_key"].as_str().map(str::to_owned);
        let record = diagnose(&room, &ledger, &here, &utd, sender_key.as_deref()).await?;
        let same = diagnoses
            .iter_mut()
            .find(|d| d.session_id.is_some() && d.session_id == record.session_id && d.cause == record.cause);
        match same {
            Some(group) => group.event_ids.extend(record.event_id),
            None => diagnoses.push(record),
        }
    }
    for record in &diagnoses {
        ctx.out.data(record)?;
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

/// What this device is, for the trust causes (MSC4153).
struct Here {
    user: String,
    device: String,
    /// This device is cross-signed by its owner.
    cross_signed: bool,
    /// Other devices of ours that are cross-signed: the only ones whose
    /// forwarded keys matrix-sdk accepts, so a key request can work.
    verified_siblings: usize,
    /// The key backup this device can read (its version), if any: history
    /// already looked every undecryptable key up in it.
    backup_here: Option<String>,
    /// The account has secret storage: `recovery recover` would bring the
    /// backup key.
    secret_storage: bool,
    /// The account has secret storage (whether or not the backup is here).
    has_secret_storage: bool,
    /// The account has a cross-signing identity.
    identity: bool,
    /// When this device was made (ms; 0: unknown).
    created_ms: u64,
}

impl Here {
    async fn of(client: &matrix_sdk::Client) -> CliResult<Here> {
        let user = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
        let device = client.device_id().ok_or_else(|| CliError::internal("no device id"))?.to_owned();
        let own = client.encryption().get_user_devices(&user).await?;
        let verified_siblings = own
            .devices()
            .filter(|d| d.device_id() != device && d.is_cross_signed_by_owner() && !d.is_deleted())
            .count();
        let cross_signed = crate::sdk::trust::own_device_cross_signed(client).await?;
        let backup_here = crate::sdk::backup::version_here(client).await?;
        let facts = crate::sdk::trust::own_facts(client).await?;
        let secret_storage = backup_here.is_none() && facts.secret_storage;
        Ok(Here {
            created_ms: crate::sdk::device_created_ms(client).await?,
            has_secret_storage: facts.secret_storage,
            identity: facts.identity,
            user: user.to_string(),
            device: device.to_string(),
            cross_signed,
            verified_siblings,
            backup_here,
            secret_storage,
        })
    }

    /// What doctor looked at for this device, for the record.
    fn checked(&self) -> Vec<String> {
        let mut c = vec![match &self.backup_here {
            Some(v) => format!("key backup version {v}: searched, it does not hold this key"),
            None if self.secret_storage => {
                "key backup: this device has no backup key yet (recovery recover)".to_owned()
            }
            None => "key backup: none for this account".to_owned(),
        }];
        c.push(format!("your other verified devices: {}", self.verified_siblings));
        c.push(format!("this device cross-signed: {}", if self.cross_signed { "yes" } else { "no" }));
        c
    }
}

async fn diagnose(
    room: &matrix_sdk::Room,
    ledger: &OlmLedger,
    here: &Here,
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

    // Every command here pastes into a shell as shown (`ui::hint`).
    use crate::ui::hint::{ratchet, theirs};
    let request = ratchet("keys request").arg(&room_id).word("--event").arg(&event_id);
    let import = format!("{}   (an export from a device that holds the key)", ratchet("keys import FILE"));
    // How this device becomes cross-signed, for this account: the way that
    // can work first (e2ee::trust::how_to_verify_this_device).
    let verify_me = if !here.identity {
        format!(
            "{}   (your account has no cross-signing identity: this creates one and signs this device)",
            ratchet("identity --create")
        )
    } else if here.has_secret_storage {
        format!("{}   (your recovery key verifies this device)", ratchet("recovery recover"))
    } else if here.verified_siblings > 0 {
        format!(
            "{}   (here), then `{}` on a verified device of yours, or verify in Element",
            ratchet("verify --accept"),
            theirs("verify --self").arg(&here.device)
        )
    } else {
        format!(
            "{}   (no recovery key and no other verified device: a new identity; others verify you again)",
            ratchet("recovery reset")
        )
    };
    // The fixes for a missing key, in the order that can work here: the
    // backup, your own verified devices, a file, the sender (whose forward
    // matrix-sdk drops), and verifying this device (the sender's next keys
    // then reach it).
    let mut asked = Vec::new();
    if here.backup_here.is_none() && here.secret_storage {
        asked.push(format!(
            "{}   (the recovery key brings the backup key; then `{}`)",
            ratchet("recovery recover"),
            ratchet("backup restore").arg(&room_id)
        ));
    }
    if here.verified_siblings > 0 {
        asked.push(format!("{request}   (your own verified devices answer with the key)"));
    }
    asked.push(import.clone());
    if here.verified_siblings == 0 {
        asked.push(format!(
            "{request}   (answered only by your own verified devices, and you have none other: a sender's forward is dropped)"
        ));
    }
    if !here.cross_signed {
        asked.push(verify_me.clone());
    }
    let (cause, explanation, fix, reproduce): (&'static str, String, Vec<String>, Option<String>) =
        match (utd.reason.as_str(), first_known_index, utd.message_index) {
            ("withheld", _, _) => {
                let code = utd.withheld_code.clone().unwrap_or_default();
                let (why, fix, reproduce) = match code.as_str() {
                    "m.no_olm" => (
                        "the sender had no Olm session with this device to send the key over".to_owned(),
                        vec![
                            request.to_string(),
                            format!(
                                "{}   (for later messages only: gives the sender an Olm session to this device)",
                                ratchet("unwedge").arg(&sender).arg(&device)
                            ),
                        ],
                        None,
                    ),
                    "m.unverified" if !here.cross_signed => (
                        "the sender shares keys only with devices cross-signed by their owner (MSC4153, Element's \
                         default), and this device is not cross-signed"
                            .to_owned(),
                        vec![verify_me.clone(), "then new messages reach this device; this one stays lost".to_owned()],
                        Some(format!(
                            "{} (a device never cross-signed), then a message from a sender in exclude-insecure mode",
                            theirs("login --no-bootstrap")
                        )),
                    ),
                    "m.unverified" => (
                        format!(
                            "the sender did not see this device as cross-signed when it sent (it is now: their \
                             next messages should reach it; `{}` shows it)",
                            ratchet("identity")
                        ),
                        vec![request.to_string()],
                        None,
                    ),
                    "m.blacklisted" => (
                        "the sender blocked this device (their local trust in it is \"blacklisted\")".to_owned(),
                        vec![format!(
                            "ask {sender} to unblock it: `{}`   (on their side)",
                            theirs("trust").arg(&here.user).arg(&here.device).word("unset")
                        )],
                        Some(format!(
                            "{}   (on the sender's side)",
                            theirs("--isolation all-devices trust")
                                .arg(&here.user)
                                .arg(&here.device)
                                .word("blacklisted")
                        )),
                    ),
                    "m.history_not_shared" => (
                        "it was sent before you joined, while the room's history visibility was `joined` or \
                         `invited`: its key is not handed to members who come later, so the history shared with \
                         your invite (MSC4268) said so instead of carrying it. Nothing on this side gets it; only \
                         a device that had it can give it (a key file)"
                            .to_owned(),
                        vec![format!(
                            "{}   (on the side of a member who can read it; then `{}` here)",
                            theirs("keys export").arg("FILE"),
                            ratchet("keys import").arg("FILE")
                        )],
                        Some(format!(
                            "{}, a message, `room invite` of a new member (history visibility `joined` at the time)",
                            theirs("room create --encrypted")
                        )),
                    ),
                    _ => ("the sender declined to share the key".to_owned(), asked.clone(), None),
                };
                ("key_withheld", format!("the key was withheld ({code}): {why}"), fix, reproduce)
            }
            ("sender_identity_not_trusted", _, _) => {
                let (cause, why, fix, reproduce) = match utd.sender_trust {
                    Some("unsigned_device") => (
                        "sender_device_not_cross_signed",
                        format!(
                            "the sending device {device} is not cross-signed by its owner; in exclude-insecure mode \
                             (MSC4153) its messages are not decrypted"
                        ),
                        vec![
                            format!("ask {sender} to verify that device (from one of their verified devices)"),
                            format!(
                                "{}   (read it anyway: legacy)",
                                ratchet("--isolation all-devices messages").arg(&room_id)
                            ),
                        ],
                        Some(format!(
                            "on the sender's side: `{}`, then `{}`",
                            theirs("login --no-bootstrap"),
                            theirs("--isolation all-devices send ROOM TEXT")
                        )),
                    ),
                    Some("verification_violation") => (
                        "sender_identity_changed",
                        format!("{sender}'s cross-signing identity changed since you verified them"),
                        vec![
                            format!(
                                "{}   (accept it, unverified: its messages decrypt)",
                                ratchet("identity").arg(&sender).word("--withdraw-verification")
                            ),
                            format!(
                                "{}   (then verify the new identity with them: the request goes into your direct \
                                 chat, which the changed identity blocks until it is accepted)",
                                ratchet("verify").arg(&sender)
                            ),
                        ],
                        None,
                    ),
                    other => (
                        "sender_not_trusted",
                        format!("the sender is not trusted enough to decrypt ({})", other.unwrap_or("unknown")),
                        vec![ratchet("identity").arg(&sender).to_string(), ratchet("devices").arg(&sender).to_string()],
                        None,
                    ),
                };
                (cause, why, fix, reproduce)
            }
            (crate::events::MISMATCHED_SENDER, _, _) => {
                use crate::ui::terminal::inert;
                // Who made the key, as this device recorded it when the key
                // came over Olm (not the event's own `device_id`, which the
                // same rewriter could have changed).
                let maker = match held.as_ref().map(|h| (h.sender.as_deref(), h.sender_device.as_deref())) {
                    Some((Some(user), Some(dev))) => format!("device {} of {}", inert(dev), inert(user)),
                    Some((Some(user), None)) => format!("a device of {}", inert(user)),
                    _ => "a device that is not theirs".to_owned(),
                };
                (
                    "spoofed_sender",
                    format!(
                        "the event says it is from {}, but its room key was made by {maker}: the homeserver, or \
                         something between it and you, changed who sent it. Its text is not shown, and nothing on \
                         this side can make it trustworthy: report it to the homeserver's admins",
                        inert(&sender)
                    ),
                    Vec::new(),
                    None,
                )
            }
            ("missing_megolm_session" | "unknown_megolm_message_index", _, _)
                if crate::e2ee::recovery::predates_device(utd.origin_server_ts, here.created_ms) =>
            {
                (
                    "sent_before_this_device",
                    format!(
                        "sent before this device existed (this device was made {}): no room key was ever sent to it, \
                         so only a copy of the key can help (a new Olm session cannot){}",
                        format_ts(here.created_ms),
                        if here.backup_here.is_some() { "; the key backup does not hold it" } else { "" }
                    ),
                    asked.clone(),
                    None,
                )
            }
            ("unknown_megolm_message_index", Some(first), Some(index)) if first > index => (
                "index_before_first_known",
                format!(
                    "this device holds the session only from index {first}; the event is at index {index} \
                     (sent before this device got the key: before it joined, while its Olm session was broken, \
                     or while the sender could not reach its server)"
                ),
                asked.clone(),
                None,
            ),
            ("missing_megolm_session", _, _) if device_state != "known" => (
                "sender_device_unknown",
                format!(
                    "the sending device {device} is {device_state} here, so its keys cannot be checked or requested"
                ),
                vec![ratchet("sync").to_string(), ratchet("devices").arg(&sender).to_string()],
                None,
            ),
            ("missing_megolm_session", _, _) if olm_sessions == Some(0) => (
                "olm_session_missing",
                "there is no Olm session with the sending device: the room key, which travels over Olm, \
                 could not be decrypted here (a lost or wedged Olm session)"
                    .to_owned(),
                {
                    // What can bring this event back first; a new Olm
                    // session only helps what is sent after it (R9, R10).
                    let mut fix = asked.clone();
                    fix.push(format!(
                        "{}   (for later messages only: a new Olm session; it does not bring this one back)",
                        ratchet("unwedge").arg(&sender).arg(&device)
                    ));
                    fix
                },
                Some(ratchet("debug forget-olm").arg(&sender).arg(&device).word("--yes").to_string()),
            ),
            ("missing_megolm_session", _, _) => (
                "room_key_missing",
                "the room key never reached this device, or was lost here (there is an Olm session with the sender, \
                 so it was not shared with this device or is still on its way)"
                    .to_owned(),
                asked.clone(),
                utd.session_id
                    .as_ref()
                    .map(|s| ratchet("debug forget-room-key").arg(&room_id).arg(s).word("--yes").to_string()),
            ),
            (other, _, _) => (
                "other",
                format!("decryption failed ({other}); the event or the key may be damaged or forged"),
                asked.clone(),
                None,
            ),
        };
    // One command once: the first entry that names it stays (`recovery
    // recover` is both the backup's way and the way to verify this device).
    let mut seen = std::collections::HashSet::new();
    let fix: Vec<String> =
        fix.into_iter().filter(|f| seen.insert(f.split("   (").next().unwrap_or(f).trim().to_owned())).collect();
    Ok(DiagnosisRecord {
        room_id,
        event_id: utd.event_id.clone(),
        event_ids: utd.event_id.iter().cloned().collect(),
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
        checked: here.checked(),
    })
}
