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
    /// Set when nothing was done: the user was already `joined` or
    /// `invited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    already: Option<&'static str>,
}

impl Record for InvitedRecord {
    const TYPE: &'static str = "invited";
    fn human(&self) -> String {
        match self.already {
            Some(state) => format!("{} is already {state} in {}; nothing to do", self.user_id, self.room_id),
            None => format!("invited {} to {}", self.user_id, self.room_id),
        }
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_invite(ctx: &mut CommandContext, args: &InviteArgs) -> CliResult {
    let client = ctx.client().await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let user = rooms::parse_user(&args.user, &own)?;
    let room = rooms::joined(&client, &args.room).await?;
    // Idempotent: inviting a member is no error. The invite goes first
    // (local membership may be stale); only when the server refuses it is
    // it asked what the user's membership is now.
    let already = match room.invite_user_by_id(&user).await {
        Ok(()) => None,
        Err(e) => match membership_on_server(&room, &user).await {
            Some(state) => Some(state),
            None => return Err(e.into()),
        },
    };
    ctx.out.data(&InvitedRecord { room_id: room.room_id().to_string(), user_id: user.to_string(), already })
}

/// The user's membership as the server has it now: `joined`, `invited` or
/// none.
async fn membership_on_server(room: &matrix_sdk::Room, user: &matrix_sdk::ruma::UserId) -> Option<&'static str> {
    use matrix_sdk::ruma::api::client::state::get_state_event_for_key;
    use matrix_sdk::ruma::events::StateEventType;
    let request = get_state_event_for_key::v3::Request::new(
        room.room_id().to_owned(),
        StateEventType::RoomMember,
        user.to_string(),
    );
    let response = room.client().send(request).await.ok()?;
    let content: serde_json::Value = serde_json::from_str(response.event_or_content.get()).ok()?;
    match content["membership"].as_str()? {
        "join" => Some("joined"),
        "invite" => Some("invited"),
        _ => None,
    }
}
