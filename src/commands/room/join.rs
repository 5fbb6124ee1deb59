//! `ratchet room join`.

use clap::Args;
use tracing::instrument;

use super::RoomRecord;
use crate::context::CommandContext;
use crate::error::CliResult;
use crate::rooms;

/// Join a room you are invited to, or a public one.
///
/// By id or alias; a room you are invited to may also be given by its name.
///
/// Example:
///
///   ratchet room join '#team:example.org'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct JoinArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_join(ctx: &mut CommandContext, args: &JoinArgs) -> CliResult {
    let client = ctx.client().await?;
    if matches!(args.room, rooms::RoomArg::Name(_)) {
        // A name is looked up among the rooms we are invited to: the
        // invitation may have come since the last sync.
        ctx.sync(&client).await?;
    }
    let target = rooms::join_target(&client, &args.room).await?;
    let room = client.join_room_by_id_or_alias(&target, &[]).await?;
    // The join response carries no state: one sync brings the room's state
    // (encryption settings, members) into the store and the record.
    ctx.sync(&client).await?;
    let room = client.get_room(room.room_id()).unwrap_or(room);
    ctx.out.data(&RoomRecord::of(&room))
}
