//! `ratchet keys export`.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::ui::output::Record;

/// Export the Megolm room keys this device holds to an encrypted file.
///
/// The file is in the standard key-export format (Element can import it),
/// encrypted with a passphrase from --passphrase-stdin,
/// RATCHET_KEYS_PASSPHRASE, or a prompt — never an argument. An existing
/// file is never overwritten.
///
/// Examples:
///
///   ratchet keys export keys.txt
///   echo "$PASS" | ratchet keys export keys.txt --room '!room:example.org' --passphrase-stdin
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ExportArgs {
    /// Where to write the key file (must not exist)
    file: PathBuf,
    /// Only this room's keys
    #[arg(long, value_parser = rooms::parse_room)]
    room: Option<rooms::RoomArg>,
    /// Read the passphrase from the first line of stdin
    #[arg(long)]
    passphrase_stdin: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ExportedRecord {
    file: String,
    exported: usize,
}

impl Record for ExportedRecord {
    const TYPE: &'static str = "keys_exported";
    fn human(&self) -> String {
        format!("exported {} room key(s) to {}", self.exported, self.file)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_export(ctx: &mut CommandContext, args: &ExportArgs) -> CliResult {
    if args.file.exists() {
        return Err(CliError::failed(format!("{} exists; not overwriting it", args.file.display()))
            .with_hint("choose another file name"));
    }
    let passphrase = super::passphrase(ctx, args.passphrase_stdin, true)?;
    let client = ctx.client().await?;
    let room_id = match &args.room {
        Some(r) => Some(rooms::find(&client, r).await?.room_id().to_owned()),
        None => None,
    };
    let mut exported = 0;
    let progress = ctx.out.progress("exporting room keys");
    // Written beside the target under a temporary name, then moved into
    // place only if nothing took the name meanwhile: never a clobbered
    // file, never a half-written one under the name asked for.
    let dir = match args.file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".ratchet-export-")
        .tempfile_in(&dir)
        .map_err(|e| CliError::failed(format!("cannot write in {}", dir.display())).with_source(e))?;
    client
        .encryption()
        .export_room_keys(staging.path().to_owned(), passphrase.expose(), |s| {
            let wanted = room_id.as_deref().is_none_or(|r| s.room_id() == r);
            if wanted {
                exported += 1;
            }
            wanted
        })
        .await?;
    staging.persist_noclobber(&args.file).map_err(|e| {
        CliError::failed(format!("{} appeared meanwhile; not overwriting it", args.file.display())).with_source(e.error)
    })?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    ctx.out.data(&ExportedRecord { file: args.file.display().to_string(), exported })
}
