//! `ratchet room info`.

use clap::Args;
use matrix_sdk::RoomMemberships;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::e2ee::rotation::RoomLimits;
use crate::e2ee::trust::Isolation;
use crate::error::CliResult;
use crate::rooms;
use crate::sdk::megolm;
use crate::ui::output::Record;

/// Show a room's effective encryption settings.
///
/// The rotation limits are shown as ratchet applies them: the room's
/// m.room.encryption values, with R5's defaults (100 messages, 604800000 ms)
/// filled in where the room leaves them out, and marked as defaults.
///
/// Example:
///
///   ratchet room info '!room:example.org'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct InfoArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RoomInfoRecord {
    room_id: String,
    name: Option<String>,
    encrypted: bool,
    algorithm: Option<String>,
    #[serde(flatten)]
    limits: Option<RoomLimits>,
    history_visibility: String,
    joined_members: usize,
    /// This profile's device-isolation mode (MSC4153): who gets its room keys.
    isolation: Isolation,
}

impl Record for RoomInfoRecord {
    const TYPE: &'static str = "room_info";
    fn human(&self) -> String {
        let mut s = format!("room       {}", self.room_id);
        if let Some(name) = &self.name {
            s.push_str(&format!("\nname       {}", crate::ui::terminal::inert(name)));
        }
        s.push_str(&format!("\nmembers    {} joined", self.joined_members));
        s.push_str(&format!("\nhistory    {}", self.history_visibility));
        s.push_str(&format!("\nisolation  {}", self.isolation.name()));
        match (&self.algorithm, &self.limits) {
            (Some(alg), Some(l)) => {
                let mark = |d: bool| if d { "  (default)" } else { "" };
                s.push_str(&format!(
                    "\nencryption {alg}\n  rotation_period_msgs {}{}\n  rotation_period_ms   {}{}",
                    l.rotation_period_msgs,
                    mark(l.rotation_period_msgs_is_default),
                    l.rotation_period_ms,
                    mark(l.rotation_period_ms_is_default)
                ));
                if l.kept_by_r3 {
                    s.push_str("\n  (the room loosened these since; the stricter limits are kept: R3)");
                }
            }
            _ => s.push_str("\nencryption off"),
        }
        s
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_info(ctx: &mut CommandContext, args: &InfoArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::find(&client, &args.room).await?;
    let settings = room.encryption_settings();
    // Read-only: the R3 record is consulted, not updated.
    let limits = megolm::room_limits(&room, &*ctx.megolm_ledger()?);
    ctx.out.data(&RoomInfoRecord {
        room_id: room.room_id().to_string(),
        name: room.name(),
        encrypted: settings.is_some(),
        algorithm: settings.as_ref().and_then(|s| s.algorithm.as_ref().map(|a| a.to_string())),
        limits,
        history_visibility: room.history_visibility_or_default().to_string(),
        joined_members: room.members(RoomMemberships::JOIN).await?.len(),
        isolation: ctx.isolation(),
    })
}
