//! `ratchet send`: one message per TEXT argument, or per line of stdin.
//! In an encrypted room each message reports the Megolm session and the
//! message index it was encrypted at.

use std::io::IsTerminal;

use clap::Args;
use tokio::io::AsyncBufReadExt;
use tracing::instrument;

use crate::batch::{decode_line, Batch, Kind};
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;

/// Send messages to a room: each TEXT is one message, or each line of stdin.
///
/// With no TEXT, reads stdin until end of file and sends one message per
/// non-empty line, each as soon as it is read; on a terminal that is refused
/// (pipe the lines in instead). In an encrypted room every message is
/// encrypted (never sent in plaintext) and its output shows the Megolm
/// session id and message index, and when it starts a new session, why.
///
/// Rotation (rules R4, R5): before each message ratchet checks the room's
/// outbound Megolm session against the room's rotation_period_msgs and
/// rotation_period_ms, exactly (2000 ms means 2 s; matrix-sdk alone would
/// wait at least an hour), and starts a new session once either is reached.
/// The count and age live in the store, so separate invocations rotate
/// exactly as one long one would.
///
/// Exit status 3 when some messages were sent and then one failed (the
/// output lists those sent); 1 when none were.
///
/// Warm path: while `ratchet agent`, `sync --follow` or `chat` runs on the
/// same profile,
/// messages given as arguments are handed to it over a socket in the
/// profile directory (owner only), and sent by its client, which is
/// already restored and kept in sync by its long-poll: the same records,
/// warnings and exit status, without this process restoring and syncing a
/// client of its own (about half a cold send's time). Lines from stdin are
/// always sent by this process. --standalone never hands over.
///
/// Files: --file PATH (repeatable; - reads stdin, with --name) sends each
/// as one message, m.image, m.audio, m.video or m.file by its type
/// (guessed from the name; --mime says it), with its size. In an encrypted
/// room the file is encrypted before it is uploaded (AES-256-CTR, a fresh
/// key per file, carried in the Megolm-encrypted event with the SHA-256
/// of what was uploaded); its record shows the mxc:// URI and the session
/// and index of its message, and rotation counts it as any message.
/// `ratchet download ROOM EVENT` fetches one.
///
/// Examples:
///
///   ratchet send '!room:example.org' 'hello' 'second message'
///   ratchet send '!room:example.org' --file report.pdf --file chart.png
///   pg_dump db | gzip | ratchet send '!room:example.org' --file - --name db.sql.gz
///   printf 'one\ntwo\n' | ratchet --json send '#team:example.org'
///   ratchet send '!room:example.org' --txn-prefix "nightly-$(date +%F)" < report.txt   # rerun it after a failure
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SendArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// Messages to send, one per argument
    #[arg(conflicts_with = "file")]
    text: Vec<String>,

    /// A file to send (repeatable), one message each; - reads it from stdin (then --name is needed)
    #[arg(long, value_name = "PATH")]
    file: Vec<String>,

    /// With --file: the name the file goes by (default: its own)
    #[arg(long, requires = "file", value_name = "NAME")]
    name: Option<String>,

    /// With --file: its MIME type (default: guessed from the name)
    #[arg(long, requires = "file", value_name = "TYPE")]
    mime: Option<String>,

    /// Idempotent mode: message N gets transaction id PREFIX-N, and a rerun
    /// with the same prefix and input delivers only what did not go out (a
    /// prefix reused for different text is refused: one prefix, one batch)
    #[arg(long, value_name = "PREFIX", value_parser = crate::batch::parse_prefix)]
    txn_prefix: Option<String>,

    /// Send as m.notice (what bots send: clients do not notify for it)
    #[arg(long, conflicts_with = "emote")]
    notice: bool,

    /// Send as m.emote (shown as "* alice waves")
    #[arg(long)]
    emote: bool,

    /// Send from this process (restore the client, sync, send) even when a
    /// follower of the profile could send for it (see "Warm path" above)
    #[arg(long)]
    standalone: bool,
}

/// The warm path (`warm`): messages given as arguments, handed to a
/// follower of the profile if one serves; `None` when this process is to
/// send them itself. Tried before the async runtime starts.
pub(crate) fn hand_over(ctx: &CommandContext, args: &SendArgs) -> Option<CliResult> {
    if args.text.is_empty() || args.standalone || !args.file.is_empty() {
        return None;
    }
    let request = crate::warm::Request::new(
        args.room.to_string(),
        kind(args),
        args.txn_prefix.clone(),
        ctx.settings.isolation,
        args.text.clone(),
    );
    crate::warm::hand_over(ctx, &request)
}

fn kind(args: &SendArgs) -> Kind {
    match (args.notice, args.emote) {
        (true, _) => Kind::Notice,
        (_, true) => Kind::Emote,
        _ => Kind::Text,
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_send(ctx: &mut CommandContext, args: &SendArgs) -> CliResult {
    if !args.file.is_empty() {
        return send_files(ctx, args).await;
    }
    let from_stdin = args.text.is_empty();
    if from_stdin && std::io::stdin().is_terminal() {
        return Err(CliError::usage("no message given").with_hint(format!(
            "give the text as arguments, or pipe lines in: `echo hi | {}`",
            crate::ui::hint::ratchet("send ROOM")
        )));
    }
    let client = ctx.client().await?;
    // One incremental sync first: new members, their devices and any
    // to-device messages must be known before we encrypt for them.
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let mut batch = Batch::open(ctx, &ctx.out, room, kind(args), args.txn_prefix.clone()).await?;

    if !from_stdin {
        return batch.send_arguments(&args.text).await;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).split(b'\n');
    let mut seq = 0;
    // A spinner for a bulk send, only when the records go elsewhere (stdout
    // is not the same terminal) and a person watches stderr.
    let progress = if std::io::stdout().is_terminal() { None } else { batch.out.progress("sending from stdin") };
    while let Some(line) = lines.next_segment().await? {
        seq += 1;
        let text = match decode_line(line) {
            Ok(Some(text)) => text,
            Ok(None) => {
                batch.out.warn(format!("line {seq} is empty; skipped"));
                continue;
            }
            Err(()) => {
                return Err(batch.stop(seq, CliError::usage(format!("line {seq} of stdin is not valid UTF-8"))));
            }
        };
        batch.send(seq, &text).await?;
        if let Some(bar) = &progress {
            bar.set_message(format!("sent {} message(s)", batch.sent));
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if batch.sent == 0 {
        return Err(CliError::usage("stdin had no message to send"));
    }
    batch.finish();
    Ok(())
}

/// `send --file`: every file read first (a missing or unreadable one stops
/// the command before anything is sent), then each sent as one message.
async fn send_files(ctx: &mut CommandContext, args: &SendArgs) -> CliResult {
    if args.name.is_some() && args.file.len() > 1 {
        return Err(CliError::usage("--name names one file; give one --file with it"));
    }
    if args.file.iter().filter(|f| *f == "-").count() > 1 {
        return Err(CliError::usage("stdin can be read as one file only (--file - once)"));
    }
    let files = args
        .file
        .iter()
        .map(|path| crate::attach::LocalFile::read(path, args.name.as_deref(), args.mime.as_deref()))
        .collect::<CliResult<Vec<_>>>()?;
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let mut batch = Batch::open(ctx, &ctx.out, room, kind(args), args.txn_prefix.clone()).await?;
    batch.send_files(&files).await
}
