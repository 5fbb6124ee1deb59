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
    // A name is looked up among the rooms we are invited to, and an
    // invite's inviter is what history sharing (MSC4268) takes keys from:
    // the invitation may have come since the last sync.
    ctx.sync(&client).await?;
    let target = rooms::join_target(&client, &args.room).await?;
    // By room id, always: matrix-sdk 0.18 takes the inviter's shared
    // history only on a join by id (matrix-rust-sdk#6618, fixed in 0.19).
    let (room_id, via) = match matrix_sdk::ruma::OwnedRoomId::try_from(target) {
        Ok(id) => (id, Vec::new()),
        Err(alias) => {
            let resolved = client.resolve_room_alias(&alias).await?;
            (resolved.room_id, resolved.servers)
        }
    };
    // Who invited us (history comes from them), and whether the room's
    // history is shared with new members at all.
    let invite = client.get_room(&room_id).filter(|r| r.state() == matrix_sdk::RoomState::Invited);
    let inviter = match &invite {
        Some(r) => r.invite_details().await.ok().and_then(|d| d.inviter).map(|m| m.user_id().to_owned()),
        None => None,
    };
    let by_id: matrix_sdk::ruma::OwnedRoomOrAliasId = room_id.into();
    let room = client.join_room_by_id_or_alias(&by_id, &via).await?;
    // The join response carries no state: one sync brings the room's state
    // (encryption settings, members) into the store and the record; it
    // also takes a shared history that came with the invite but after it.
    ctx.sync(&client).await?;
    let room = client.get_room(room.room_id()).unwrap_or(room);
    let mut record = RoomRecord::of(&room);
    let (keys, by) = crate::sdk::history::bundled_keys(&client, room.room_id()).await?;
    if keys > 0 {
        ctx.out.status(format!(
            "{keys} room keys of the history before you joined, shared by {}",
            crate::ui::terminal::inert(by.as_deref().unwrap_or("?"))
        ));
        record.history_keys = Some(keys);
        record.history_shared_by = by;
    } else if let Some(inviter) = inviter.filter(|_| room.encryption_state().is_encrypted()) {
        let db = ctx.profile.state()?;
        if crate::sdk::history::refused_from(db, inviter.as_str())?.is_some() {
            // Their history bundle was most likely among what matrix-sdk
            // dropped (matrix-rust-sdk#5770): sharing again reaches us now.
            record.history_refused_from = Some(inviter.to_string());
            ctx.out.warn(format!(
                "no history came with the invite: this device refused a message from {who} before it knew their \
                 identity (exclude-insecure mode; matrix-sdk 0.18 drops it: matrix-rust-sdk#5770). It knows them \
                 now; for the history, {who} can share it again, within a day, with: {hint}",
                who = crate::ui::terminal::inert(inviter.as_str()),
                hint = crate::ui::hint::theirs("room invite")
                    .arg(room.room_id().as_str())
                    .arg(client.user_id().map(|u| u.as_str()).unwrap_or("?")),
            ));
        }
    }
    ctx.out.data(&record)
}
