//! `ratchet doctor --sent`: the sender's side of a decryption failure
//! (issue 32). For this device's own messages in a room: which devices
//! were given their Megolm session, from which index, which got a withheld
//! code instead and why, which appeared after the send — and what makes the
//! next message readable to them (`e2ee::delivery`), from the sharing
//! records the profile keeps (`profile::state::shares`) and the room's
//! current session.

use std::collections::{BTreeMap, BTreeSet};

use matrix_sdk::ruma::UserId;
use serde::Serialize;

use super::DoctorArgs;
use crate::context::CommandContext;
use crate::e2ee::delivery::{self, Facts, Remedy};
use crate::e2ee::rotation::SharedWith;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::events::recent_history;
use crate::rooms;
use crate::sdk::{megolm, olm};
use crate::ui::hint::ratchet;
use crate::ui::output::Record;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DeliveryRecord {
    room_id: String,
    session_id: String,
    /// This device's messages examined in the session, oldest first.
    event_ids: Vec<String>,
    /// Their Megolm message indexes, in the same order.
    message_indexes: Vec<u32>,
    /// The device (absent for `no_record`: nothing is known of any).
    user_id: Option<String>,
    device_id: Option<String>,
    /// The first index it was given the session from; absent when it was
    /// not given it.
    given_from_index: Option<u32>,
    /// The withheld code it got instead of the key (`m.unverified`,
    /// `m.blacklisted`, `m.no_olm`, ...).
    withheld_code: Option<String>,
    /// Whether it can decrypt every one of `event_ids`; absent: unknown.
    can_read: Option<bool>,
    /// Those of `event_ids` it cannot decrypt.
    unreadable_event_ids: Vec<String>,
    /// `known` (in the room now), `deleted` (logged out), or `gone` (its
    /// owner is not in the room now, or its keys are unknown here).
    device_state: &'static str,
    /// Now: cross-signed by its owner (MSC4153).
    cross_signed: Option<bool>,
    /// Olm sessions this device has with it (room keys travel over them);
    /// absent when not looked up (a device given the session, in a room's
    /// view).
    olm_sessions: Option<usize>,
    /// A stable name for the cause (see README, "doctor --sent").
    cause: &'static str,
    explanation: String,
    /// Commands that make the next message readable to it, in order.
    fix: Vec<String>,
    /// Why the messages already sent stay unreadable to it, when they do.
    past: Option<String>,
}

impl Record for DeliveryRecord {
    const TYPE: &'static str = "delivery";
    fn human(&self) -> String {
        let who = match (&self.user_id, &self.device_id) {
            (Some(u), Some(d)) => format!("{u} {d}"),
            _ => "every device".to_owned(),
        };
        let span = match (self.message_indexes.first(), self.message_indexes.last()) {
            (Some(a), Some(b)) if a != b => format!("indexes {a}–{b}"),
            (Some(a), _) => format!("index {a}"),
            _ => String::new(),
        };
        let verdict = match self.can_read {
            Some(true) => "can read",
            Some(false) if self.unreadable_event_ids.len() < self.event_ids.len() => "cannot read some",
            Some(false) => "cannot read",
            None if self.cause == "not_a_member_then" => "not in the room then",
            None => "unknown",
        };
        let mut s = format!(
            "{who}: {verdict}  ({}; session {}, {} message(s), {span})\n  {}",
            self.cause,
            self.session_id,
            self.event_ids.len(),
            self.explanation
        );
        for f in &self.fix {
            s.push_str(&format!("\n  fix:  {f}"));
        }
        if let Some(p) = &self.past {
            s.push_str(&format!("\n  past: {p}"));
        }
        s
    }
}

/// One session's worth of this device's messages.
struct Sent {
    session_id: String,
    events: Vec<(String, u32)>,
}

/// A device of the room now, as this device knows it.
struct Now {
    deleted: bool,
    cross_signed: bool,
    blacklisted: bool,
    curve: Option<String>,
}

pub(super) async fn cmd_doctor_sent(ctx: &mut CommandContext, args: &DoctorArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let room_id = room.room_id().to_owned();
    let me = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let my_device = client.device_id().ok_or_else(|| CliError::internal("no device id"))?.to_owned();
    let limit = if args.event.is_some() { 1000 } else { args.limit };
    ctx.out.status(format!(
        "Looking at this device's messages among the last {limit} event(s) of {}…",
        rooms::label(&room)
    ));

    let sent = own_messages(&room, args, limit, &me, my_device.as_str()).await?;
    if sent.is_empty() {
        ctx.out.status("No encrypted message of this device's among them.");
        return Ok(());
    }

    // The devices of the room's members now (each member's, as tracked).
    let mut now: BTreeMap<(String, String), Now> = BTreeMap::new();
    for user in megolm::member_ids(&client, &room_id, matrix_sdk::RoomMemberships::ACTIVE).await? {
        for d in client.encryption().get_user_devices(&user).await?.devices() {
            if user == me && d.device_id() == my_device {
                continue;
            }
            now.insert(
                (user.to_string(), d.device_id().to_string()),
                Now {
                    deleted: d.is_deleted(),
                    cross_signed: d.is_cross_signed_by_owner(),
                    blacklisted: d.is_blacklisted(),
                    curve: d.curve25519_key().map(|k| k.to_base64()),
                },
            );
        }
    }
    let current = {
        let ledger = ctx.megolm_ledger()?;
        megolm::outbound(&client, &room_id, &ledger).await?
    };
    let olm_ledger = ctx.olm_ledger()?;
    let db = ctx.state()?;

    let mut cannot: BTreeSet<(String, String)> = BTreeSet::new();
    let mut unknown = 0usize;
    // Each session's record: kept, and the SDK's own for the room's
    // current session (the newest; merged so that a device withheld at
    // first keeps its code).
    let mut records = Vec::with_capacity(sent.len());
    for session in &sent {
        let record = db.shares(&session.session_id)?;
        let live = current.as_ref().filter(|c| c.session_id == session.session_id).map(|c| c.shared_with.clone());
        records.push(match (live, record) {
            (Some(live), Some(r)) => {
                Some(r.merged(crate::profile::state::ShareRecord { devices: live, ..Default::default() }))
            }
            (Some(live), None) => Some(crate::profile::state::ShareRecord { devices: live, ..Default::default() }),
            (None, record) => record,
        });
    }
    // The devices told m.no_olm in any of them: matrix-sdk says it once
    // per device, so a later session does not list them at all.
    let told_no_olm: BTreeSet<(String, String)> = records
        .iter()
        .flatten()
        .flat_map(|r| &r.devices)
        .filter(|d| d.withheld.as_deref() == Some("m.no_olm"))
        .map(|d| (d.user_id.clone(), d.device_id.clone()))
        .collect();
    let mut olm_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (session, record) in sent.iter().zip(records) {
        let indexes: Vec<u32> = session.events.iter().map(|(_, i)| *i).collect();
        let base = |cause, explanation: String| DeliveryRecord {
            room_id: room_id.to_string(),
            session_id: session.session_id.clone(),
            event_ids: session.events.iter().map(|(e, _)| e.clone()).collect(),
            message_indexes: indexes.clone(),
            user_id: None,
            device_id: None,
            given_from_index: None,
            withheld_code: None,
            can_read: None,
            unreadable_event_ids: Vec::new(),
            device_state: "gone",
            cross_signed: None,
            olm_sessions: None,
            cause,
            explanation,
            fix: Vec::new(),
            past: None,
        };
        let (devices, mut members, unreachable) = match record {
            Some(r) => (r.devices, r.members, r.unreachable),
            None => {
                unknown += 1;
                let d = delivery::diagnose(&Facts { indexes: &indexes, ..Default::default() });
                ctx.out.data(&base(d.cause, d.explanation))?;
                continue;
            }
        };
        members.extend(devices.iter().map(|d| d.user_id.clone()));
        let users_with_devices: BTreeSet<&str> = devices.iter().map(|d| d.user_id.as_str()).collect();
        let mut keys: BTreeSet<(String, String)> =
            devices.iter().map(|d| (d.user_id.clone(), d.device_id.clone())).collect();
        keys.extend(now.keys().cloned());
        keys.remove(&(me.to_string(), my_device.to_string()));
        for (user, device) in keys {
            let share: Option<&SharedWith> = devices.iter().find(|d| d.user_id == user && d.device_id == device);
            let here = now.get(&(user.clone(), device.clone()));
            let present = here.is_some_and(|n| !n.deleted);
            let server = user.split_once(':').map(|(_, s)| s).unwrap_or_default();
            let user_had_devices = users_with_devices.contains(user.as_str());
            // Olm sessions with it: looked up for the devices that can
            // read nothing of it, and for every device in a full view.
            let every = args.event.is_some() || args.all;
            let olm_sessions = match here.and_then(|n| n.curve.as_deref()) {
                Some(curve) if every || share.is_none_or(|s| s.message_index.is_none()) => {
                    // Once per device, whatever the number of sessions.
                    if !olm_counts.contains_key(curve) {
                        let n = olm::device_sessions(&client, curve, &olm_ledger).await?.sessions.len();
                        olm_counts.insert(curve.to_owned(), n);
                    }
                    olm_counts.get(curve).copied()
                }
                _ => None,
            };
            let d = delivery::diagnose(&Facts {
                indexes: &indexes,
                recorded: true,
                share,
                member_then: members.contains(&user),
                user_had_devices,
                server_unreachable: unreachable.iter().any(|s| s == server),
                present,
                cross_signed: here.is_some_and(|n| n.cross_signed),
                blacklisted: here.is_some_and(|n| n.blacklisted),
                own: user == me.as_str(),
                no_olm_session: share.is_none()
                    && olm_sessions == Some(0)
                    && told_no_olm.contains(&(user.clone(), device.clone())),
            });
            // A room's view: the devices that cannot read, of those in the
            // room now (one that left reads nothing new anyway; who joined
            // later was not meant to).
            if !every && (d.can_read != Some(false) || !present) {
                continue;
            }
            if d.can_read == Some(false) && present {
                cannot.insert((user.clone(), device.clone()));
            }
            let fix = d
                .remedies
                .iter()
                .map(|r| match r {
                    Remedy::Unblacklist => ratchet("trust").arg(&user).arg(&device).word("unset").to_string(),
                    Remedy::RotateShare => ratchet("rotate").arg(room_id.as_str()).word("--share").to_string(),
                    Remedy::VerifyOwn => ratchet("verify --self").arg(&device).to_string(),
                })
                .collect();
            let unreadable_event_ids =
                session.events.iter().filter(|(_, i)| d.unreadable.contains(i)).map(|(e, _)| e.clone()).collect();
            ctx.out.data(&DeliveryRecord {
                user_id: Some(user.clone()),
                device_id: Some(device.clone()),
                given_from_index: share.and_then(|s| s.message_index),
                withheld_code: share.and_then(|s| s.withheld.clone()),
                can_read: d.can_read,
                unreadable_event_ids,
                device_state: match here {
                    Some(n) if n.deleted => "deleted",
                    Some(_) => "known",
                    None => "gone",
                },
                cross_signed: here.map(|n| n.cross_signed),
                olm_sessions,
                fix,
                past: d.past.map(str::to_owned),
                ..base(d.cause, d.explanation)
            })?;
        }
    }
    match (cannot.len(), unknown) {
        (0, 0) => {
            ctx.out.status("Every device in the room was given the keys of these messages.");
            Ok(())
        }
        (0, n) => Err(CliError::new(
            ErrorKind::Partial,
            format!("{n} session(s) without a record of whom they were given to; see above"),
        )),
        (n, _) => Err(CliError::new(
            ErrorKind::Partial,
            format!("{n} device(s) in the room cannot read some of these messages; see the fixes above"),
        )),
    }
}

/// This device's encrypted messages among the room's last `limit` events
/// (or the one `--event` names), grouped by Megolm session, oldest first.
async fn own_messages(
    room: &matrix_sdk::Room,
    args: &DoctorArgs,
    limit: u32,
    me: &UserId,
    my_device: &str,
) -> CliResult<Vec<Sent>> {
    let mut sent: Vec<Sent> = Vec::new();
    let mut seen_event = false;
    for h in recent_history(room, limit).await? {
        let original = &h.original;
        let id = original["event_id"].as_str().unwrap_or_default();
        let wanted = args.event.as_ref().map(|e| e.as_str());
        if wanted.is_some_and(|w| w != id) {
            continue;
        }
        seen_event |= wanted.is_some();
        let sender = original["sender"].as_str().unwrap_or_default();
        let device = original["content"]["device_id"].as_str();
        let not_ours = if original["type"] != "m.room.encrypted" {
            Some("it is not encrypted: every member's device can read it".to_owned())
        } else if sender != me.as_str() {
            Some(format!(
                "it was sent by {sender}, not by this account: `doctor` explains what this device cannot read"
            ))
        } else if device.is_some_and(|d| d != my_device) {
            Some(format!(
                "it was sent by your device {}, not this one: run `doctor --sent` there",
                device.unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(why) = not_ours {
            if wanted.is_some() {
                return Err(CliError::failed(format!("{id}: {why}")));
            }
            continue;
        }
        let (Some(session_id), Some(index)) = crate::events::megolm_position(original) else { continue };
        match sent.iter_mut().find(|s| s.session_id == session_id) {
            Some(s) => s.events.push((id.to_owned(), index)),
            None => sent.push(Sent { session_id, events: vec![(id.to_owned(), index)] }),
        }
    }
    if let Some(wanted) = &args.event {
        if !seen_event {
            return Err(CliError::failed(format!("{wanted} is not among the last 1000 events of {}", args.room)));
        }
    }
    Ok(sent)
}
