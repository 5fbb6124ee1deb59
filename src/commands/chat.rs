//! `ratchet chat`: follow one room and send each line of stdin to it.

use std::io::BufRead;

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::follow::{follow, Following, Line};
use crate::rooms;

/// Follow one room and send each line of stdin to it.
///
/// Prints the room's events as they arrive (as `sync --follow` does, for
/// this room only) and sends every non-empty line read from stdin as a
/// message, with the same rotation rules as `send` (R4, R5); each shows the
/// Megolm session and index it used. Ends at the end of stdin (Ctrl-D) once
/// everything read went out, or at Ctrl-C or SIGTERM, between syncs (exit 0).
///
/// chat is a view: it shows this room's records (with their cursors under
/// --json) but consumes none. At start it shows what its own first sync
/// brings, then what arrives; --replay first shows the room's records that
/// `sync` has not delivered yet (otherwise a second start would show them
/// again). Everything it shows, and the events of other
/// rooms, to-device events and recovery steps, stays for the next
/// `ratchet sync`, which prints each record once. Like a follower,
/// chat holds the profile only while it syncs or sends, so other ratchet
/// commands on the same profile run meanwhile.
///
/// Examples:
///
///   ratchet chat ops
///   ratchet --json chat '!room:example.org' < questions.txt
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ChatArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// First show the room's records not yet delivered by `sync`
    #[arg(long)]
    replay: bool,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_chat(ctx: &mut CommandContext, args: &ChatArgs) -> CliResult {
    let client = ctx.client().await?;
    let before = ctx.state()?.last_seq()?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let following = Following {
        no_recover: false,
        room: Some(room.room_id().to_owned()),
        input: Some(stdin_lines()),
        deliver: true,
        started: format!("Chatting in {}: each line is sent; Ctrl-D to end.", rooms::label(&room)),
        view_after: if args.replay { None } else { Some(before) },
    };
    follow(ctx, following, None).await
}

/// Lines of stdin, read on a thread of their own (a read blocks); the
/// channel closes at the end of stdin. Blank lines are skipped, as by
/// `send`.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<Line> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for (n, raw) in std::io::stdin().lock().split(b'\n').enumerate() {
            let Ok(raw) = raw else { break };
            let line = match crate::batch::decode_line(raw) {
                Ok(Some(text)) => Ok(text),
                Ok(None) => continue,
                Err(()) => Err(n + 1),
            };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
