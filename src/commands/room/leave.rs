//! `ratchet room leave`.

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::events::LeftRecord;
use crate::rooms;

/// Leave a room (or decline an invite).
///
/// Example:
///
///   ratchet room leave '!room:example.org'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct LeaveArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_leave(ctx: &mut CommandContext, args: &LeaveArgs) -> CliResult {
    let client = ctx.client().await?;
    let room = rooms::find(&client, &args.room).await?;
    room.leave().await?;
    ctx.out.data(&LeftRecord { room_id: room.room_id().to_string() })
}
