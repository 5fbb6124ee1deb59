//! `ratchet download`: the file a message carries, decrypted and checked.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::events::{render, Rendered};
use crate::rooms;
use crate::ui::output::Record;

/// Download the file of a message (m.file, m.image, m.audio, m.video).
///
/// An encrypted file is checked against the SHA-256 its sender stated in
/// the (Megolm-encrypted) message before it is decrypted: a file changed on
/// the server is refused. The file is written whole under a temporary name
/// in the same directory and renamed, so a partial file never has the final
/// name; an existing file is not replaced without --force. -o - writes it to
/// stdout (its record then goes to stderr).
///
/// Examples:
///
///   ratchet download '!room:example.org' '$event' -o report.pdf
///   ratchet download '!room:example.org' '$event' -o - | tar xz
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct DownloadArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// The message's event id ($…)
    event: String,

    /// Where to write it (default: the file's own name, in the current directory); - for stdout
    #[arg(short, long, value_name = "PATH")]
    output: Option<String>,

    /// Replace an existing file
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DownloadedRecord {
    room_id: String,
    event_id: String,
    /// Where it was written; null for stdout.
    path: Option<String>,
    /// The file's name as the message gives it.
    name: Option<String>,
    size: u64,
    mimetype: Option<String>,
    /// SHA-256 of the (decrypted) file, hex.
    sha256: String,
    /// It was encrypted, and its stated hash checked.
    encrypted: bool,
}

impl Record for DownloadedRecord {
    const TYPE: &'static str = "downloaded";
    fn human(&self) -> String {
        let to = self.path.as_deref().unwrap_or("stdout");
        let checked = if self.encrypted { ", decrypted (hash checked)" } else { "" };
        format!("{} bytes to {to}{checked}", self.size)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_download(ctx: &mut CommandContext, args: &DownloadArgs) -> CliResult {
    let event_id = matrix_sdk::ruma::OwnedEventId::try_from(args.event.as_str()).map_err(|_| {
        CliError::usage(format!("`{}` is not an event id ($…)", crate::ui::terminal::inert(&args.event)))
    })?;
    let to_stdout = args.output.as_deref() == Some("-");
    // Refused before any request: an existing file without --force.
    if let Some(path) = args.output.as_deref().filter(|p| *p != "-") {
        let path = std::path::Path::new(path);
        if path.exists() && !args.force {
            return Err(CliError::usage(format!("{} exists; nothing was written", path.display()))
                .with_hint("add --force to replace it, or give another name with -o"));
        }
    }
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let original = crate::sdk::event_json(&room, &event_id).await?;
    let (content, encrypted_event) = if original["type"] == "m.room.encrypted" {
        let raw: matrix_sdk::ruma::serde::Raw<serde_json::Value> =
            matrix_sdk::ruma::serde::Raw::new(&original).map_err(|e| CliError::internal("event").with_source(e))?;
        let event = crate::events::decrypt(&room, &raw).await?;
        match render(room.room_id().as_str(), &event, Some(&original)) {
            Rendered::Message(_) => {}
            Rendered::Utd(utd) => {
                return Err(CliError::failed(format!(
                    "the message cannot be decrypted here ({}), so neither can its file; nothing was written",
                    utd.reason
                ))
                .with_hint(format!(
                    "`{}` says why and what may fix it",
                    crate::ui::hint::ratchet("doctor")
                        .arg(room.room_id().as_str())
                        .word("--event")
                        .arg(event_id.as_str())
                )));
            }
            Rendered::Other(_) => return Err(not_a_file(&event_id)),
        }
        let json: serde_json::Value = event.raw().deserialize_as().unwrap_or_default();
        (json["content"].clone(), true)
    } else {
        (original["content"].clone(), false)
    };
    let Some(file) = crate::attach::FileRef::of(&content) else { return Err(not_a_file(&event_id)) };
    if !encrypted_event && file.encrypted {
        tracing::debug!("an encrypted file in a plain event");
    }
    let bytes = crate::sdk::media::download(&client, &content).await?;
    use sha2::{Digest, Sha256};
    let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let path = if to_stdout {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes).and_then(|()| stdout.flush()).map_err(CliError::from)?;
        None
    } else {
        let path = match &args.output {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(safe_name(file.name.as_deref())),
        };
        crate::attach::write_atomically(&path, &bytes, args.force)?;
        Some(path.display().to_string())
    };
    let record = DownloadedRecord {
        room_id: room.room_id().to_string(),
        event_id: event_id.to_string(),
        path,
        name: file.name.clone(),
        size: bytes.len() as u64,
        mimetype: file.mimetype.clone(),
        sha256,
        encrypted: file.encrypted,
    };
    if to_stdout {
        // stdout holds the file: the record goes to stderr.
        ctx.out.status(record.human());
        Ok(())
    } else {
        ctx.out.data(&record)
    }
}

fn not_a_file(event_id: &matrix_sdk::ruma::EventId) -> CliError {
    CliError::usage(format!("{event_id} is not a message with a file (m.file, m.image, m.audio or m.video)"))
}

/// A file name from the network, made safe to write in the current
/// directory: no path, no leading dot, no control characters.
fn safe_name(name: Option<&str>) -> String {
    let base = name.unwrap_or("download").rsplit(['/', '\\']).next().unwrap_or("download");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim_start_matches('.').trim();
    if clean.is_empty() {
        "download".to_owned()
    } else {
        clean.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_from_the_network_stay_in_the_directory() {
        assert_eq!(safe_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_name(Some(".bashrc")), "bashrc");
        assert_eq!(safe_name(Some("a\u{1b}[2Jb.txt")), "a[2Jb.txt");
        assert_eq!(safe_name(None), "download");
        assert_eq!(safe_name(Some("..")), "download");
    }
}
