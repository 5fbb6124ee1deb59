//! `ratchet sync`: one incremental sync, or a stream of them with
//! `--follow`, printing what arrived (see `stream`): room events (decrypted
//! where possible), invites, rooms left, and to-device events, after what
//! other commands received and kept for it (`profile::inbox`).

use std::time::Duration;

use clap::Args;
use matrix_sdk::ruma::{OwnedRoomId, RoomId};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::instrument;

use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::sdk::recovery;
use crate::stream::{print_response, SyncSummary, Watcher};

use super::send::{Batch, Kind};

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

/// How to follow: `sync --follow`, or `chat` (one room, and lines to send).
pub(crate) struct Following {
    /// Leave undecryptable Olm messages to matrix-sdk (`--no-recover`).
    pub(crate) no_recover: bool,
    /// Print only this room's records; the others stay in the inbox, for
    /// the next `sync`.
    pub(crate) room: Option<OwnedRoomId>,
    /// Lines to send into `room`, each at the next turn. Following ends
    /// once this ends and everything in it went out.
    pub(crate) input: Option<UnboundedReceiver<Line>>,
}

/// A line of input for `chat`: its text, or the number of a line that was
/// not UTF-8.
pub(crate) type Line = Result<String, usize>;

/// Turns of one sync each, holding the profile lock only for the turn.
/// Between turns it waits for news without the lock
/// (`sdk::wait_for_news`), so every other command on the profile runs
/// meanwhile; what their syncs received reaches the inbox, and the next
/// turn prints it. Only one process syncs at a time, from the position
/// the store holds, so no to-device event is received (and decrypted)
/// twice. After another process had the profile, the client is rebuilt
/// from the store before the turn: its Olm sessions, account and sync
/// position in memory are behind. Lines of input wake it too, and are sent
/// at the start of the turn, by the same code as `send` (R4, R5).
pub(crate) async fn follow(ctx: &mut CommandContext, mut how: Following) -> CliResult {
    let mut client = ctx.client().await?;
    let mut ledger = ctx.olm_ledger();
    let mut watcher = Watcher::default();
    // What other commands received comes first; the Olm messages they
    // could not decrypt are recovered from in the first turn.
    let mut failures = kept_failures(&ctx.profile.inbox().read()?);
    deliver(ctx, how.room.as_deref())?;
    // Ctrl-C or a plain `kill` ends it between turns, never inside one:
    // the handlers are in place before the first turn starts.
    let mut stop = Stop::new()?;
    let mut input_open = how.input.is_some();
    let mut pending: Vec<Line> = Vec::new();
    let mut seq = 0;
    loop {
        // A turn runs to its end (it is short: the sync does not wait), so
        // the store never holds half of a response.
        if let Some(input) = &mut how.input {
            while let Ok(line) = input.try_recv() {
                pending.push(line);
            }
        }
        if !pending.is_empty() {
            let room_id = how.room.as_ref().ok_or_else(|| CliError::internal("input without a room"))?;
            let room = client.get_room(room_id).ok_or_else(|| CliError::failed(format!("unknown room {room_id}")))?;
            let mut batch = Batch::open(ctx, room, Kind::Text, None).await?;
            for line in pending.drain(..) {
                seq += 1;
                match line {
                    Ok(text) => batch.send(seq, &text).await?,
                    Err(n) => ctx.out.warn(format!("line {n} of stdin is not valid UTF-8; skipped")),
                }
            }
        }
        let (response, _) = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, how.no_recover, &failures).await?;
        failures.clear();
        deliver(ctx, how.room.as_deref())?;
        if how.input.is_some() && !input_open {
            return Ok(());
        }
        let since = Some(response.next_batch);
        ctx.profile.unlock();
        let request_timeout = ctx.settings.request_timeout;
        let woke = tokio::select! {
            () = stop.wait() => {
                ctx.out.status("Stopped.");
                return Ok(());
            }
            () = crate::sdk::wait_for_news(&client, since, Duration::from_secs(30), request_timeout) => None,
            line = async { how.input.as_mut().expect("input_open").recv().await }, if input_open => Some(line),
        };
        match woke {
            Some(Some(line)) => pending.push(line),
            Some(None) => input_open = false,
            None => {}
        }
        let others = tokio::select! {
            () = stop.wait() => {
                ctx.out.status("Stopped.");
                return Ok(());
            }
            others = ctx.profile.lock_turn() => others?,
        };
        if others {
            tracing::debug!("another process had the profile: restoring the client from the store");
            client = ctx.reopen_client().await?;
            ledger = ctx.olm_ledger();
            // What they received, first; the Olm messages they could not
            // decrypt are recovered from in this turn.
            failures = kept_failures(&ctx.profile.inbox().read()?);
            deliver(ctx, how.room.as_deref())?;
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from the start of following.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> CliResult<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |e| CliError::internal("could not catch signals").with_source(e);
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt()).map_err(handler)?,
            terminate: signal(SignalKind::terminate()).map_err(handler)?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
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
    no_recover: bool,
    earlier_failures: &[(matrix_sdk::ruma::OwnedUserId, String)],
) -> CliResult<(matrix_sdk::sync::SyncResponse, SyncSummary)> {
    let started = now_ms();
    let response = crate::sdk::sync_now(client).await?;
    let keep = ctx.out.capturing();
    let own = ctx.profile.own_positions().read().unwrap_or_default();
    let summary = print_response(client, &keep, &response, watcher, &own).await?;
    // Between syncs, never beside one: recovery claims keys itself.
    if !no_recover {
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

/// Prints what the inbox holds (for `room`, all of it without), in order,
/// and keeps the rest; if the reader goes away, what was not printed stays
/// for the next `sync`.
fn deliver(ctx: &CommandContext, room: Option<&RoomId>) -> CliResult {
    let inbox = ctx.profile.inbox();
    if room.is_none() {
        let dropped = inbox.dropped()?;
        if dropped > 0 {
            ctx.out.data(&crate::stream::InboxGapRecord { dropped })?;
            inbox.forget_dropped()?;
        }
    }
    let kept = inbox.read()?;
    let mut left = Vec::new();
    for (i, record) in kept.iter().enumerate() {
        let ours = room.is_none_or(|r| {
            serde_json::from_str::<Value>(&record.json).is_ok_and(|v| v["room_id"].as_str() == Some(r.as_str()))
        });
        if !ours {
            left.push(record.clone());
            continue;
        }
        if let Err(e) = ctx.out.replay(record) {
            left.extend_from_slice(&kept[i..]);
            inbox.replace(&left)?;
            return Err(e);
        }
    }
    if left.len() != kept.len() {
        inbox.replace(&left)?;
    }
    Ok(())
}
