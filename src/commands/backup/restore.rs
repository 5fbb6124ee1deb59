//! `ratchet backup restore`.

use clap::Args;
use matrix_sdk::ruma::{OwnedRoomId, RoomId};
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk;
use crate::ui::output::Record;

/// Download room keys from the backup: for one room, or every joined room.
///
/// Needs the backup key on this device (`recovery recover`). Keys already
/// held are kept; the count is of keys this device did not have. Messages
/// those keys unlock decrypt from then on (`messages`, `sync`).
///
/// Examples:
///
///   ratchet backup restore
///   ratchet backup restore '!room:example.org'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RestoreArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name; default: every joined room
    #[arg(value_parser = rooms::parse_room)]
    room: Option<rooms::RoomArg>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RestoredRecord {
    backup_version: String,
    rooms: usize,
    /// Room keys this device did not hold before.
    imported: usize,
}

impl Record for RestoredRecord {
    const TYPE: &'static str = "backup_restored";
    fn human(&self) -> String {
        format!(
            "restored {} room key(s) for {} room(s) from backup version {}",
            self.imported, self.rooms, self.backup_version
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_restore(ctx: &mut CommandContext, args: &RestoreArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let version = sdk::backup::version_here(&client).await?.ok_or_else(|| {
        CliError::failed("this device has no backup key").with_hint(format!(
            "`{}` with the account's recovery key brings it",
            crate::ui::hint::ratchet("recovery recover")
        ))
    })?;
    let rooms: Vec<OwnedRoomId> = match &args.room {
        Some(r) => vec![rooms::joined(&client, r).await?.room_id().to_owned()],
        None => client.joined_rooms().iter().map(|r| r.room_id().to_owned()).collect(),
    };
    let ids: Vec<&RoomId> = rooms.iter().map(|r| r.as_ref()).collect();
    let imported = sdk::backup::restore(&client, &ids).await?;
    ctx.retry_undecryptable(&client).await;
    ctx.out.data(&RestoredRecord { backup_version: version, rooms: rooms.len(), imported })
}
