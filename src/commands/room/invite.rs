//! `ratchet room invite`.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::ui::output::Record;

/// Invite a user to a room.
///
/// Example:
///
///   ratchet room invite '!room:example.org' @bob:example.org
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct InviteArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// User id (@bob:example.org), or a bare name on your own server
    user: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InvitedRecord {
    room_id: String,
    user_id: String,
}

impl Record for InvitedRecord {
    const TYPE: &'static str = "invited";
    fn human(&self) -> String {
        format!("invited {} to {}", self.user_id, self.room_id)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_invite(ctx: &mut CommandContext, args: &InviteArgs) -> CliResult {
    let client = ctx.client().await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let user = rooms::parse_user(&args.user, &own)?;
    let room = rooms::joined(&client, &args.room).await?;
    room.invite_user_by_id(&user).await?;
    ctx.out.data(&InvitedRecord { room_id: room.room_id().to_string(), user_id: user.to_string() })
}
