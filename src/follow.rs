//! Following: syncing turn after turn while other commands use the
//! profile (`sync --follow`, `chat`), and the delivery of what syncs
//! received, from the profile's state database (`profile::state`):
//! `sync` delivers each record once, marking each chunk delivered after
//! it was written; `chat` shows its room's records without consuming
//! them; every record printed carries its `cursor`.

use std::time::Duration;

use matrix_sdk::ruma::{OwnedRoomId, RoomId};
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
    /// Show only this room's records, as a view: all of them stay for the
    /// next `sync` (`chat`).
    pub(crate) room: Option<OwnedRoomId>,
    /// Lines to send into `room`, each at the next turn. Following ends
    /// once this ends and everything in it went out.
    pub(crate) input: Option<UnboundedReceiver<Line>>,
    /// Print what arrives (`sync --follow`, `chat`); without, every
    /// record stays for the next `sync` (`agent`).
    pub(crate) deliver: bool,
    /// Said on stderr once Ctrl-C and SIGTERM are caught: a script that
    /// waits for it may signal from then on.
    pub(crate) started: String,
    /// For a view (`chat`): show the room's records after this one (what
    /// came since it started); `None`, its undelivered ones first
    /// (`chat --replay`).
    pub(crate) view_after: Option<i64>,
}

/// A line of input for `chat`: its text, or the number of a line that was
/// not UTF-8.
pub(crate) type Line = Result<String, usize>;

/// Turns of one sync each, holding the profile lock only for the turn.
/// Between turns it waits for news without the lock
/// (`sdk::wait_for_news`), so every other command on the profile runs
/// meanwhile; what their syncs received is kept in the state database, and the next
/// turn prints it. Only one process syncs at a time, from the position
/// the store holds, so no to-device event is received (and decrypted)
/// twice. After another process had the profile, the client is rebuilt
/// from the store before the turn: its Olm sessions, account and sync
/// position in memory are behind. Lines of input wake it too, and are sent
/// at the start of the turn, by the same code as `send` (R4, R5).
pub(crate) async fn follow(ctx: &mut CommandContext, mut how: Following, after_cursor: Option<&str>) -> CliResult {
    // Ctrl-C or a plain `kill` ends it between turns, never inside one:
    // the handlers are in place before anything else, and said to be.
    let mut stop = Stop::new()?;
    ctx.out.status(&how.started);
    let mut client = ctx.client().await?;
    let mut ledger = ctx.olm_ledger()?;
    let mut watcher = Watcher::default();
    if let Some(cursor) = after_cursor {
        redeliver(ctx, cursor, &mut SyncSummary::default())?;
    }
    // What other commands received comes first (for `chat`: its room's
    // undelivered records, shown, not consumed).
    let mut shown = match how.view_after {
        Some(seq) => seq,
        None => ctx.state()?.before_pending()?,
    };
    let room = how.room.clone();
    let printing = how.deliver;
    let mut show = |ctx: &CommandContext| -> CliResult {
        match room.as_deref() {
            _ if !printing => Ok(()),
            Some(room) => view(ctx, room, &mut shown),
            None => deliver(ctx, &mut SyncSummary::default()).map(|_| ()),
        }
    };
    // A gap a killed command left open is filled before anything of its
    // room is shown (`gapfill`).
    if let Err(e) = crate::gapfill::fill_open(&client, &ctx.out, ctx.state()?).await {
        ctx.out.warn(format!("a gap in a room's timeline could not be filled: {}", e.message));
    }
    show(ctx)?;
    // `send`s from other processes, served between turns (`warm`).
    let warm = crate::warm::Listener::bind(&ctx.profile.paths().dir);
    let mut input_open = how.input.is_some();
    let mut pending: Vec<Line> = Vec::new();
    let mut seq = 0;
    // A status request taken while news waited, answered after the turn.
    let mut held_status: Option<crate::warm::Incoming> = None;
    loop {
        // A turn runs to its end (it is short: the sync does not wait), so
        // the store never holds half of a response.
        if let Some(input) = &mut how.input {
            while let Ok(line) = input.try_recv() {
                pending.push(line);
            }
        }
        if !pending.is_empty() {
            // The room as it is now, before its key is shared: a member
            // invited or joined since the last turn gets the key too. Without
            // this sync, a line typed while the sync that brings an invite is
            // still on its way goes out undecryptable for the invitee
            // (complement-crypto's TestDelayedInviteResponse, rust-sdk#3622;
            // examples/qa/delayed-invite.sh). `send` syncs first for the same
            // reason.
            // If it fails, the lines still go (each is reported, sent or
            // failed), with the member list this process has.
            match sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, how.no_recover).await {
                Ok(_) => show(ctx)?,
                Err(e) => ctx.out.warn(format!("could not sync before sending: {}", e.message)),
            }
            let room_id = how.room.as_ref().ok_or_else(|| CliError::internal("input without a room"))?;
            let room = client.get_room(room_id).ok_or_else(|| CliError::failed(format!("unknown room {room_id}")))?;
            let mut batch = Batch::open(ctx, &ctx.out, room, Kind::Text, None).await?;
            for line in pending.drain(..) {
                seq += 1;
                match line {
                    Ok(text) => batch.send(seq, &text).await?,
                    Err(n) => ctx.out.warn(format!("line {n} of stdin is not valid UTF-8; skipped")),
                }
            }
        }
        let response = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, how.no_recover).await?;
        show(ctx)?;
        // Room keys this turn brought go to the backup now, while the
        // profile is ours (a command's `finish` does it at exit; this one
        // may not exit for days).
        if let Err(e) = ctx.upload_backup(&client).await {
            ctx.out.warn(format!("room keys not uploaded to the backup this turn: {}", e.message));
        }
        if how.input.is_some() && !input_open {
            return Ok(());
        }
        let since = Some(response.next_batch);
        ctx.profile.unlock();
        let request_timeout = ctx.settings.request_timeout;
        // The wait goes on across warm sends (`warm`): each takes the
        // profile for itself and gives it back. News comes first, so a send
        // that arrives together with it waits for the turn.
        let news_client = client.clone();
        // Everything up to now is kept: a one-shot `sync` may deliver it
        // without a request of its own (`warm::follower_waiting_since`).
        let waiting_since = now_ms();
        if let Some(status) = held_status.take() {
            crate::warm::answer_status(status, waiting_since).await;
        }
        let wait = |since| crate::sdk::wait_for_news(&news_client, since, Duration::from_secs(30), request_timeout);
        let mut news = Box::pin(wait(since));
        // The echo of this profile's own messages (a `send --standalone`'s,
        // or a warm send's) changes nothing a send needs: a send that comes
        // meanwhile is served before the turn that keeps the echo, which
        // waits ECHO_TURN_DELAY (issue 33: a send right after another
        // process's waited for a whole turn). Any other news ends the wait
        // at once.
        let mut turn_at: Option<tokio::time::Instant> = None;
        let mut first_echo: Option<tokio::time::Instant> = None;
        let woke = loop {
            let wake = tokio::select! {
                biased;
                () = stop.wait() => Wake::Stop,
                news = &mut news => Wake::News(news),
                () = tokio::time::sleep_until(turn_at.unwrap_or_else(tokio::time::Instant::now)), if turn_at.is_some() => {
                    Wake::News(crate::sdk::News::Other)
                }
                line = async { how.input.as_mut().expect("input_open").recv().await }, if input_open => {
                    Wake::Line(line)
                }
                Some(conn) = async { warm.as_ref()?.accept().await }, if warm.is_some() => Wake::Send(conn),
            };
            match wake {
                Wake::Stop => {
                    ctx.out.status("Stopped.");
                    return Ok(());
                }
                Wake::News(crate::sdk::News::OwnEcho { next_batch }) => {
                    tracing::debug!("news: only the echo of this profile's own messages; the turn waits");
                    // After the last echo, but not long after the first:
                    // a loop of sends is not cut by turns, nor keeps them off.
                    let now = tokio::time::Instant::now();
                    let first = *first_echo.get_or_insert(now);
                    turn_at = Some((now + ECHO_TURN_DELAY).min(first + ECHO_TURN_MAX));
                    news = Box::pin(wait(Some(next_batch)));
                    // Sent by another process (`send --standalone`): what
                    // it changed is reloaded now, as it finishes, rather
                    // than when the next send comes.
                    // Only if it gives the profile back at once: a send
                    // that comes meanwhile waits for this.
                    if ctx.profile.others_since_last_turn() {
                        if let Some(others) = ctx.profile.lock_turn_within(RELOAD_WAIT).await? {
                            let reloaded = reload_if(others, ctx, &mut client, &mut ledger, "after its send").await;
                            ctx.profile.unlock();
                            if let Err(e) = reloaded {
                                // The turn reports it, and reloads.
                                tracing::debug!(error = %e.message, "reloading after another process failed");
                                break None;
                            }
                        }
                    }
                }
                Wake::News(crate::sdk::News::Other) => break None,
                Wake::Line(line) => break Some(line),
                Wake::Send(conn) => match crate::warm::receive(conn).await {
                    // How fresh the follower is, asked while news waits: after the turn.
                    Some(status) if status.is_status() && turn_at.is_some() => {
                        held_status = Some(status);
                        break None;
                    }
                    Some(incoming) => crate::warm::serve(ctx, &mut client, &mut ledger, incoming, waiting_since).await,
                    None => {}
                },
            }
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
        reload_if(others, ctx, &mut client, &mut ledger, "for a turn").await?;
        if others {
            // What they received, first; the Olm messages they could not
            // decrypt are recovered from in this turn.
            show(ctx)?;
        }
    }
}

/// With the profile taken for the follower (a turn's lock), and `others`
/// (another process had it since the follower's last turn): reloads the
/// client and the Olm ledger from the store (`why` for the log). On
/// failure the lock is held still, and the turn forgotten: the old client
/// must not be taken for current (a second reader's finding), so the next
/// turn reloads.
pub(crate) async fn reload_if(
    others: bool,
    ctx: &mut CommandContext,
    client: &mut matrix_sdk::Client,
    ledger: &mut crate::profile::Ledger<crate::profile::olm_ledger::OlmLedger>,
    why: &str,
) -> CliResult<()> {
    if !others {
        return Ok(());
    }
    tracing::debug!("another process had the profile: reloading the client {why}");
    let reloaded = async { Ok::<_, CliError>((ctx.reopen_client().await?, ctx.olm_ledger()?)) }.await;
    match reloaded {
        Ok((reopened, reread)) => {
            *client = reopened;
            *ledger = reread;
            Ok(())
        }
        Err(e) => {
            ctx.profile.forget_turn();
            Err(e)
        }
    }
}

/// How long the turn that keeps the echo of this profile's own messages
/// waits after the last one (see `sdk::News::OwnEcho`): long enough for the
/// next command of a script, short enough that `sync --follow` shows the
/// echo at once; and at most how long after the first.
const ECHO_TURN_DELAY: Duration = Duration::from_millis(250);
const ECHO_TURN_MAX: Duration = Duration::from_secs(2);

/// How long a follower waits for another process that sent to give the
/// profile back, to reload what it changed before the next send comes.
const RELOAD_WAIT: Duration = Duration::from_millis(50);

/// What ended a wait between turns.
enum Wake {
    Stop,
    News(crate::sdk::News),
    Line(Option<Line>),
    Send(tokio::net::UnixStream),
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

/// One sync whose records are kept first (so that nothing after it, a
/// failed request, Ctrl-C, a reader going away, loses any of them), with
/// R7's bookkeeping and, unless --no-recover, recovery from the
/// undecryptable Olm messages not yet recovered from: this sync's and
/// those other commands' syncs kept. Each is consumed by the recovery that
/// handled it.
pub(crate) async fn sync_into_inbox(
    ctx: &CommandContext,
    client: &matrix_sdk::Client,
    ledger: &mut crate::profile::Ledger<crate::profile::olm_ledger::OlmLedger>,
    watcher: &mut Watcher,
    no_recover: bool,
) -> CliResult<matrix_sdk::sync::SyncResponse> {
    let started = now_ms();
    let response = crate::sdk::sync_now(client).await?;
    ctx.keeper().keep_sync(client, &response, watcher).await?;
    // Between syncs, never beside one: recovery claims keys itself.
    if !no_recover {
        let db = ctx.state()?;
        let failures = db.failures()?;
        let keep = ctx.out.capturing();
        let result = recovery::after_sync(client, &response, ledger, started, &keep, &failures).await;
        // Its steps are kept whether or not it went through, and the
        // failures it was given are consumed either way: one it could not
        // finish is not fed back every turn (R11 covers a session it made).
        db.append(&keep.take_captured())?;
        db.clear_failures(&failures)?;
        result?;
        crate::process::kill_point("recovered");
    }
    Ok(response)
}

/// Records delivered before their chunk is marked delivered: a kill
/// between the two prints at most this many again (their cursors tell).
const CHUNK: usize = 32;

/// Delivers every undelivered record, in order, a chunk at a time: each
/// chunk is written (and flushed), then marked delivered in one
/// transaction. A reader that goes away leaves what it was not written
/// for the next `sync`; what it was written but did not read, it gets
/// back with `--after-cursor`. The `inbox_gap` record comes first when
/// undelivered records had to go.
///
/// Returns the sequence number of the first record it wrote, if any.
pub(crate) fn deliver(ctx: &CommandContext, summary: &mut SyncSummary) -> CliResult<Option<i64>> {
    let db = ctx.state()?;
    let dropped = db.dropped()?;
    if dropped > 0 {
        ctx.out.data(&crate::stream::InboxGapRecord { dropped })?;
        db.forget_dropped()?;
    }
    // The first record this run writes: a reader that goes away may not
    // have read any of them.
    let mut first_written = None;
    loop {
        let chunk = db.pending(CHUNK)?;
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else { return Ok(first_written) };
        for (i, kept) in chunk.iter().enumerate() {
            if let Err(e) = ctx.out.replay(&kept.record, &db.cursor(kept.seq)) {
                if i > 0 {
                    db.mark_delivered(first.seq, chunk[i - 1].seq)?;
                }
                if e.kind == crate::error::ErrorKind::PipeClosed {
                    let from = db.cursor(first_written.unwrap_or(kept.seq) - 1);
                    ctx.out.warn(format!(
                        "stdout was closed: the records written after cursor {from} may not all have been read; \
                         `{}` prints them again",
                        crate::ui::hint::ratchet("sync").arg("--after-cursor").arg(&from)
                    ));
                }
                return Err(e);
            }
            first_written.get_or_insert(kept.seq);
            summary.count(&kept.record);
        }
        db.mark_delivered(first.seq, last.seq)?;
        crate::process::kill_point("delivered_chunk");
    }
}

/// Re-delivers, in order, what was delivered after the record `cursor`
/// names (a reader that stopped early, or crashed, resumes there).
pub(crate) fn redeliver(ctx: &CommandContext, cursor: &str, summary: &mut SyncSummary) -> CliResult {
    let db = ctx.state()?;
    let mut after = db.resolve_cursor(cursor)?;
    loop {
        let chunk = db.delivered_after(after, CHUNK)?;
        let Some(last) = chunk.last() else { return Ok(()) };
        after = last.seq;
        for kept in &chunk {
            ctx.out.replay(&kept.record, &db.cursor(kept.seq))?;
            summary.count(&kept.record);
        }
    }
}

/// Shows the records of `room` after `shown`, delivered or not, without
/// consuming any (`chat` is a view: `sync` still delivers them all).
pub(crate) fn view(ctx: &CommandContext, room: &RoomId, shown: &mut i64) -> CliResult {
    let db = ctx.state()?;
    loop {
        let chunk = db.after(*shown, Some(room.as_str()), CHUNK)?;
        let Some(last) = chunk.last() else { return Ok(()) };
        for kept in &chunk {
            ctx.out.replay(&kept.record, &db.cursor(kept.seq))?;
        }
        *shown = last.seq;
    }
}
