//! The warm path: `send ROOM TEXT…` handed to a follower of the same
//! profile (`sync --follow`, `chat`), whose client is already restored and
//! synced, over a socket in the profile directory (`send.sock`, 0600 in the
//! 0700 profile directory: only its owner can connect).
//!
//! Like ssh-agent's or watchman's socket, it is an optimisation with the
//! same answers: the process that asked prints the same `sent` records,
//! warnings and error, and exits with the same code, as if it had sent
//! them itself (`Batch` runs in the follower, its output relayed). With no
//! follower, or one that declines (another `--isolation`), `send` works as
//! it always did. Nothing is sent before the follower has said it takes
//! the request, so falling back never sends a message twice.
//!
//! Kept to messages given as arguments: lines from stdin may take any time
//! to come, and the follower does not sync while it sends.
//!
//! The follower sends with the room as its sync last left it. It long-polls
//! the server between turns, so a new member or device reaches it as soon
//! as the server has it, and a turn (which syncs) runs before a request
//! that arrives together with news; a `send` of its own syncs first instead
//! (`--standalone` asks for that).
//!
//! The protocol, one JSON object per line: the request; then `accepted` or
//! `declined`; then the asking process's `go` (or it hangs up: a follower
//! too slow to take the request is passed over, and then never sends);
//! then the output as it happens (`out`), and `done` with the error, if
//! any. Either side decides alone at each step, so a message is sent by
//! exactly one of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::batch::{Batch, Kind};
use crate::context::CommandContext;
use crate::e2ee::trust::Isolation;
use crate::error::{Candidate, CliError, CliResult, ErrorKind};
use crate::profile::olm_ledger::OlmLedger;
use crate::profile::Ledger;
use crate::ui::output::{Output, Relayed};

/// The socket's name in the profile directory.
pub(crate) const SOCKET: &str = "send.sock";

/// What a follower waits for a request's first line, or for `go`, before it
/// goes back to following (a client that connected and said nothing).
const REQUEST_WAIT: Duration = Duration::from_secs(5);

/// What the asking process waits for the follower to take its request
/// (it may be in a turn, or waiting for the profile) before it sends by
/// itself.
const ACCEPT_WAIT: Duration = Duration::from_secs(10);

/// What it waits instead for a follower that let the last request wait
/// out `ACCEPT_WAIT` (stopped, say: SIGSTOP, a suspended terminal): once
/// passed over, each later `send` asks it only this long, until it answers
/// again (issue 30: a stopped follower made every send wait 10 s).
const PASSED_OVER_WAIT: Duration = Duration::from_millis(250);

/// The note that a follower was passed over, beside its socket: the
/// socket's inode (a new follower makes a new socket) and when.
const PASSED_OVER: &str = "send.sock.passed";

/// How long a note of being passed over counts.
const PASSED_OVER_FOR: Duration = Duration::from_secs(600);

/// Whether the follower listening on `socket` was passed over recently.
fn passed_over(dir: &Path, socket: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(inode) = std::fs::metadata(socket).map(|m| m.ino()) else { return false };
    let Ok(note) = std::fs::read_to_string(dir.join(PASSED_OVER)) else { return false };
    let mut words = note.split_whitespace().map(str::parse::<u64>);
    match (words.next(), words.next()) {
        (Some(Ok(noted)), Some(Ok(at))) => {
            noted == inode && crate::clock::now_ms().saturating_sub(at) < PASSED_OVER_FOR.as_millis() as u64
        }
        _ => false,
    }
}

fn note_passed_over(dir: &Path, socket: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(inode) = std::fs::metadata(socket).map(|m| m.ino()) {
        let _ = std::fs::write(dir.join(PASSED_OVER), format!("{inode} {}\n", crate::clock::now_ms()));
    }
}

/// 2: requests have an `op` (a send, or a status for `sync`).
const VERSION: u32 = 2;

/// What is asked of the follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    /// Send the messages.
    #[default]
    Send,
    /// Say since when it has been waiting for news (a one-shot `sync`
    /// then delivers what it kept, without a request of its own).
    Status,
}

/// A `send` handed over (or a status asked).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    v: u32,
    #[serde(default)]
    op: Op,
    /// The room as given (`RoomArg`'s display form).
    room: String,
    kind: Kind,
    txn_prefix: Option<String>,
    /// `--isolation` as given to the asking process.
    isolation: Option<Isolation>,
    texts: Vec<String>,
}

impl Request {
    pub(crate) fn new(
        room: String,
        kind: Kind,
        txn_prefix: Option<String>,
        isolation: Option<Isolation>,
        texts: Vec<String>,
    ) -> Request {
        Request { v: VERSION, op: Op::Send, room, kind, txn_prefix, isolation, texts }
    }

    /// A one-shot `sync`'s question (see [`follower_waiting_since`]).
    fn status() -> Request {
        Request { op: Op::Status, ..Request::new(String::new(), Kind::Text, None, None, Vec::new()) }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
enum Reply {
    Accepted,
    /// The asking process's go-ahead, after `accepted`.
    Go,
    Declined {
        why: String,
    },
    Out(Relayed),
    Done {
        error: Option<Failure>,
    },
    /// The answer to a status: when its last sync ended, since when it has
    /// been waiting for news (ms since the epoch).
    Status {
        waiting_since_ms: u64,
    },
}

/// A `CliError` on its way back to the asking process.
#[derive(Debug, Serialize, Deserialize)]
struct Failure {
    kind: String,
    message: String,
    causes: Vec<String>,
    hints: Vec<String>,
    candidates: Vec<Candidate>,
}

impl Failure {
    fn of(e: &CliError) -> Failure {
        Failure {
            kind: e.kind.name().to_owned(),
            message: e.message.clone(),
            causes: e.causes(),
            hints: e.hints.clone(),
            candidates: e.candidates.clone(),
        }
    }

    fn into_error(self) -> CliError {
        let kind = ErrorKind::from_name(&self.kind).unwrap_or(ErrorKind::Failed);
        let mut err = CliError::new(kind, self.message);
        // The causes as a chain again, outermost first (what `causes()` reads).
        let mut chain: Option<anyhow::Error> = None;
        for cause in self.causes.into_iter().rev() {
            chain = Some(match chain {
                None => anyhow::Error::msg(cause),
                Some(inner) => inner.context(cause),
            });
        }
        err.source = chain;
        err.hints = self.hints;
        err.candidates = self.candidates;
        err
    }
}

/// The asking side: hands `request` to a follower of this profile if one
/// serves. `None` when none does (or it declined): nothing was sent, and
/// the caller sends by itself. Plain blocking I/O, run before the async
/// runtime exists: the asking process only waits, and starting a runtime
/// and its threads would be most of its own time.
pub(crate) fn hand_over(ctx: &CommandContext, request: &Request) -> Option<CliResult> {
    use std::io::{BufRead, Write};
    let dir = ctx.profile.paths().dir.clone();
    let path = dir.join(SOCKET);
    let was_passed_over = passed_over(&dir, &path);
    let wait = if was_passed_over { PASSED_OVER_WAIT } else { ACCEPT_WAIT };
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e) => {
            if path.exists() {
                tracing::debug!(error = %e, "no follower answers on {}", path.display());
            }
            return None;
        }
    };
    let mut line = serde_json::to_vec(request).ok()?;
    line.push(b'\n');
    if let Err(e) = stream.write_all(&line).and_then(|()| stream.set_read_timeout(Some(wait))) {
        tracing::debug!(error = %e, "could not hand the messages to the follower");
        return None;
    }
    let mut writer = stream.try_clone().ok()?;
    let mut replies = std::io::BufReader::new(stream).lines().map(|line| {
        let line = line.ok()?;
        serde_json::from_str::<Reply>(&line).map_err(|e| tracing::debug!(error = %e, "a reply not understood")).ok()
    });
    let first = replies.next();
    if was_passed_over && matches!(first, Some(Some(_))) {
        // It answers again.
        let _ = std::fs::remove_file(dir.join(PASSED_OVER));
    }
    match first.flatten() {
        Some(Reply::Accepted) => {}
        Some(Reply::Declined { why }) => {
            tracing::debug!(why, "the follower declined; sending from this process");
            return None;
        }
        // Gone, or too slow, before it took anything: nothing was sent,
        // and hanging up (the socket closes with this process's handle)
        // means it never will.
        _ if was_passed_over => {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "the follower passed over before did not answer at once either; sending from this process"
            );
            return None;
        }
        _ => {
            note_passed_over(&dir, &path);
            ctx.out.status(format!(
                "the follower of this profile (`sync --follow` or `chat`) did not take the messages within {} s \
                 (stopped, or stuck): sending from this process; later sends ask it for {} ms only, until it answers",
                ACCEPT_WAIT.as_secs(),
                PASSED_OVER_WAIT.as_millis()
            ));
            return None;
        }
    }
    // From here on the follower sends, and only it.
    if writer.write_all(b"{\"r\":\"go\"}\n").is_err() {
        return None;
    }
    tracing::debug!("a follower of this profile sends them (warm path)");
    let _ = writer.set_read_timeout(None);
    let mut sent = 0usize;
    let mut reader_gone = false;
    loop {
        match replies.next().flatten() {
            Some(Reply::Out(item)) => {
                if matches!(item, Relayed::Data { .. }) {
                    sent += 1;
                }
                if reader_gone {
                    continue;
                }
                match ctx.out.print_relayed(item) {
                    Err(e) if e.kind == ErrorKind::PipeClosed => reader_gone = true,
                    Err(e) => return Some(Err(e)),
                    Ok(()) => {}
                }
            }
            Some(Reply::Done { error: None }) => {
                if reader_gone {
                    ctx.out.status(format!(
                        "stdout was closed by its reader; all {sent} message(s) were sent (records not printed)"
                    ));
                }
                return Some(Ok(()));
            }
            Some(Reply::Done { error: Some(failure) }) => return Some(Err(failure.into_error())),
            Some(Reply::Accepted | Reply::Go | Reply::Declined { .. } | Reply::Status { .. }) | None => {
                let kind = if sent > 0 { ErrorKind::Partial } else { ErrorKind::Failed };
                return Some(Err(CliError::new(
                    kind,
                    format!(
                        "the follower sending these messages stopped before it finished: {sent} were reported sent \
                         (the records above); whether the next one went out is unknown"
                    ),
                )
                .with_hint("with --txn-prefix, the same command again delivers exactly what did not go out")));
            }
        }
    }
}

/// How long a one-shot `sync` waits for the follower's status: it answers
/// between turns, at once, or after the turn under way.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// Asks the follower of this profile, if one serves, since when it has
/// been waiting for news (ms since the epoch): until then it has synced,
/// and kept what came, and its wait is a long poll the server answers as
/// soon as anything arrives. `None`: no follower answered (or an older
/// one, which declines): the caller syncs by itself.
pub(crate) fn follower_waiting_since(ctx: &CommandContext) -> Option<u64> {
    use std::io::{BufRead, Write};
    let dir = ctx.profile.paths().dir.clone();
    let path = dir.join(SOCKET);
    let wait = if passed_over(&dir, &path) { PASSED_OVER_WAIT } else { STATUS_WAIT };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).ok()?;
    let request = Request::status();
    let mut line = serde_json::to_vec(&request).ok()?;
    line.push(b'\n');
    stream.write_all(&line).and_then(|()| stream.set_read_timeout(Some(wait))).ok()?;
    let mut answer = String::new();
    std::io::BufReader::new(stream).read_line(&mut answer).ok()?;
    match serde_json::from_str::<Reply>(&answer).ok()? {
        Reply::Status { waiting_since_ms } => Some(waiting_since_ms),
        _ => None,
    }
}

/// The follower's socket; removed when dropped (if it is still this one's).
pub(crate) struct Listener {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl Listener {
    /// Listens in `dir`, unless another follower of the profile already
    /// does (one is enough) or the socket cannot be made (said in the log:
    /// following works without it).
    pub(crate) fn bind(dir: &Path) -> Option<Listener> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let path = dir.join(SOCKET);
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                tracing::debug!("another follower serves {}", path.display());
                return None;
            }
            // Left by a follower that was killed.
            let _ = std::fs::remove_file(&path);
        }
        let bound = std::os::unix::net::UnixListener::bind(&path)
            .and_then(|l| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .and_then(UnixListener::from_std)
            .and_then(|l| Ok((l, std::fs::metadata(&path)?.ino())));
        match bound {
            Ok((listener, inode)) => Some(Listener { listener, path, inode }),
            Err(e) => {
                tracing::debug!(error = %e, "no warm path: could not listen on {}", path.display());
                None
            }
        }
    }

    pub(crate) async fn accept(&self) -> Option<UnixStream> {
        match self.listener.accept().await {
            Ok((stream, _)) => Some(stream),
            Err(e) => {
                tracing::debug!(error = %e, "accepting a warm-path connection failed");
                None
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A request read from a connection, not yet answered.
pub(crate) struct Incoming {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
    request: Result<Request, serde_json::Error>,
}

impl Incoming {
    /// A one-shot `sync` asking how fresh the follower is.
    pub(crate) fn is_status(&self) -> bool {
        matches!(&self.request, Ok(r) if r.v == VERSION && r.op == Op::Status)
    }
}

/// Reads a connection's request; `None` when it says nothing in time.
pub(crate) async fn receive(stream: UnixStream) -> Option<Incoming> {
    let (read, write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let request = match tokio::time::timeout(REQUEST_WAIT, lines.next_line()).await {
        Ok(Ok(Some(line))) => serde_json::from_str::<Request>(&line),
        _ => return None,
    };
    Some(Incoming { lines, write, request })
}

/// Answers a status request: everything up to `waiting_since_ms` is kept.
pub(crate) async fn answer_status(mut incoming: Incoming, waiting_since_ms: u64) {
    let _ = write_reply(&mut incoming.write, &Reply::Status { waiting_since_ms }).await;
}

/// The follower's side: one request, served between turns. It takes the
/// profile lock for the send (reloading its client if another process had
/// the profile meanwhile) and gives it back after, as a turn does.
pub(crate) async fn serve(
    ctx: &mut CommandContext,
    client: &mut matrix_sdk::Client,
    ledger: &mut Ledger<OlmLedger>,
    incoming: Incoming,
    waiting_since_ms: u64,
) {
    if incoming.is_status() {
        answer_status(incoming, waiting_since_ms).await;
        return;
    }
    let Incoming { mut lines, mut write, request } = incoming;
    let decline = |why: String| Reply::Declined { why };
    let taken = match request {
        Ok(request) if request.v != VERSION => Err(decline(format!("protocol version {} not spoken", request.v))),
        Ok(request) => take(ctx, client, ledger, &request).await.map(|room| (request, room)).map_err(decline),
        Err(e) => Err(decline(format!("request not understood: {e}"))),
    };
    let (request, room) = match taken {
        Ok(taken) => taken,
        Err(reply) => {
            let _ = write_reply(&mut write, &reply).await;
            ctx.profile.unlock();
            return;
        }
    };
    let go = match write_reply(&mut write, &Reply::Accepted).await {
        Ok(()) => tokio::time::timeout(REQUEST_WAIT, lines.next_line()).await,
        Err(_) => {
            ctx.profile.unlock();
            return;
        }
    };
    if !matches!(go, Ok(Ok(Some(line))) if matches!(serde_json::from_str(&line), Ok(Reply::Go))) {
        // It went its own way (or away): it sends, not this follower.
        tracing::debug!("the asking process did not say go; nothing sent");
        ctx.profile.unlock();
        return;
    }
    // The output goes to the asking process as it happens.
    let (to, mut relayed) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        while let Some(item) = relayed.recv().await {
            if write_reply(&mut write, &Reply::Out(item)).await.is_err() {
                // The asker is gone: the messages still go out, as they do
                // when stdout's reader leaves.
                while relayed.recv().await.is_some() {}
                break;
            }
        }
        write
    });
    // Everything said while serving the request is the asking process's to
    // print: the batch's records and warnings, and those of the context
    // (a damaged ledger, the backup upload in `finish`).
    let own = std::mem::replace(&mut ctx.out, Output::relaying(to));
    let result = async {
        let room = crate::rooms::joined(client, &room).await?;
        let mut batch = Batch::open(ctx, &ctx.out, room, request.kind, request.txn_prefix.clone()).await?;
        batch.send_arguments(&request.texts).await
    }
    .await;
    // Keys made for the send go to the backup before the answer, as a
    // `send` does before it exits.
    let result = ctx.finish(result).await;
    // The relaying output goes: the pump then ends.
    drop(std::mem::replace(&mut ctx.out, own));
    ctx.profile.unlock();
    if let Ok(mut write) = pump.await {
        let _ = write_reply(&mut write, &Reply::Done { error: result.as_ref().err().map(Failure::of) }).await;
    }
}

/// Checks a request and takes the profile for it: the room it names, or
/// why this follower does not serve it (the asking process then sends by
/// itself).
async fn take(
    ctx: &mut CommandContext,
    client: &mut matrix_sdk::Client,
    ledger: &mut Ledger<OlmLedger>,
    request: &Request,
) -> Result<crate::rooms::RoomArg, String> {
    let room = crate::rooms::parse_room(&request.room)?;
    let mine = ctx.isolation();
    let theirs = request.isolation.or(ctx.session().and_then(|s| s.isolation)).unwrap_or_default();
    if mine != theirs {
        return Err(format!("this follower runs in {mine:?} isolation, the request asks for {theirs:?}"));
    }
    let others = ctx.profile.lock_turn().await.map_err(|e| e.message)?;
    crate::follow::reload_if(others, ctx, client, ledger, "before a warm send").await.map_err(|e| e.message)?;
    Ok(room)
}

async fn write_reply(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await
}
