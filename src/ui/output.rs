//! All printing goes through [`Output`]: data records on stdout (human text
//! or JSON Lines), status, warnings and errors on stderr. Commands never call
//! `println!`/`eprintln!` themselves, so `--json` and `-q` hold everywhere.
//!
//! A record is one `Serialize` struct per kind of data; the JSON renderer and
//! the human renderer read the same struct, so they cannot drift apart.

use std::io::{self, IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::error::{CliError, ErrorKind};
use crate::ui::terminal::inert_text;

/// One unit of data on stdout. `TYPE` becomes the `"type"` field of the JSON
/// line; `human` renders the same data for a terminal (no trailing newline).
pub(crate) trait Record: Serialize {
    const TYPE: &'static str;
    fn human(&self) -> String;
}

/// Progress or status for a person, under `--json`: one line on
/// **stderr** (silenced by `-q` as in human mode).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct StatusRecord {
    message: String,
}

impl Record for StatusRecord {
    const TYPE: &'static str = "status";
    fn human(&self) -> String {
        self.message.clone()
    }
}

/// A warning, under `--json`: one line on **stderr**, so that a script
/// reading stderr parses every line.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct WarningRecord {
    message: String,
}

impl Record for WarningRecord {
    const TYPE: &'static str = "warning";
    fn human(&self) -> String {
        format!("warning: {}", self.message)
    }
}

/// The error, under `--json`: one line on **stderr** (stdout stays data).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ErrorRecord {
    /// failed, usage, partial, auth, refused, internal or declined (the
    /// user answered no to a confirmation).
    kind: &'static str,
    exit_code: u8,
    message: String,
    causes: Vec<String>,
    hints: Vec<String>,
    /// When a room name was ambiguous: the rooms it named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    candidates: Vec<crate::error::Candidate>,
}

impl Record for ErrorRecord {
    const TYPE: &'static str = "error";
    fn human(&self) -> String {
        format!("error: {}", self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug)]
pub(crate) struct Output {
    json: bool,
    quiet: bool,
    color: bool,
    /// When capturing (see [`Output::capturing`]), records go here, in
    /// both forms, instead of to stdout.
    captured: Option<std::sync::Mutex<Vec<Captured>>>,
    /// When relaying (see [`Output::relaying`]), records, status and
    /// warnings go here, for another process to print.
    relayed: Option<tokio::sync::mpsc::UnboundedSender<Relayed>>,
}

/// What a relaying output was given, in order: printed by the process the
/// work is done for (the warm path, `warm`), as if it had been its own.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Relayed {
    Data { json: String, human: String },
    Status { message: String },
    Warn { message: String },
}

/// A record kept for later, in both of its forms.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Captured {
    pub(crate) json: String,
    pub(crate) human: String,
}

impl Output {
    /// `--color auto` follows anstream: colour on a terminal, unless
    /// `NO_COLOR` is set (or `TERM=dumb`); `CLICOLOR_FORCE` forces it. The
    /// decision is made here once and also drives the log's colours.
    pub(crate) fn new(json: bool, quiet: bool, color: ColorChoice) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => anstream::AutoStream::choice(&io::stderr()) != anstream::ColorChoice::Never,
        };
        Output { json, quiet, color, captured: None, relayed: None }
    }

    /// An output whose records are kept (both forms) rather than printed;
    /// status, warnings and errors still go to stderr.
    pub(crate) fn capturing(&self) -> Output {
        Output {
            json: self.json,
            quiet: self.quiet,
            color: self.color,
            captured: Some(Default::default()),
            relayed: None,
        }
    }

    /// An output whose records, status lines and warnings go, in order, to
    /// `to`, for another process to print ([`Output::print_relayed`]).
    pub(crate) fn relaying(to: tokio::sync::mpsc::UnboundedSender<Relayed>) -> Output {
        Output { json: false, quiet: false, color: false, captured: None, relayed: Some(to) }
    }

    /// Whether this output relays to another process.
    pub(crate) fn is_relaying(&self) -> bool {
        self.relayed.is_some()
    }

    /// Relays `item` if this output relays (a receiver gone is no error:
    /// the work goes on, as it does when stdout's reader leaves).
    fn relay(&self, item: Relayed) -> bool {
        match &self.relayed {
            Some(to) => {
                let _ = to.send(item);
                true
            }
            None => false,
        }
    }

    /// Prints what another process's relaying output was given, in this
    /// output's form (the human form was made inert where it was made).
    pub(crate) fn print_relayed(&self, item: Relayed) -> Result<(), CliError> {
        match item {
            Relayed::Data { json, human } => {
                let line = if self.json { json } else { inert_text(&human) };
                if line.is_empty() {
                    return Ok(());
                }
                let mut stdout = io::stdout().lock();
                writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(stdout_error)
            }
            Relayed::Status { message } => {
                self.status(message);
                Ok(())
            }
            Relayed::Warn { message } => {
                self.warn(message);
                Ok(())
            }
        }
    }

    /// What a capturing output kept.
    pub(crate) fn take_captured(&self) -> Vec<Captured> {
        self.captured
            .as_ref()
            .map(|c| std::mem::take(&mut *c.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default()
    }

    /// How many records a capturing output holds so far.
    pub(crate) fn captured_len(&self) -> usize {
        self.captured.as_ref().map_or(0, |c| c.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Prints a record kept earlier, in this output's form; its JSON form
    /// carries `cursor` (second, after `type`).
    pub(crate) fn replay(&self, record: &Captured, cursor: &str) -> Result<(), CliError> {
        if !self.json && record.human.is_empty() {
            return Ok(()); // a record with no human line (`EventRecord::quiet`)
        }
        let line = if self.json { with_cursor(&record.json, cursor) } else { inert_text(&record.human) };
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(stdout_error)
    }

    /// Whether stderr gets colour.
    pub(crate) fn color(&self) -> bool {
        self.color
    }

    /// Writes one record to stdout and flushes it, so a pipeline sees each
    /// record as it is produced.
    pub(crate) fn data<R: Record>(&self, record: &R) -> Result<(), CliError> {
        if self.relayed.is_some() {
            let item = Relayed::Data { json: json_line(R::TYPE, record)?, human: inert_text(&record.human()) };
            self.relay(item);
            return Ok(());
        }
        if let Some(kept) = &self.captured {
            let captured = Captured { json: json_line(R::TYPE, record)?, human: inert_text(&record.human()) };
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(captured);
            return Ok(());
        }
        let line = if self.json { json_line(R::TYPE, record)? } else { inert_text(&record.human()) };
        if line.is_empty() {
            return Ok(()); // a record with no human line (`EventRecord::quiet`)
        }
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(stdout_error)
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Bytes that are the command's whole output (a completion script, a man
    /// page), as they are.
    pub(crate) fn raw(&self, bytes: &[u8]) -> Result<(), CliError> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(stdout_error)
    }

    /// A spinner for long work, on stderr — only when stderr is a terminal
    /// and `-q` is not given; otherwise nothing (scripts see no escape
    /// codes).
    pub(crate) fn progress(&self, message: &str) -> Option<indicatif::ProgressBar> {
        if self.quiet || !io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    }

    /// Progress and status for a person: stderr, silenced by `-q`.
    pub(crate) fn status(&self, message: impl AsRef<str>) {
        if self.relay(Relayed::Status { message: message.as_ref().to_owned() }) || self.quiet {
            return;
        }
        if self.json {
            let record = StatusRecord { message: message.as_ref().to_owned() };
            if let Ok(line) = json_line(StatusRecord::TYPE, &record) {
                to_stderr(&format!("{line}\n"));
            }
            return;
        }
        to_stderr(&format!("{}\n", inert_text(message.as_ref())));
    }

    /// Something the user should know even with `-q` (under `--json`, a
    /// `warning` record on stderr).
    pub(crate) fn warn(&self, message: impl AsRef<str>) {
        if self.relay(Relayed::Warn { message: message.as_ref().to_owned() }) {
            return;
        }
        if self.json {
            let record = WarningRecord { message: message.as_ref().to_owned() };
            if let Ok(line) = json_line(WarningRecord::TYPE, &record) {
                to_stderr(&format!("{line}\n"));
            }
            return;
        }
        let label = self.paint("warning:", AnsiColor::Yellow.on_default());
        to_stderr(&format!("{label} {}\n", inert_text(message.as_ref())));
    }

    /// The single place errors are printed: `error:`, `Caused by:`, `hint:`
    /// in human form, and under `--json` also one JSON line on stderr.
    pub(crate) fn error(&self, err: &CliError) {
        if err.kind == ErrorKind::Declined && !self.json {
            to_stderr(&format!("{}\n", inert_text(&err.message)));
            return;
        }
        let mut text =
            format!("{} {}\n", self.paint("error:", AnsiColor::Red.on_default().bold()), inert_text(&err.message));
        let causes = err.causes();
        if !causes.is_empty() {
            text.push_str("\nCaused by:\n");
            for cause in &causes {
                text.push_str(&format!("  {}\n", inert_text(cause)));
            }
        }
        for hint in &err.hints {
            text.push_str(&format!("{} {}\n", self.paint("hint:", AnsiColor::Cyan.on_default()), inert_text(hint)));
        }
        // Under --json the error is one JSON line and nothing else, so a
        // script reading stderr parses every line.
        if self.json {
            text.clear();
            let record = ErrorRecord {
                kind: err.kind.name(),
                exit_code: err.kind.exit_code(),
                message: err.message.clone(),
                causes,
                hints: err.hints.clone(),
                candidates: err.candidates.clone(),
            };
            if let Ok(line) = json_line(ErrorRecord::TYPE, &record) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        to_stderr(&text);
    }

    fn paint(&self, text: &str, style: Style) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }
}

/// Writes to stderr, ignoring failure: a closed or full stderr (`2>&-`, a
/// reader that went away) must never turn a status line into a panic
/// (`eprintln!` panics on EPIPE).
fn to_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// The JSON form of a record: `type` first, then the record's own fields.
pub(crate) fn json_line<R: Serialize>(kind: &str, record: &R) -> Result<String, CliError> {
    let value =
        serde_json::to_value(record).map_err(|e| CliError::internal("could not serialise a record").with_source(e))?;
    let mut map = serde_json::Map::new();
    map.insert("type".to_owned(), serde_json::Value::from(kind));
    match value {
        serde_json::Value::Object(fields) => map.extend(fields),
        other => {
            map.insert("value".to_owned(), other);
        }
    }
    Ok(serde_json::Value::Object(map).to_string())
}

/// A JSON record line with `"cursor"` placed after `"type"`.
fn with_cursor(json: &str, cursor: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_owned();
    };
    let mut map = serde_json::Map::new();
    let mut rest = fields.into_iter();
    if let Some((k, v)) = rest.next() {
        map.insert(k, v);
    }
    map.insert("cursor".to_owned(), serde_json::Value::from(cursor));
    map.extend(rest.filter(|(k, _)| k != "cursor"));
    serde_json::Value::Object(map).to_string()
}

fn stdout_error(err: io::Error) -> CliError {
    // `ratchet … | head` closes the pipe early; that is success, as in ripgrep.
    if err.kind() == io::ErrorKind::BrokenPipe {
        CliError::new(ErrorKind::PipeClosed, "stdout was closed")
    } else {
        CliError::failed("could not write to stdout").with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        name: &'static str,
    }

    #[test]
    fn json_lines_put_type_first() {
        let line = json_line("sample", &Sample { name: "x" }).unwrap();
        assert_eq!(line, r#"{"type":"sample","name":"x"}"#);
        assert_eq!(with_cursor(&line, "ab-7"), r#"{"type":"sample","cursor":"ab-7","name":"x"}"#);
    }
}
