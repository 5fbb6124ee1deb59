//! `ratchet room invite`.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::ui::output::Record;

/// Invite a user to a room, sharing the room's history with them.
///
/// In an encrypted room whose history visibility is `shared` (the
/// default) or `world_readable`, the invite first hands the invited user
/// the room keys this device has (history sharing on invite, MSC4268, as
/// Element does): they can read what was said before they came. Keys of
/// messages sent while the visibility was `joined` or `invited` are not
/// shared (they get `m.history_not_shared`). The room's keys are first
/// fetched from the key backup, when there is one.
///
/// Examples:
///
///   ratchet room invite '!room:example.org' @bob:example.org
///   ratchet room invite team bob --no-history
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct InviteArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// User id (@bob:example.org), or a bare name on your own server
    user: String,

    /// Invite without sharing the room's history (its room keys): they
    /// read only what is sent after they join.
    #[arg(long)]
    no_history: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InvitedRecord {
    room_id: String,
    user_id: String,
    /// Set when nothing was done: the user was already `joined` or
    /// `invited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    already: Option<&'static str>,
    /// In an encrypted room: `shared` (history sharing on invite) or
    /// `not_shared`; null in a room without encryption, or when nothing
    /// was done.
    history: Option<&'static str>,
    /// With `shared`: how many room keys went to them.
    history_keys: Option<usize>,
    /// With `shared`: keys not shareable (sent while the history
    /// visibility was `joined` or `invited`): they are told
    /// `m.history_not_shared` for those.
    history_not_shared: Option<usize>,
    /// With `not_shared`: why: `opted_out` (--no-history),
    /// `visibility_joined`, `visibility_invited` (the room's history
    /// visibility), `no_identity` (this account has no cross-signing
    /// identity).
    history_reason: Option<&'static str>,
}

impl Record for InvitedRecord {
    const TYPE: &'static str = "invited";
    fn human(&self) -> String {
        let history = match (self.history, self.history_reason) {
            (Some("shared"), _) => format!(
                "; shared history: {} room keys ({} not shareable)",
                self.history_keys.unwrap_or(0),
                self.history_not_shared.unwrap_or(0)
            ),
            (Some(_), Some("opted_out")) => "; history not shared (--no-history)".to_owned(),
            (Some(_), Some(why)) => format!("; history not shared: {}", why.replace('_', " ")),
            _ => String::new(),
        };
        match self.already {
            Some(state) if self.history == Some("shared") => {
                format!("{} is already {state} in {}{history}", self.user_id, self.room_id)
            }
            Some(state) => format!("{} is already {state} in {}; nothing to do", self.user_id, self.room_id),
            None => format!("invited {} to {}{history}", self.user_id, self.room_id),
        }
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_invite(ctx: &mut CommandContext, args: &InviteArgs) -> CliResult {
    let client = ctx.client().await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let user = rooms::parse_user(&args.user, &own)?;
    let room = rooms::joined(&client, &args.room).await?;
    if !args.no_history {
        // The room keys still queued for this device (a member's latest
        // session) are part of the history to share: take them first, as
        // a client that is always syncing would have.
        ctx.sync(&client).await?;
    }
    // Idempotent: inviting a member is no error. The invite goes first
    // (local membership may be stale); only when the server refuses it is
    // it asked what the user's membership is now.
    let encrypted = room.latest_encryption_state().await.map(|s| s.is_encrypted()).unwrap_or(false);
    // As matrix-sdk decides it: the identity this device knows locally.
    let has_identity = client.encryption().get_user_identity(&own).await.ok().flatten().is_some();
    let reason = match (encrypted, args.no_history) {
        (false, _) => None,
        (true, true) => Some("opted_out"),
        (true, false) => crate::sdk::history::not_shareable(&room, has_identity),
    };
    let invited = if args.no_history {
        invite_only(&room, &user).await
    } else {
        // matrix-sdk shares the history (when it can), then invites.
        room.invite_user_by_id(&user).await.map_err(CliError::from)
    };
    let already = match invited {
        Ok(()) => None,
        Err(e) => match membership_on_server(&room, &user).await {
            Some(state) => Some(state),
            None => return Err(e),
        },
    };
    let mut record = InvitedRecord {
        room_id: room.room_id().to_string(),
        user_id: user.to_string(),
        already,
        history: None,
        history_keys: None,
        history_not_shared: None,
        history_reason: None,
    };
    // Also for a member already there: matrix-sdk shared before the
    // server refused the invite (they take it within a day of joining).
    if encrypted && (already.is_none() || !args.no_history) {
        match reason {
            Some(why) => {
                record.history = Some("not_shared");
                record.history_reason = Some(why);
            }
            None => {
                let (keys, withheld) = crate::sdk::history::bundle_counts(&client, room.room_id()).await?;
                record.history = Some("shared");
                record.history_keys = Some(keys);
                record.history_not_shared = Some(withheld);
            }
        }
    }
    ctx.out.data(&record)
}

/// The invite alone, without the history sharing matrix-sdk does first.
async fn invite_only(room: &matrix_sdk::Room, user: &matrix_sdk::ruma::UserId) -> CliResult<()> {
    use matrix_sdk::ruma::api::client::membership::invite_user::{
        self,
        v3::{InvitationRecipient, InviteUserId},
    };
    let recipient = InvitationRecipient::UserId(InviteUserId::new(user.to_owned()));
    let request = invite_user::v3::Request::new(room.room_id().to_owned(), recipient);
    room.client().send(request).await?;
    Ok(())
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
