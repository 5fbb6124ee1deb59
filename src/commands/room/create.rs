//! `ratchet room create`.

use clap::Args;
use matrix_sdk::ruma::api::client::room::create_room::v3::{Request, RoomPreset};
use matrix_sdk::ruma::events::InitialStateEvent;
use tracing::instrument;

use super::RoomRecord;
use crate::context::CommandContext;
use crate::e2ee::rotation::{parse_rotation_ms, parse_rotation_msgs, RotationSettings};
use crate::error::{CliError, CliResult};
use crate::rooms;

/// Create a private room, optionally encrypted, and invite people.
///
/// With --encrypted the room is created with `m.room.encryption` in its
/// initial state (algorithm m.megolm.v1.aes-sha2, rule R1), so no message is
/// ever sent in it unencrypted; --rotation-msgs and --rotation-ms set the
/// Megolm rotation limits (R2, R5).
///
/// Examples:
///
///   ratchet room create --name team --encrypted --invite @bob:example.org
///   ratchet room create --alias ops --encrypted; ratchet send ops 'hello'
///   ratchet room create --encrypted --rotation-msgs 3 --rotation-ms 60000
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CreateArgs {
    /// Room name
    #[arg(long)]
    name: Option<String>,

    /// Room topic
    #[arg(long)]
    topic: Option<String>,

    /// Publish the alias #LOCAL:<your server> for the room (the room can
    /// then be given as #LOCAL, or LOCAL)
    #[arg(long, value_name = "LOCAL", value_parser = parse_alias_local)]
    alias: Option<String>,

    /// Invite this user (repeatable); a bare name means one on your server
    #[arg(long, value_name = "USER")]
    invite: Vec<String>,

    /// Enable end-to-end encryption from the start
    #[arg(long)]
    encrypted: bool,

    /// Rotate the Megolm session after this many messages (rotation_period_msgs) [default: 100]
    #[arg(long, value_name = "N", requires = "encrypted", value_parser = parse_rotation_msgs, allow_negative_numbers = true)]
    rotation_msgs: Option<u64>,

    /// Rotate the Megolm session after this many milliseconds (rotation_period_ms) [default: 604800000]
    #[arg(long, value_name = "MS", requires = "encrypted", value_parser = parse_rotation_ms, allow_negative_numbers = true)]
    rotation_ms: Option<u64>,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_create(ctx: &mut CommandContext, args: &CreateArgs) -> CliResult {
    let client = ctx.client().await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let invite = args.invite.iter().map(|u| rooms::parse_user(u, &own)).collect::<CliResult<Vec<_>>>()?;

    let mut request = Request::new();
    request.name = args.name.clone();
    request.topic = args.topic.clone();
    request.room_alias_name = args.alias.clone();
    request.invite = invite;
    request.preset = Some(RoomPreset::PrivateChat);
    if args.encrypted {
        let settings =
            RotationSettings { rotation_period_msgs: args.rotation_msgs, rotation_period_ms: args.rotation_ms };
        let content = settings.content();
        request.initial_state = vec![InitialStateEvent::with_empty_state_key(content).to_raw_any()];
    }
    let room = client.create_room(request).await?;
    // Fetch the new room's state so the record (and the store) knows it.
    ctx.sync(&client).await?;
    let room = client.get_room(room.room_id()).unwrap_or(room);
    ctx.out.data(&RoomRecord::of(&room))
}

/// An alias's local part: what follows `#`, before `:server`.
fn parse_alias_local(s: &str) -> Result<String, String> {
    let local = s.strip_prefix('#').unwrap_or(s);
    if local.is_empty() || local.contains(':') || local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{s}` is not an alias's local part (e.g. `ops` for #ops:your.server)"));
    }
    Ok(local.to_owned())
}
