//! `ratchet sync`: one incremental sync, or a stream of them with
//! `--follow`, printing what arrived (see `stream`): room events (decrypted
//! where possible), invites, rooms left, and to-device events, after what
//! other commands received and kept for it (`profile::inbox`).

use std::time::Duration;

use clap::Args;
use serde_json::Value;
use tracing::instrument;

use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::error::CliResult;
use crate::sdk::recovery;
use crate::stream::{print_response, SyncSummary, Watcher};

/// Fetch what arrived since the last run and print it.
///
/// Without --follow, one sync that returns at once (it never waits for new
/// events). With --follow, keeps syncing and prints events as they arrive
/// until interrupted; Ctrl-C exits 0 after the store is written.
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
    let client = ctx.client().await?;
    let mut ledger = ctx.olm_ledger();
    // What other commands received since the last `sync` comes first; the
    // Olm messages they could not decrypt are recovered from now.
    let kept = ctx.profile.inbox().read()?;
    let mut summary = SyncSummary::of_kept(&kept);
    let failures = kept_failures(&kept);
    let mut watcher = Watcher::default();
    if !args.follow {
        let response = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args, &failures).await?;
        summary.add(&response.1);
        // A key request from one of our own devices is answered by
        // matrix-sdk once it has an Olm session with that device: when it
        // had to claim one in this sync, the forward goes out with the next.
        // One more sync delivers it, so a one-shot `sync` answers at once.
        let asked = response
            .0
            .to_device
            .iter()
            .any(|e| e.to_raw().deserialize_as::<Value>().is_ok_and(|j| j["type"] == "m.room_key_request"));
        if asked {
            let more = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args, &[]).await?;
            summary.add(&more.1);
        }
        deliver(ctx)?;
        return ctx.out.data(&summary);
    }
    deliver(ctx)?;
    ctx.out.status("Following; Ctrl-C to stop.");
    follow(ctx, client, ledger, watcher, args, failures).await
}

/// `--follow`: turns of one sync each, holding the profile lock only for
/// the turn. Between turns it waits for news without the lock
/// (`sdk::wait_for_news`), so every other command on the profile runs
/// meanwhile; what their syncs received reaches the inbox, and the next
/// turn prints it. Only one process syncs at a time, from the position
/// the store holds, so no to-device event is received (and decrypted)
/// twice. After another process had the profile, the client is rebuilt
/// from the store before the turn: its Olm sessions, account and sync
/// position in memory are behind.
async fn follow(
    ctx: &mut CommandContext,
    mut client: matrix_sdk::Client,
    mut ledger: crate::profile::files::Stored<crate::profile::olm_ledger::OlmLedger>,
    mut watcher: Watcher,
    args: &SyncArgs,
    mut failures: Vec<(matrix_sdk::ruma::OwnedUserId, String)>,
) -> CliResult {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        // A turn runs to its end (it is short: the sync does not wait), so
        // the store never holds half of a response.
        let (response, _) = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args, &failures).await?;
        failures.clear();
        deliver(ctx)?;
        let since = Some(response.next_batch);
        ctx.profile.unlock();
        let request_timeout = ctx.settings.request_timeout;
        let others = tokio::select! {
            _ = &mut interrupted => {
                ctx.out.status("Stopped.");
                return Ok(());
            }
            others = async {
                crate::sdk::wait_for_news(&client, since, Duration::from_secs(30), request_timeout).await;
                ctx.profile.lock_turn().await
            } => others?,
        };
        if others {
            tracing::debug!("another process had the profile: restoring the client from the store");
            client = ctx.reopen_client().await?;
            ledger = ctx.olm_ledger();
            // What they received, first; the Olm messages they could not
            // decrypt are recovered from in this turn.
            failures = kept_failures(&ctx.profile.inbox().read()?);
            deliver(ctx)?;
        }
    }
}

/// One sync whose records go to the inbox first (so that a reader going
/// away loses none of them), with R7's bookkeeping and, unless
/// --no-recover, recovery from undecryptable Olm messages.
async fn sync_into_inbox(
    ctx: &CommandContext,
    client: &matrix_sdk::Client,
    ledger: &mut crate::profile::files::Stored<crate::profile::olm_ledger::OlmLedger>,
    watcher: &mut Watcher,
    args: &SyncArgs,
    earlier_failures: &[(matrix_sdk::ruma::OwnedUserId, String)],
) -> CliResult<(matrix_sdk::sync::SyncResponse, SyncSummary)> {
    let started = now_ms();
    let response = crate::sdk::sync_now(client).await?;
    let keep = ctx.out.capturing();
    let own = ctx.profile.own_positions().read().unwrap_or_default();
    let summary = print_response(client, &keep, &response, watcher, &own).await?;
    // Between syncs, never beside one: recovery claims keys itself.
    if !args.no_recover {
        recovery::after_sync(client, &response, ledger, started, &keep, earlier_failures).await?;
    }
    ctx.profile.inbox().append(&keep.take_captured())?;
    Ok((response, summary))
}

/// The senders (and their curve25519 keys) of the Olm messages that other
/// commands' syncs could not decrypt.
fn kept_failures(kept: &[crate::ui::output::Captured]) -> Vec<(matrix_sdk::ruma::OwnedUserId, String)> {
    let mut found = Vec::new();
    for record in kept {
        let v: Value = serde_json::from_str(&record.json).unwrap_or(Value::Null);
        if v["type"] != "to_device" || v["utd_reason"].is_null() {
            continue;
        }
        let (Some(sender), Some(key)) = (v["sender"].as_str(), v["sender_key"].as_str()) else { continue };
        if let Ok(sender) = matrix_sdk::ruma::OwnedUserId::try_from(sender) {
            if !found.iter().any(|(u, k): &(matrix_sdk::ruma::OwnedUserId, String)| *u == sender && k == key) {
                found.push((sender, key.to_owned()));
            }
        }
    }
    found
}

/// Prints everything the inbox holds, in order, then empties it; if the
/// reader goes away, what was not printed stays for the next `sync`.
fn deliver(ctx: &CommandContext) -> CliResult {
    let inbox = ctx.profile.inbox();
    let dropped = inbox.dropped()?;
    if dropped > 0 {
        ctx.out.data(&crate::stream::InboxGapRecord { dropped })?;
        inbox.forget_dropped()?;
    }
    let kept = inbox.read()?;
    for (i, record) in kept.iter().enumerate() {
        if let Err(e) = ctx.out.replay(record) {
            inbox.replace(&kept[i..])?;
            return Err(e);
        }
    }
    if !kept.is_empty() {
        inbox.clear()?;
    }
    Ok(())
}
