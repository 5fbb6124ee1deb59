//! `ratchet messages`: recent room history, decrypted here, with each
//! encrypted event's Megolm session and message index as read from its own
//! ciphertext. Undecryptable events are shown with the SDK's reason and make
//! the exit status 3.

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::events::{recent_history, render, HistoryEvent, Rendered};
use crate::rooms;

/// Show recent messages in a room, decrypted.
///
/// Syncs first, so room keys that arrived since the last run are used. Each
/// encrypted message shows the Megolm session and the message index it was
/// encrypted at, read from the ciphertext itself. An event that cannot be
/// decrypted is shown with the reason and its session id, and the exit status
/// is then 3.
///
/// Examples:
///
///   ratchet messages '!room:example.org' --limit 50
///   ratchet --json messages '#team:example.org' | jq -r 'select(.type=="message") | .body'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct MessagesArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// How many of the most recent events to fetch (1–1000): events, not
    /// messages (state changes and reactions count too)
    #[arg(
        long,
        short = 'n',
        default_value = "20",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    limit: u32,

    /// Also show state events (membership, encryption settings, …)
    #[arg(long)]
    all: bool,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_messages(ctx: &mut CommandContext, args: &MessagesArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;

    let (mut shown, mut utd) = (0usize, 0usize);
    let mut from_backup = 0usize;
    for HistoryEvent { original, event, key_from_backup } in recent_history(&room, args.limit).await? {
        match render(room.room_id().as_str(), &event, Some(&original)) {
            Rendered::Message(mut r) => {
                shown += 1;
                if key_from_backup {
                    from_backup += 1;
                    r.key_from_backup = true;
                }
                ctx.out.data(&r)?
            }
            Rendered::Utd(r) => {
                shown += 1;
                utd += 1;
                ctx.out.data(&r)?
            }
            Rendered::Other(r) if args.all => ctx.out.data(&r)?,
            Rendered::Other(_) => {}
        }
    }
    if from_backup > 0 {
        ctx.out.status(format!("{from_backup} message(s) decrypted with room keys from the key backup"));
    }
    if utd > 0 {
        return Err(CliError::new(ErrorKind::Partial, format!("{utd} of {shown} messages could not be decrypted"))
            .with_hint("the reason is on each `utd` line; the sender may not have shared the key with this device")
            .with_hint(format!(
                "`{}` explains each one and names the fix",
                crate::ui::hint::ratchet("doctor").arg(room.room_id().as_str())
            )));
    }
    Ok(())
}
