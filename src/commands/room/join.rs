//! `ratchet room join`.

use clap::Args;
use matrix_sdk::ruma::OwnedRoomOrAliasId;
use tracing::instrument;

use super::RoomRecord;
use crate::context::CommandContext;
use crate::error::CliResult;
use crate::rooms;

/// Join a room you are invited to, or a public one, by id or alias.
///
/// Example:
///
///   ratchet room join '#team:example.org'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct JoinArgs {
    /// Room id (!…) or alias (#…:server)
    #[arg(value_parser = rooms::parse_room)]
    room: OwnedRoomOrAliasId,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_join(ctx: &mut CommandContext, args: &JoinArgs) -> CliResult {
    let client = ctx.client().await?;
    let room = client.join_room_by_id_or_alias(&args.room, &[]).await?;
    // The join response carries no state: one sync brings the room's state
    // (encryption settings, members) into the store and the record.
    ctx.sync(&client).await?;
    let room = client.get_room(room.room_id()).unwrap_or(room);
    ctx.out.data(&RoomRecord::of(&room))
}
