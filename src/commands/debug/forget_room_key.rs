//! `ratchet debug forget-room-key`: delete one inbound Megolm session.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use super::confirm;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk::megolm;
use crate::sdk::rawstore::RawCryptoStore;
use crate::ui::output::Record;

/// Delete one inbound Megolm session of a room: a missing key made on purpose.
///
/// Every message encrypted with that session then shows as undecryptable in
/// `ratchet messages` (exit 3) until the key comes back: `ratchet keys
/// import` of an earlier export, or `ratchet keys request`. Asks for
/// confirmation on a terminal; --yes otherwise.
///
/// Example:
///
///   ratchet debug forget-room-key '!room:example.org' SESSIONID --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ForgetRoomKeyArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
    /// The Megolm session id (from `ratchet sessions` or `messages`), or its
    /// first characters as shown, if they fit one session
    session_id: String,
    /// Do not ask for confirmation
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ForgotRoomKeyRecord {
    room_id: String,
    session_id: String,
    sender_key: String,
    first_known_index: u32,
}

impl Record for ForgotRoomKeyRecord {
    const TYPE: &'static str = "forgot_room_key";
    fn human(&self) -> String {
        format!(
            "deleted inbound Megolm session {} of {} (sender key {}, known from index {})",
            self.session_id, self.room_id, self.sender_key, self.first_known_index
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_forget_room_key(ctx: &mut CommandContext, args: &ForgetRoomKeyArgs) -> CliResult {
    let client = ctx.client().await?;
    let room = rooms::find(&client, &args.room).await?;
    let known = megolm::inbound_sessions(&client, room.room_id()).await?;
    let session_id =
        crate::ids::by_prefix("Megolm session", &args.session_id, known.iter().map(|s| s.session_id.as_str()))?
            .unwrap_or_else(|| args.session_id.clone());
    let session = megolm::inbound_session(&client, room.room_id(), &session_id).await?;
    let session = session.ok_or_else(|| {
        CliError::failed(format!("this device holds no Megolm session {} for {}", args.session_id, args.room))
            .with_hint(format!(
                "`{}` lists the inbound sessions",
                crate::ui::hint::ratchet("sessions").arg(room.room_id().as_str())
            ))
    })?;
    let record = ForgotRoomKeyRecord {
        room_id: room.room_id().to_string(),
        session_id: session_id.clone(),
        sender_key: session.sender_key,
        first_known_index: session.first_known_index,
    };
    confirm(ctx, args.yes, &format!("Delete the room key {session_id} of {}?", args.room))?;
    let secret = ctx.close_client().await?;
    RawCryptoStore::open(&ctx.profile.paths().crypto_db(), &secret)?
        .delete_inbound_group_session(&record.room_id, &record.session_id)?;
    ctx.out.data(&record)
}
