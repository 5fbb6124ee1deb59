//! Following: syncing turn after turn while other commands use the
//! profile (`sync --follow`, `chat`), and the delivery of what syncs
//! received, through the profile's inbox, exactly once.

use std::time::Duration;

use matrix_sdk::ruma::{OwnedRoomId, RoomId};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::batch::{Batch, Kind};
use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::sdk::recovery;
use crate::stream::{SyncSummary, Watcher};

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
        // Room keys this turn brought go to the backup now, while the
        // profile is ours (a command's `finish` does it at exit; this one
        // may not exit for days).
        if let Err(e) = crate::sdk::backup::upload_pending(&client).await {
            ctx.out.warn(format!("room keys not uploaded to the backup this turn: {}", e.message));
        }
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
pub(crate) async fn sync_into_inbox(
    ctx: &CommandContext,
    client: &matrix_sdk::Client,
    ledger: &mut crate::profile::files::Stored<crate::profile::olm_ledger::OlmLedger>,
    watcher: &mut Watcher,
    no_recover: bool,
    earlier_failures: &[(matrix_sdk::ruma::OwnedUserId, String)],
) -> CliResult<(matrix_sdk::sync::SyncResponse, SyncSummary)> {
    let started = now_ms();
    let response = crate::sdk::sync_now(client).await?;
    let keeper = ctx.keeper();
    let (keep, summary) = keeper.capture(client, &response, watcher).await?;
    // Between syncs, never beside one: recovery claims keys itself.
    if !no_recover {
        recovery::after_sync(client, &response, ledger, started, &keep, earlier_failures).await?;
    }
    keeper.store(&keep)?;
    Ok((response, summary))
}

/// The senders (and their curve25519 keys) of the Olm messages that other
/// commands' syncs could not decrypt.
pub(crate) fn kept_failures(kept: &[crate::ui::output::Captured]) -> Vec<(matrix_sdk::ruma::OwnedUserId, String)> {
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
pub(crate) fn deliver(ctx: &CommandContext, room: Option<&RoomId>) -> CliResult {
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
