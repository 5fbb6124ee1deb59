//! Sending messages into one room, in order: what `send` and `chat` share.
//! Before each message the room's outbound Megolm session is checked
//! against its rotation limits (R4, R5) and rotated when one is reached;
//! each message's `sent` record names its session and index.

use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::Room;
use serde::Serialize;

use crate::context::CommandContext;
use crate::e2ee::rotation::{RoomLimits, Rotation};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::events::short;
use crate::profile::megolm_ledger::MegolmLedger;
use crate::profile::state::{self, JournalEntry, Position};
use crate::profile::Ledger;
use crate::sdk::megolm;
use crate::ui::output::{Output, Record};

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SentRecord {
    room_id: String,
    event_id: String,
    /// 1-based position of this message in the batch (argument or line).
    seq: usize,
    encrypted: bool,
    session_id: Option<String>,
    message_index: Option<u32>,
    /// Whether this message is the first of a new Megolm session.
    new_session: bool,
    /// Why a new session was started: new, message_limit, age_limit,
    /// forced, invalidated, member_left or sdk.
    rotation: Option<&'static str>,
    /// With --txn-prefix: delivered by an earlier run, not sent again.
    already_sent: bool,
    /// A file's `mxc://` URI (`send --file`; encrypted content in an
    /// encrypted room); null for a text message.
    mxc: Option<String>,
}

impl Record for SentRecord {
    const TYPE: &'static str = "sent";
    fn human(&self) -> String {
        let mut rotated = self.rotation.map(|r| format!("  (new session: {r})")).unwrap_or_default();
        if self.already_sent {
            rotated.push_str("  (already sent)");
        }
        if let Some(mxc) = &self.mxc {
            rotated.push_str(&format!("  {mxc}"));
        }
        match (&self.session_id, self.message_index) {
            (Some(s), Some(i)) => format!("{}  megolm {} #{i}{rotated}", self.event_id, short(s)),
            (Some(s), None) => format!("{}  megolm {}{rotated}", self.event_id, short(s)),
            _ => format!("{}  (not encrypted){rotated}", self.event_id),
        }
    }
}

/// What one message of a batch is.
#[derive(Clone, Copy)]
enum Payload<'p> {
    Text(&'p str),
    File(&'p crate::attach::LocalFile),
}

impl Payload<'_> {
    /// What the send journal keeps of it (a SHA-256, hex): the same prefix
    /// for other content is refused.
    fn identity(&self) -> String {
        match self {
            Payload::Text(text) => state::text_hash(text),
            Payload::File(file) => state::text_hash(&format!("file\u{0}{}\u{0}{}", file.name, file.sha256)),
        }
    }
}

/// Whether this process has warned that its device is not cross-signed.
static UNSIGNED_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One `send` invocation's messages (or one turn of `chat`'s), in order,
/// into one room.
pub(crate) struct Batch<'a> {
    pub(crate) ctx: &'a CommandContext,
    /// Where records, status and warnings go: the command's own output, or
    /// the warm path's relay to the process that asked (`warm`).
    pub(crate) out: &'a Output,
    room: Room,
    /// The room's rotation limits; `None` for an unencrypted room.
    limits: Option<RoomLimits>,
    ledger: Ledger<MegolmLedger>,
    /// How many went out (or were already sent, with --txn-prefix).
    pub(crate) sent: usize,
    /// Of those, the ones this run delivered (not `already_sent` by an
    /// earlier run under the same --txn-prefix).
    fresh: usize,
    txn_prefix: Option<String>,
    /// With --txn-prefix, the device whose journal (in the state
    /// database) records each delivered message.
    journal: Option<String>,
    /// stdout's reader went away: records are no longer printed.
    reader_gone: bool,
    /// The Megolm session this batch shared (see `megolm::before_send`).
    shared: Option<String>,
    kind: Kind,
}

/// The msgtype of the messages.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Text,
    Notice,
    Emote,
}

impl<'a> Batch<'a> {
    /// Ready to send into `room`: its rotation limits read and recorded
    /// (R3), the journal opened for --txn-prefix.
    pub(crate) async fn open(
        ctx: &'a CommandContext,
        out: &'a Output,
        room: Room,
        kind: Kind,
        txn_prefix: Option<String>,
    ) -> CliResult<Batch<'a>> {
        let encrypted = room.latest_encryption_state().await?.is_encrypted();
        // Said once per command, in any mode: what this device sends is not
        // decrypted by Element users in its default mode (MSC4153).
        // (Each process the warm path serves hears it too.)
        if encrypted
            && (out.is_relaying() || !UNSIGNED_WARNED.swap(true, std::sync::atomic::Ordering::SeqCst))
            && !crate::sdk::trust::own_device_cross_signed(&room.client()).await.unwrap_or(true)
        {
            out.warn(format!(
                "this device is not cross-signed by your identity: Element users (who exclude insecure devices by \
                 default) will not decrypt what it sends; `{}` says how to verify it",
                crate::ui::hint::ratchet("identity")
            ));
        }
        let mut ledger = ctx.megolm_ledger()?;
        let limits = if encrypted {
            let limits = megolm::record_limits(&room, &mut ledger)
                .ok_or_else(|| CliError::internal("encrypted room without settings"))?;
            if limits.kept_by_r3 {
                out.warn("the room's encryption settings were loosened; keeping the stricter limits seen before (R3)");
            }
            ledger.save()?;
            Some(limits)
        } else {
            None
        };
        let journal = txn_prefix.as_ref().map(|_| room.client().device_id().map(|d| d.to_string()).unwrap_or_default());
        Ok(Batch {
            ctx,
            out,
            room,
            limits,
            ledger,
            sent: 0,
            fresh: 0,
            txn_prefix,
            journal,
            reader_gone: false,
            shared: None,
            kind,
        })
    }

    pub(crate) async fn send(&mut self, seq: usize, text: &str) -> CliResult {
        self.send_payload(seq, Payload::Text(text)).await
    }

    /// Sends files, one message each (`send --file`): uploaded (encrypted
    /// in an encrypted room) only when not already sent under the same
    /// --txn-prefix, then sent as any message is (R4/R5 count it).
    pub(crate) async fn send_files(&mut self, files: &[crate::attach::LocalFile]) -> CliResult {
        crate::sdk::media::check_upload_limit(&self.room.client(), files).await?;
        for (i, file) in files.iter().enumerate() {
            self.send_payload(i + 1, Payload::File(file)).await?;
        }
        self.finish();
        Ok(())
    }

    async fn send_payload(&mut self, seq: usize, payload: Payload<'_>) -> CliResult {
        let identity = payload.identity();
        let txn_id = self.txn_prefix.as_ref().map(|p| format!("{p}-{seq}"));
        // A journal entry without an event id: a run before this one was
        // stopped between writing it and recording the server's answer.
        let mut interrupted = false;
        // With it, the file that run uploaded (the event the server may
        // answer with carries that one).
        let mut earlier_mxc = None;
        if let (Some(device), Some(txn)) = (&self.journal, &txn_id) {
            if let Some(done) = self.ctx.state()?.journal_get(device, self.room.room_id().as_str(), txn)? {
                if done.text_sha256 != identity {
                    // The same prefix for other text (tonight's report under
                    // last night's prefix) is not the same batch: refuse
                    // rather than call it sent.
                    let prefix = self.txn_prefix.as_deref().unwrap_or("");
                    return Err(self.stop(
                        seq,
                        CliError::usage(format!(
                            "transaction id {txn} was already used for a different message in this room"
                        ))
                        .with_hint(format!(
                            "--txn-prefix names one batch; use a new prefix for new content, e.g. {prefix}-$(date +%F)"
                        )),
                    ));
                }
                match &done.event_id {
                    Some(event_id) => {
                        self.sent += 1;
                        return self.emit(&SentRecord {
                            room_id: done.room_id.clone(),
                            event_id: event_id.clone(),
                            seq,
                            encrypted: done.was_encrypted(),
                            session_id: done.session_id.clone(),
                            message_index: done.message_index,
                            new_session: false,
                            rotation: None,
                            already_sent: true,
                            mxc: done.mxc.clone(),
                        });
                    }
                    None if done
                        .intent_ms
                        .is_some_and(|at| crate::clock::now_ms().saturating_sub(at) > state::SERVER_TXN_MEMORY_MS) =>
                    {
                        // The server has forgotten the transaction id by now:
                        // sent again, it would be a second event if the first
                        // went through.
                        let err = CliError::failed(format!(
                            "message {seq} may have been sent more than a day ago by a run stopped before the server \
                             answered, and servers forget transaction ids after a day (Synapse: 24 hours), so sending \
                             it again could post it twice; nothing was sent"
                        ))
                        .with_hint(format!(
                            "look for it in the room: `{}`",
                            crate::ui::hint::ratchet("messages").arg(self.room.room_id().as_str())
                        ))
                        .with_hint("then send what is missing under a new --txn-prefix");
                        return Err(self.stop_with(seq, err, Stopped::Final));
                    }
                    None => {
                        interrupted = true;
                        earlier_mxc.clone_from(&done.mxc);
                    }
                }
            }
        }
        if let Payload::Text(text) = payload {
            if let Some(err) = too_large(text, self.limits.is_some()) {
                return Err(self.stop(seq, err));
            }
        }
        // The content; a file is uploaded first (before R4/R5's checks, so
        // the upload's time cannot age the session past its limit).
        let (content, mxc) = match payload {
            Payload::Text(text) => (
                match self.kind {
                    Kind::Text => RoomMessageEventContent::text_plain(text),
                    Kind::Notice => RoomMessageEventContent::notice_plain(text),
                    Kind::Emote => RoomMessageEventContent::emote_plain(text),
                },
                None,
            ),
            Payload::File(file) => {
                match crate::sdk::media::upload(&self.room.client(), file, self.limits.is_some()).await {
                    Ok((source, url)) => (crate::sdk::media::content(file, source), Some(url)),
                    Err(e) => return Err(self.stop(seq, e)),
                }
            }
        };
        if let (Some(device), Some(txn)) = (&self.journal, &txn_id) {
            // The intent, before the request: see `interrupted`. Written
            // before R4/R5's checks, so no write comes between the last age
            // check and the encryption.
            let intent = JournalEntry {
                room_id: self.room.room_id().to_string(),
                txn_id: txn.clone(),
                text_sha256: identity.clone(),
                event_id: None,
                session_id: None,
                message_index: None,
                encrypted: Some(self.limits.is_some()),
                intent_ms: Some(crate::clock::now_ms()),
                mxc: mxc.clone(),
            };
            if let Err(e) = self.ctx.state().and_then(|db| db.journal_put(device, &intent)) {
                return Err(self.stop(seq, e));
            }
        }
        // R4/R5: rotate first if the current session has reached a limit.
        let prepared = match &self.limits {
            Some(limits) => match megolm::before_send(&self.room, limits, &self.ledger, self.shared.as_deref()).await {
                Ok(mut prepared) => {
                    warn_unreachable(self.out, &prepared.unreachable);
                    keep_shares(self.out, self.ctx.state(), std::mem::take(&mut prepared.shares));
                    Some(prepared)
                }
                Err(e) => return Err(self.stop(seq, e)),
            },
            None => None,
        };
        // Encrypted: straight to the PUT, as the key share is done (see
        // `megolm::send_encrypted`). The session and index are the ones the
        // ciphertext says.
        let result = if self.limits.is_some() {
            megolm::send_encrypted(&self.room, &content, txn_id.as_deref())
                .await
                .map(|s| (s.event_id, s.session_id, s.message_index))
        } else {
            let mut request = self.room.send(content);
            if let Some(txn) = &txn_id {
                request = request.with_transaction_id(txn.as_str().into());
            }
            request.await.map(|r| (r.response.event_id, None, None)).map_err(CliError::from)
        };
        let (event, mut session_id, mut message_index) = match result {
            Ok(r) => r,
            // The connection broke after the request went (or a 5xx): the
            // server may have the message.
            Err(e) if e.may_have_reached_server() => return Err(self.stop_with(seq, e, Stopped::Uncertain)),
            Err(e) => return Err(self.stop(seq, e)),
        };
        crate::process::kill_point("sent");
        // The server has the message: from here on nothing may fail the
        // message itself. What could not be recorded is said, the record is
        // printed all the same, and the batch stops partial (exit 3), as
        // the rules' state may be behind.
        let event_id = event.to_string();
        let mut trouble: Vec<String> = Vec::new();
        if self.limits.is_some() && (session_id.is_none() || message_index.is_none()) {
            trouble.push("the encrypted message's session or index could not be read from its ciphertext".into());
        }
        // This batch shared the session it encrypted with (its key share
        // ran for this message, or for an earlier one in the same session).
        if session_id.is_some() {
            self.shared.clone_from(&session_id);
        }
        let rotation = match (&prepared, &session_id) {
            (Some(p), Some(sid)) => match megolm::after_send(&self.room, p, sid, &mut self.ledger).await {
                Ok(rotation) => {
                    if rotation.is_some() {
                        if let Err(e) = self.ledger.save() {
                            trouble.push(format!("the rotation ledger was not saved: {}", e.message));
                        }
                    }
                    rotation
                }
                Err(e) => {
                    trouble.push(format!("the rotation ledger was not updated: {}", e.message));
                    None
                }
            },
            _ => None,
        };
        let mut rotation = rotation;
        let mut deduplicated = false;
        if interrupted {
            // The server may have answered with the event the run before
            // sent (same transaction id): its own ciphertext says which
            // session and index it used, not this run's encryption (which
            // the server threw away: what it rotated is not this event's).
            let fetched = match crate::process::fail_point("event_json") {
                Ok(()) => crate::sdk::event_json(&self.room, &event).await,
                Err(e) => Err(e),
            };
            match fetched {
                Ok(original) => {
                    let (sid, index) = crate::events::megolm_position(&original);
                    if sid.is_some() && (sid != session_id || index != message_index) {
                        deduplicated = true;
                        rotation = None;
                    }
                    if sid.is_some() {
                        session_id = sid;
                        message_index = index;
                    }
                }
                Err(e) => {
                    trouble.push(format!("the event could not be fetched to read its session: {}", e.message));
                    session_id = None;
                    message_index = None;
                }
            }
        }
        self.sent += 1;
        self.fresh += 1;
        if let (Some(session_id), Some(message_index)) = (&session_id, message_index) {
            // For the echo's record in a later sync (best effort).
            let position = Position { event_id: event_id.clone(), session_id: session_id.clone(), message_index };
            if let Err(e) = self.ctx.state().and_then(|db| db.put_position(&position)) {
                tracing::debug!(error = %e.message, "could not keep the message's position for its echo");
            }
        }
        if let (Some(device), Some(txn)) = (&self.journal, txn_id) {
            let entry = JournalEntry {
                room_id: self.room.room_id().to_string(),
                txn_id: txn,
                text_sha256: identity,
                event_id: Some(event_id.clone()),
                session_id: session_id.clone(),
                message_index,
                encrypted: Some(session_id.is_some() || self.limits.is_some()),
                intent_ms: None,
                mxc: mxc.clone(),
            };
            let written = crate::process::fail_point("journal_sent")
                .and_then(|()| self.ctx.state())
                .and_then(|db| db.journal_put(device, &entry));
            if let Err(e) = written {
                trouble.push(format!("the send journal was not written: {}", e.message));
            }
        }
        self.emit(&SentRecord {
            room_id: self.room.room_id().to_string(),
            event_id: event_id.clone(),
            seq,
            encrypted: session_id.is_some() || self.limits.is_some(),
            session_id,
            message_index,
            new_session: rotation.is_some(),
            rotation: rotation.map(Rotation::name),
            already_sent: deduplicated,
            mxc: if deduplicated { earlier_mxc.or(mxc) } else { mxc },
        })?;
        if trouble.is_empty() {
            return Ok(());
        }
        let mut stopped = CliError::new(
            ErrorKind::Partial,
            format!("message {seq} was sent ({event_id}), but {}", trouble.join("; ")),
        )
        .with_hint("do not send it again: the server has it");
        if self.txn_prefix.is_some() {
            stopped = stopped.with_hint("a rerun with the same --txn-prefix goes on after it without resending");
        }
        Err(stopped)
    }

    /// Sends one message per argument, in order; blank ones are skipped
    /// (and said), as blank lines of stdin are. `send TEXT…` and the warm
    /// path (`warm`) both end here.
    pub(crate) async fn send_arguments(&mut self, texts: &[String]) -> CliResult {
        for (i, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                self.out.warn(format!("argument {} is empty; skipped", i + 1));
                continue;
            }
            self.send(i + 1, text).await?;
        }
        if self.sent == 0 {
            return Err(CliError::usage("every message given is empty; nothing was sent"));
        }
        self.finish();
        Ok(())
    }

    /// The end of a batch that went through: if stdout's reader left, say on
    /// stderr that the messages went out all the same.
    pub(crate) fn finish(&self) {
        if self.reader_gone {
            self.out.status(format!(
                "stdout was closed by its reader; all {} message(s) were sent (records not printed)",
                self.sent
            ));
        }
    }

    /// Prints a record. If the reader of stdout went away (`… | head -1`),
    /// the batch goes on regardless: a closed pipe never stops work that
    /// changes the world. The end of the batch says so on stderr.
    fn emit(&mut self, record: &SentRecord) -> CliResult {
        if self.reader_gone {
            return Ok(());
        }
        match self.out.data(record) {
            Err(e) if e.kind == ErrorKind::PipeClosed => {
                self.reader_gone = true;
                Ok(())
            }
            other => other,
        }
    }

    /// The error that ends a batch at message `seq`: partial (3) once
    /// something went out, and it says what did not.
    pub(crate) fn stop(&self, seq: usize, err: CliError) -> CliError {
        self.stop_with(seq, err, Stopped::NotSent)
    }

    /// The batch's error when message `seq` failed as `how` says: what was
    /// sent before it, and whether (and how) a rerun finishes the batch.
    fn stop_with(&self, seq: usize, err: CliError, how: Stopped) -> CliError {
        if err.kind == ErrorKind::PipeClosed {
            return err;
        }
        let this = match how {
            Stopped::Uncertain => format!("message {seq} may have reached the server (no answer came)"),
            Stopped::NotSent | Stopped::Final => format!("message {seq} failed"),
        };
        let mut stopped = if self.fresh == 0 && self.sent > 0 {
            // Only messages an earlier run delivered (`already_sent`): this
            // run changed nothing, and the error is what it is (a
            // --txn-prefix reused for other text is bad input, exit 2).
            CliError::new(
                err.kind,
                format!(
                    "{this}, nothing {}new was sent (the {} before it went out in an earlier run): {}",
                    if how == Stopped::Uncertain { "else " } else { "" },
                    self.sent,
                    err.message
                ),
            )
        } else if self.sent == 0 {
            match how {
                Stopped::Uncertain => CliError::new(err.kind, format!("{this}: {}", err.message)),
                _ => CliError::new(err.kind, format!("{this}, nothing was sent: {}", err.message)),
            }
        } else {
            let this = match how {
                Stopped::Uncertain => format!("{this}, and the rest were not sent"),
                Stopped::NotSent | Stopped::Final => format!("message {seq} and the rest were not sent"),
            };
            CliError::new(ErrorKind::Partial, format!("sent {} message(s); {this}: {}", self.sent, err.message))
        };
        let bad_input = err.kind == ErrorKind::Usage;
        stopped.hints = err.hints;
        stopped.source = err.source;
        if how == Stopped::Uncertain {
            if self.sent > 0 && self.fresh > 0 {
                stopped =
                    stopped.with_hint("the `sent` records above are the messages delivered (seq is the position)");
            }
            return if self.txn_prefix.is_some() {
                stopped.with_hint(
                    "run the same command again (same --txn-prefix, same input): a server that has the message \
                     answers with its event, so nothing is sent twice",
                )
            } else {
                stopped
                    .with_hint(format!(
                        "it may be in the room: look (`{}`) before sending it again",
                        crate::ui::hint::ratchet("messages").arg(self.room.room_id().as_str())
                    ))
                    .with_hint("with --txn-prefix a rerun after such an error is safe: nothing is sent twice")
            };
        }
        if self.sent == 0 || (self.fresh == 0 && bad_input) || how == Stopped::Final {
            // Running it again as it is would fail the same way.
            return stopped;
        }
        if self.fresh == 0 {
            return stopped.with_hint(
                "run the same command again (same --txn-prefix, same input) to deliver the rest exactly once",
            );
        }
        stopped = stopped.with_hint("the `sent` records above are the messages delivered (seq is the position)");
        if self.txn_prefix.is_some() {
            stopped.with_hint(
                "run the same command again (same --txn-prefix, same input) to deliver the rest exactly once",
            )
        } else {
            stopped.with_hint("with --txn-prefix a rerun delivers the rest exactly once")
        }
    }
}

/// How a batch's message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// It was not sent: a rerun (with --txn-prefix) finishes the batch.
    NotSent,
    /// The server may have it: the connection broke after the request.
    Uncertain,
    /// Not sent, and a rerun would stop the same way.
    Final,
}

/// clap value parser for `--txn-prefix`: a prefix that makes valid,
/// readable transaction ids.
pub(crate) fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, `.`, `_` or `-`".to_owned())
    }
}

/// One line of stdin (without its `\n`) as message text: a trailing `\r`
/// (Windows line ends) is dropped; a blank line is `None` (skipped); bytes
/// that are not UTF-8 are an error, never replaced or guessed at.
pub(crate) fn decode_line(raw: Vec<u8>) -> Result<Option<String>, ()> {
    let mut text = String::from_utf8(raw).map_err(|_| ())?;
    if text.ends_with('\r') {
        text.pop();
    }
    Ok((!text.trim().is_empty()).then_some(text))
}

/// Matrix limits a whole event to 65536 bytes. Megolm encryption wraps the
/// event JSON and base64-encodes it, adding about a third, so an encrypted
/// room takes less text. Refusing here, before anything is encrypted or
/// sent, costs no Megolm index and says what to do.
const MAX_EVENT_BYTES: usize = 65_536;
const MAX_TEXT_PLAIN: usize = 63_000;
const MAX_TEXT_ENCRYPTED: usize = 47_000;

fn too_large(text: &str, encrypted: bool) -> Option<CliError> {
    let max = if encrypted { MAX_TEXT_ENCRYPTED } else { MAX_TEXT_PLAIN };
    (text.len() > max).then(|| {
        CliError::usage(format!(
            "a message of {} bytes is too large: events are limited to {MAX_EVENT_BYTES} bytes, \
             about {max} bytes of text {}",
            text.len(),
            if encrypted { "once encrypted" } else { "in a plain room" }
        ))
        .with_hint("split it into several messages")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(parse_prefix("batch-2026.11_a").is_ok());
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn size_limits() {
        assert!(too_large(&"x".repeat(MAX_TEXT_ENCRYPTED), true).is_none());
        assert!(too_large(&"x".repeat(MAX_TEXT_ENCRYPTED + 1), true).is_some());
        assert!(too_large(&"x".repeat(MAX_TEXT_ENCRYPTED + 1), false).is_none());
        assert!(too_large(&"x".repeat(MAX_TEXT_PLAIN + 1), false).is_some());
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::decode_line;

    proptest! {
        /// Any line of text comes back exactly, less one trailing `\r`.
        #[test]
        fn text_lines_round_trip(s in "[^\n]*", crlf in any::<bool>()) {
            let mut raw = s.clone().into_bytes();
            if crlf { raw.push(b'\r'); }
            let expected = if crlf { s.clone() } else { s.strip_suffix('\r').unwrap_or(&s).to_owned() };
            let got = decode_line(raw).unwrap();
            if expected.trim().is_empty() {
                prop_assert_eq!(got, None);
            } else {
                prop_assert_eq!(got, Some(expected));
            }
        }

        /// Bytes that are not UTF-8 are refused, never mangled.
        #[test]
        fn invalid_utf8_is_refused(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let valid = std::str::from_utf8(&raw).is_ok();
            prop_assert_eq!(decode_line(raw).is_ok(), valid);
        }
    }
}

/// Says, once per server per process, that a server's devices may not get
/// the room key: its one-time keys could not be claimed, so devices there
/// with no Olm session with this one were left out of the share.
/// Keeps the sharing records a key share made, for `doctor --sent`. They
/// explain; they enforce no rule: one that cannot be kept is said, and the
/// send goes on.
pub(crate) fn keep_shares(
    out: &crate::ui::output::Output,
    state: CliResult<&crate::profile::state::StateDb>,
    records: Vec<crate::profile::state::ShareRecord>,
) {
    if records.is_empty() {
        return;
    }
    let kept = state.and_then(|db| records.into_iter().try_for_each(|r| db.put_shares(r)));
    if let Err(e) = kept {
        out.warn(format!(
            "who the room key was given to was not recorded (doctor --sent will not know): {}",
            e.message
        ));
    }
}

pub(crate) fn warn_unreachable(out: &crate::ui::output::Output, servers: &[String]) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for server in servers {
        // Once per process; and once per request a follower serves, since
        // each is another process's to hear (their batches preshare once).
        let first = WARNED.lock().map(|mut w| w.insert(server.clone())).unwrap_or(true) || out.is_relaying();
        if first {
            out.warn(format!(
                "{} did not answer for one-time keys: its users' devices that have no Olm session with this \
                 one get no room key now, and cannot decrypt this message (they get the key of messages sent \
                 once it answers)",
                crate::ui::terminal::inert(server)
            ));
        }
    }
}
