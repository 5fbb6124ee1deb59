//! `ratchet keys import`.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::ui::output::Record;

/// Import Megolm room keys from an encrypted key file.
///
/// Reads a file from `ratchet keys export` (or Element's export). The
/// passphrase comes from --passphrase-stdin, RATCHET_KEYS_PASSPHRASE, or a
/// prompt. Keys already held from an earlier index are kept.
///
/// Example:
///
///   ratchet keys import keys.txt
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ImportArgs {
    /// The key file
    file: PathBuf,
    /// Read the passphrase from the first line of stdin
    #[arg(long)]
    passphrase_stdin: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ImportedRecord {
    file: String,
    /// Keys that were new or better than what this device held.
    imported: usize,
    /// Keys in the file.
    total: usize,
}

impl Record for ImportedRecord {
    const TYPE: &'static str = "keys_imported";
    fn human(&self) -> String {
        format!("imported {} of {} room key(s) from {}", self.imported, self.total, self.file)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_import(ctx: &mut CommandContext, args: &ImportArgs) -> CliResult {
    if !args.file.is_file() {
        return Err(CliError::failed(format!("{} is not a readable file", args.file.display())));
    }
    let passphrase = super::passphrase(ctx, args.passphrase_stdin, false)?;
    let client = ctx.client().await?;
    let progress = ctx.out.progress("importing room keys");
    let result = client.encryption().import_room_keys(args.file.clone(), passphrase.expose()).await.map_err(|e| {
        CliError::failed(format!("could not import {}", args.file.display()))
            .with_source(e)
            .with_hint("a wrong passphrase or a file that is not a key export gives this error")
    })?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    ctx.retry_undecryptable(&client).await;
    ctx.out.data(&ImportedRecord {
        file: args.file.display().to_string(),
        imported: result.imported_count,
        total: result.total_count,
    })
}
