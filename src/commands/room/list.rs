//! `ratchet room list`.

use clap::Args;
use tracing::instrument;

use super::RoomRecord;
use crate::context::CommandContext;
use crate::error::CliResult;

/// List the rooms this account is in or invited to.
///
/// Syncs first (without waiting), so the list is current.
///
/// Examples:
///
///   ratchet room list
///   ratchet --json room list | jq -r 'select(.encrypted) | .room_id'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ListArgs {
    /// Also list rooms you have left
    #[arg(long)]
    all: bool,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_list(ctx: &mut CommandContext, args: &ListArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let mut rooms = client.rooms();
    rooms.sort_by(|a, b| a.room_id().cmp(b.room_id()));
    for room in rooms {
        let record = RoomRecord::of(&room);
        if args.all || matches!(room.state(), matrix_sdk::RoomState::Joined | matrix_sdk::RoomState::Invited) {
            ctx.out.data(&record)?;
        }
    }
    Ok(())
}
