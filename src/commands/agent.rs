//! `ratchet agent`: a warm client for the profile, for `send`s from other
//! processes (`warm`), that prints nothing it receives.

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::follow::{follow, Following};

/// Keep a warm client for this profile, so that `send` from scripts is fast.
///
/// Runs until Ctrl-C or SIGTERM (exit 0). Meanwhile every `ratchet send ROOM
/// TEXT…` on the same profile hands its messages to it over a socket in
/// the profile directory (`send.sock`, owner only) instead of restoring and
/// syncing a client of its own: the same records, warnings and exit
/// status, in about half the time. `sync --follow` and `chat` serve sends
/// the same way; the agent is for scripts and bots that send and do not
/// read.
///
/// It follows as `sync --follow` does (turn by turn, recovering from wedged
/// Olm sessions, backing up room keys) but prints nothing it receives:
/// every record stays for the next `ratchet sync`. Like a follower, it
/// holds the profile only while it syncs or sends, so every other command
/// runs meanwhile. Lines from stdin (`send` with no TEXT) are always sent by
/// the `send` process itself, and `send --standalone` never hands over.
///
/// Examples:
///
///   ratchet agent &
///   for i in $(seq 100); do ratchet send ops "build $i done"; done
///   kill %1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AgentArgs {}

#[instrument(skip_all)]
pub(crate) async fn cmd_agent(ctx: &mut CommandContext, _args: &AgentArgs) -> CliResult {
    ctx.client().await?;
    let how = Following {
        no_recover: false,
        room: None,
        input: None,
        deliver: false,
        started: "Agent running: `send` on this profile goes through it; Ctrl-C to stop.".into(),
        view_after: None,
    };
    follow(ctx, how, None).await
}
