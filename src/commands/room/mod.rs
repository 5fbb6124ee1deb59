//! `ratchet room …`: creating, joining, inviting, leaving, listing rooms and their members.

use clap::Subcommand;
use matrix_sdk::{Room, RoomState};
use serde::Serialize;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::ui::output::Record;

pub(crate) mod create;
pub(crate) mod info;
pub(crate) mod invite;
pub(crate) mod join;
pub(crate) mod leave;
pub(crate) mod list;
pub(crate) mod members;

/// Create, join, invite to, leave and list rooms.
#[derive(Debug, Subcommand)]
pub(crate) enum RoomCommand {
    Create(create::CreateArgs),
    Join(join::JoinArgs),
    Invite(invite::InviteArgs),
    Leave(leave::LeaveArgs),
    List(list::ListArgs),
    Info(info::InfoArgs),
    Members(members::MembersArgs),
}

pub(crate) async fn run(ctx: &mut CommandContext, command: &RoomCommand) -> CliResult {
    match command {
        RoomCommand::Create(args) => create::cmd_create(ctx, args).await,
        RoomCommand::Join(args) => join::cmd_join(ctx, args).await,
        RoomCommand::Invite(args) => invite::cmd_invite(ctx, args).await,
        RoomCommand::Leave(args) => leave::cmd_leave(ctx, args).await,
        RoomCommand::List(args) => list::cmd_list(ctx, args).await,
        RoomCommand::Info(args) => info::cmd_info(ctx, args).await,
        RoomCommand::Members(args) => members::cmd_members(ctx, args).await,
    }
}

/// One room, as `room create/join/list` print it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RoomRecord {
    room_id: String,
    name: Option<String>,
    /// joined, invited, left, knocked or banned
    state: &'static str,
    encrypted: bool,
    /// `room join` only: room keys of the history before you joined that
    /// the inviter shared (MSC4268); absent when none came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) history_keys: Option<usize>,
    /// With `history_keys`: who shared them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) history_shared_by: Option<String>,
    /// `room join` only: the inviter whose history this device refused
    /// (exclude-insecure mode, their identity not known yet when it came:
    /// matrix-rust-sdk#5770); they can share it again with `room invite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) history_refused_from: Option<String>,
}

impl RoomRecord {
    pub(crate) fn of(room: &Room) -> Self {
        RoomRecord {
            room_id: room.room_id().to_string(),
            name: room.name(),
            state: match room.state() {
                RoomState::Joined => "joined",
                RoomState::Invited => "invited",
                RoomState::Left => "left",
                RoomState::Knocked => "knocked",
                RoomState::Banned => "banned",
            },
            // An invited room's state is the stripped state of the invite:
            // its m.room.encryption counts too.
            encrypted: room.encryption_state().is_encrypted() || room.encryption_settings().is_some(),
            history_keys: None,
            history_shared_by: None,
            history_refused_from: None,
        }
    }
}

impl Record for RoomRecord {
    const TYPE: &'static str = "room";
    fn human(&self) -> String {
        let lock = if self.encrypted { "encrypted" } else { "not encrypted" };
        let name = self.name.as_deref().map(|n| format!("  \"{}\"", crate::ui::terminal::inert(n))).unwrap_or_default();
        format!("{}  {}  {lock}{name}", self.room_id, self.state)
    }
}
