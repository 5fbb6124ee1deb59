//! `ratchet sessions`: a room's Megolm sessions, outbound and inbound.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::clock::format_ts;
use crate::context::CommandContext;
use crate::e2ee::rotation::SharedWith;
use crate::e2ee::trust::Isolation;
use crate::error::{CliError, CliResult};
use crate::events::short;
use crate::rooms;
use crate::sdk::megolm;
use crate::ui::output::Record;

/// Show a room's Megolm sessions: the outbound one, and the inbound ones.
///
/// Outbound: id, creation time and age, messages encrypted against
/// rotation_period_msgs, time left against rotation_period_ms (rule R5),
/// whether it is expired or invalidated, and each device it was shared with
/// and from which message index. Inbound: every session this device holds
/// for the room, with its sender, first known index, and whether it was
/// imported. Never any key material.
///
/// Examples:
///
///   ratchet sessions '!room:example.org'
///   ratchet --json sessions '!room:example.org' | jq 'select(.type=="outbound_session") | .messages_left'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SessionsArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct OutboundRecord {
    room_id: String,
    session_id: String,
    created_ms: u64,
    /// False when only the SDK's whole-second creation time is known.
    created_precise: bool,
    age_ms: u64,
    messages_encrypted: u64,
    rotation_period_msgs: u64,
    messages_left: u64,
    rotation_period_ms: u64,
    time_left_ms: u64,
    /// A limit is reached: the next message will use a new session.
    expired: bool,
    expired_reason: Option<&'static str>,
    /// Discarded (by `ratchet rotate` or by the SDK).
    invalidated: bool,
    shared: bool,
    shared_with: Vec<SharedWith>,
    /// This profile's device-isolation mode (MSC4153): in exclude-insecure,
    /// devices not cross-signed by their owner show `withheld: m.unverified`.
    isolation: Isolation,
}

impl Record for OutboundRecord {
    const TYPE: &'static str = "outbound_session";
    fn human(&self) -> String {
        let mut s = format!(
            "outbound {}\n  created   {} (age {})\n  messages  {} of {} ({} left)\n  time left {} of {}",
            self.session_id,
            format_ts(self.created_ms),
            duration(self.age_ms),
            self.messages_encrypted,
            self.rotation_period_msgs,
            self.messages_left,
            duration(self.time_left_ms),
            duration(self.rotation_period_ms),
        );
        if self.invalidated {
            s.push_str("\n  INVALIDATED: the next message starts a new session");
        } else if let Some(reason) = self.expired_reason {
            s.push_str(&format!("\n  EXPIRED ({reason}): the next message starts a new session"));
        }
        s.push_str(&format!(
            "\n  shared with {} device(s) (isolation: {})",
            self.shared_with.len(),
            self.isolation.name()
        ));
        for d in &self.shared_with {
            let how = match (&d.message_index, &d.withheld) {
                (Some(i), _) => format!("from index {i}"),
                (None, Some(code)) => format!("withheld: {code}"),
                _ => "?".into(),
            };
            s.push_str(&format!("\n    {} {}  {how}", d.user_id, d.device_id));
        }
        s
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InboundRecord {
    room_id: String,
    session_id: String,
    sender_key: String,
    /// The sending user and device, when the SDK could tie the key to them.
    sender: Option<String>,
    sender_device: Option<String>,
    first_known_index: u32,
    /// From the backup, a key file, a forward, or history shared on invite.
    imported: bool,
    /// From history shared on invite (MSC4268): the user who shared it
    /// (null otherwise).
    shared_by: Option<String>,
}

impl Record for InboundRecord {
    const TYPE: &'static str = "inbound_session";
    fn human(&self) -> String {
        let who = match (&self.sender, &self.sender_device) {
            (Some(u), Some(d)) => format!("{u} {d}"),
            (Some(u), None) => u.clone(),
            _ => format!("key {}", short(&self.sender_key)),
        };
        let imported = match (&self.shared_by, self.imported) {
            (Some(by), _) => format!(", history shared by {}", crate::ui::terminal::inert(by)),
            (None, true) => ", imported".to_owned(),
            (None, false) => String::new(),
        };
        format!("inbound  {}  from {who}, first known index {}{imported}", self.session_id, self.first_known_index)
    }
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=119 => format!("{}.{:03}s", s, ms % 1000),
        120..=7199 => format!("{}m{:02}s", s / 60, s % 60),
        7200..=172_799 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_sessions(ctx: &mut CommandContext, args: &SessionsArgs) -> CliResult {
    let client = ctx.client().await?;
    // Room keys that arrived since the last run are in the next sync.
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    ctx.out.status(format!("Megolm sessions of {}:", rooms::label(&room)));
    // Read-only: the R3 record is consulted, not updated.
    let ledger = ctx.megolm_ledger()?;
    let limits = megolm::room_limits(&room, &ledger)
        .ok_or_else(|| CliError::failed(format!("{} is not encrypted: it has no Megolm sessions", args.room)))?;
    let now = crate::clock::now_ms();
    match megolm::outbound(&client, room.room_id(), &ledger).await? {
        Some(o) => {
            let reason = o.limit_reached(&limits, now).map(|r| r.name());
            ctx.out.data(&OutboundRecord {
                room_id: room.room_id().to_string(),
                age_ms: o.age_ms(now),
                messages_left: limits.rotation_period_msgs.saturating_sub(o.message_count),
                time_left_ms: limits.rotation_period_ms.saturating_sub(o.age_ms(now)),
                expired: reason.is_some(),
                expired_reason: reason,
                rotation_period_msgs: limits.rotation_period_msgs,
                rotation_period_ms: limits.rotation_period_ms,
                session_id: o.session_id,
                created_ms: o.created_ms,
                created_precise: o.created_precise,
                messages_encrypted: o.message_count,
                invalidated: o.invalidated,
                shared: o.shared,
                shared_with: o.shared_with,
                isolation: ctx.isolation(),
            })?;
        }
        None => ctx.out.status("No outbound session: the next message starts one."),
    }

    for s in megolm::inbound_sessions(&client, room.room_id()).await? {
        ctx.out.data(&InboundRecord {
            room_id: room.room_id().to_string(),
            session_id: s.session_id,
            sender_key: s.sender_key,
            sender: s.sender,
            sender_device: s.sender_device,
            first_known_index: s.first_known_index,
            imported: s.imported,
            shared_by: s.shared_by,
        })?;
    }
    Ok(())
}
