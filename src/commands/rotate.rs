//! `ratchet rotate` (alias `discard-session`): force a new Megolm session.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::e2ee::rotation::Rotation;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk::megolm;
use crate::ui::output::Record;

/// Discard the room's outbound Megolm session: the next message starts a new one.
///
/// Element users know this as /discardsession. The old session stays valid
/// for everything already sent with it; nothing more is encrypted with it.
/// The next `ratchet send` reports its first message with rotation "forced".
///
/// With --share the new session is created and shared with every device in
/// the room now, over Olm, without sending a room message: receivers hold the
/// key before any message uses it.
///
/// Examples:
///
///   ratchet rotate '!room:example.org'
///   ratchet --json rotate '!room:example.org' --share | jq -r .new_session_id
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RotateArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// Create and share the new session now
    #[arg(long)]
    share: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RotatedRecord {
    room_id: String,
    /// The discarded session; `None` when the room had none.
    old_session_id: Option<String>,
    /// With --share: the session now shared with the room.
    new_session_id: Option<String>,
    /// With --share: how many to-device requests carried the key.
    to_device_requests: Option<usize>,
}

impl Record for RotatedRecord {
    const TYPE: &'static str = "rotated";
    fn human(&self) -> String {
        let old = self.old_session_id.as_deref().unwrap_or("(none)");
        match &self.new_session_id {
            Some(new) => format!("discarded {old}\nshared    {new}"),
            None => format!("discarded {old}\nthe next message starts a new session"),
        }
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_rotate(ctx: &mut CommandContext, args: &RotateArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    if !room.latest_encryption_state().await?.is_encrypted() {
        return Err(CliError::failed(format!("{} is not encrypted: it has no Megolm session", args.room)).with_hint(
            format!("`{}` turns encryption on", crate::ui::hint::ratchet("encrypt").arg(room.room_id().as_str())),
        ));
    }
    let mut ledger = ctx.megolm_ledger()?;
    let old = megolm::outbound(&client, room.room_id(), &ledger).await?;
    room.discard_room_key().await?;
    if let Some(old) = &old {
        ledger.record_discard(room.room_id(), &old.session_id, Rotation::Forced);
    }
    let mut record = RotatedRecord {
        room_id: room.room_id().to_string(),
        old_session_id: old.map(|o| o.session_id),
        new_session_id: None,
        to_device_requests: None,
    };
    if args.share {
        let started = crate::clock::now_ms();
        let shared = megolm::preshare(&room).await?;
        crate::batch::warn_unreachable(&ctx.out, &shared.unreachable);
        crate::batch::keep_shares(&ctx.out, ctx.state(), shared.record.into_iter().collect());
        record.to_device_requests = Some(shared.requests);
        let new = megolm::outbound(&client, room.room_id(), &ledger)
            .await?
            .ok_or_else(|| CliError::internal("no outbound session after sharing one"))?;
        ledger.record_new(room.room_id(), &new.session_id, started);
        record.new_session_id = Some(new.session_id);
    }
    ledger.save()?;
    ctx.out.data(&record)
}
