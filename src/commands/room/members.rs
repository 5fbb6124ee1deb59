//! `ratchet room members`.

use clap::Args;
use matrix_sdk::RoomMemberships;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::rooms;
use crate::ui::output::Record;
use crate::ui::terminal::inert;

/// List a room's members (joined and invited): who room keys go to.
///
/// Example:
///
///   ratchet --json room members '!room:example.org' | jq -r .user_id
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct MembersArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct MemberRecord {
    room_id: String,
    user_id: String,
    display_name: Option<String>,
    /// join or invite
    membership: String,
}

impl Record for MemberRecord {
    const TYPE: &'static str = "member";
    fn human(&self) -> String {
        let name = self.display_name.as_deref().map(|n| format!("  \"{}\"", inert(n))).unwrap_or_default();
        format!("{}  {}{name}", self.user_id, self.membership)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_members(ctx: &mut CommandContext, args: &MembersArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let mut members = room.members(RoomMemberships::ACTIVE).await?;
    members.sort_by(|a, b| a.user_id().cmp(b.user_id()));
    for m in members {
        ctx.out.data(&MemberRecord {
            room_id: room.room_id().to_string(),
            user_id: m.user_id().to_string(),
            display_name: m.display_name().map(str::to_owned),
            membership: m.membership().to_string(),
        })?;
    }
    Ok(())
}
