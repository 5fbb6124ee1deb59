//! `ratchet sync`: one incremental sync, or a stream of them with
//! `--follow`, printing what arrived (see `stream`): room events (decrypted
//! where possible), invites, rooms left, and to-device events, after what
//! other commands received and kept for it (`profile::inbox`).

use clap::Args;
use serde_json::Value;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::follow::{deliver, follow, kept_failures, sync_into_inbox, Following};
use crate::stream::{SyncSummary, Watcher};

/// Fetch what arrived since the last run and print it.
///
/// Without --follow, one sync that returns at once (it never waits for new
/// events). With --follow, keeps syncing and prints events as they arrive
/// until interrupted; Ctrl-C (or SIGTERM) exits 0, between syncs, so the
/// store never holds half of one.
///
/// A follower holds the profile only for each short sync, so every other
/// command on the same profile (send, rotate, unwedge, messages…) runs
/// meanwhile, from another terminal or script; what those commands receive
/// is printed by the follower, once. Only one process syncs at a time.
///
/// When an Olm-encrypted to-device message cannot be decrypted, the Olm
/// session with its sender is taken to be wedged and replaced (rules R9–R11):
/// a new session, an m.dummy over it, at most once per device per hour; then
/// an m.room_key_request for the sender's Megolm sessions that are
/// undecryptable in the same sync (R13). Each step is a `recovery` record.
/// --no-recover leaves it to matrix-sdk, which (0.18) never sends the m.dummy.
///
/// With --follow it also reports, across syncs: events that could not be
/// decrypted on arrival and decrypt once their key comes (late_decryption,
/// with how long that took), and senders moving to a new Megolm session
/// (rotation_seen).
///
/// Record types under --json: message, utd, event, invite, left, to_device,
/// recovery, late_decryption, rotation_seen, and a closing sync summary.
///
/// Examples:
///
///   ratchet sync
///   ratchet --json sync --follow | jq -c 'select(.type == "utd")'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SyncArgs {
    /// Keep syncing until interrupted
    #[arg(long, short)]
    follow: bool,

    /// Do not recover from undecryptable Olm messages (see what matrix-sdk
    /// alone does)
    #[arg(long)]
    no_recover: bool,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_sync(ctx: &mut CommandContext, args: &SyncArgs) -> CliResult {
    if args.follow {
        // A profile that cannot sync fails before the status line.
        ctx.client().await?;
        ctx.out.status("Following; Ctrl-C to stop.");
        return follow(ctx, Following { no_recover: args.no_recover, room: None, input: None }).await;
    }
    let client = ctx.client().await?;
    let mut ledger = ctx.olm_ledger();
    // What other commands received since the last `sync` comes first; the
    // Olm messages they could not decrypt are recovered from now.
    let kept = ctx.profile.inbox().read()?;
    let mut summary = SyncSummary::of_kept(&kept);
    let failures = kept_failures(&kept);
    let mut watcher = Watcher::default();
    let response = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args.no_recover, &failures).await?;
    summary.add(&response.1);
    // A key request from one of our own devices is answered by matrix-sdk
    // once it has an Olm session with that device: when it had to claim one
    // in this sync, the forward goes out with the next. One more sync
    // delivers it, so a one-shot `sync` answers at once.
    let asked = response
        .0
        .to_device
        .iter()
        .any(|e| e.to_raw().deserialize_as::<Value>().is_ok_and(|j| j["type"] == "m.room_key_request"));
    if asked {
        let more = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args.no_recover, &[]).await?;
        summary.add(&more.1);
    }
    deliver(ctx, None)?;
    ctx.out.data(&summary)
}
