//! `ratchet sync`: one incremental sync, or a stream of them with
//! `--follow`, printing what arrived (see `stream`): room events (decrypted
//! where possible), invites, rooms left, and to-device events, after what
//! other commands received and kept for it (`profile::inbox`).

use std::time::Duration;

use clap::Args;
use matrix_sdk::config::SyncSettings;
use serde_json::Value;
use tracing::instrument;

use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::error::CliResult;
use crate::sdk::recovery;
use crate::stream::{print_response, Watcher};

/// Fetch what arrived since the last run and print it.
///
/// Without --follow, one sync that returns at once (it never waits for new
/// events). With --follow, keeps syncing and prints events as they arrive
/// until interrupted; Ctrl-C exits 0 after the store is written.
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
    if !args.follow {
        let started = now_ms();
        let response = crate::sdk::sync_now(&client).await?;
        let mut watcher = Watcher::default();
        let mut summary = print_response(&client, &ctx.out, &response, &mut watcher).await?;
        if !args.no_recover {
            recovery::after_sync(&client, &response, &mut ledger, started, &ctx.out).await?;
        }
        // A key request from one of our own devices is answered by
        // matrix-sdk once it has an Olm session with that device: when it
        // had to claim one in this sync, the forward goes out with the next.
        // One more sync delivers it, so a one-shot `sync` answers at once.
        let asked = response
            .to_device
            .iter()
            .any(|e| e.to_raw().deserialize_as::<Value>().is_ok_and(|j| j["type"] == "m.room_key_request"));
        if asked {
            let more = crate::sdk::sync_now(&client).await?;
            let extra = print_response(&client, &ctx.out, &more, &mut watcher).await?;
            summary.add(&extra);
        }
        return ctx.out.data(&summary);
    }
    ctx.out.status("Following; Ctrl-C to stop.");
    let settings = SyncSettings::default().timeout(Duration::from_secs(30));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut watcher = Watcher::default();
    loop {
        let started = now_ms();
        // Dropping an in-flight sync is safe: the SDK writes a response
        // (events, keys, the next token) in one store transaction only after
        // it has arrived, so an interrupted one is simply fetched again.
        tokio::select! {
            _ = &mut interrupted => {
                ctx.out.status("Stopped.");
                return Ok(());
            }
            response = client.sync_once(settings.clone()) => {
                let response = response?;
                print_response(&client, &ctx.out, &response, &mut watcher).await?;
                // Between syncs, never beside one: recovery claims keys itself.
                if !args.no_recover {
                    recovery::after_sync(&client, &response, &mut ledger, started, &ctx.out).await?;
                }
            }
        }
    }
}
