//! `ratchet keys …`: room keys — asking for them again, exporting, importing.

use clap::Subcommand;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::profile::session::Secret;
use crate::ui::prompt;

pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod request;

/// Request, export and import Megolm room keys.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    Request(request::RequestArgs),
    Export(export::ExportArgs),
    Import(import::ImportArgs),
}

pub(crate) async fn run(ctx: &mut CommandContext, command: &KeysCommand) -> CliResult {
    match command {
        KeysCommand::Request(args) => request::cmd_request(ctx, args).await,
        KeysCommand::Export(args) => export::cmd_export(ctx, args).await,
        KeysCommand::Import(args) => import::cmd_import(ctx, args).await,
    }
}

/// The key file passphrase: first line of stdin (--passphrase-stdin),
/// RATCHET_KEYS_PASSPHRASE, or a prompt (twice when `confirm`).
pub(crate) fn passphrase(ctx: &CommandContext, from_stdin: bool, confirm: bool) -> CliResult<Secret> {
    if from_stdin {
        return prompt::secret_from_stdin("--passphrase-stdin", "passphrase");
    }
    if let Some(p) = &ctx.settings.keys_passphrase_env {
        return Ok(p.clone());
    }
    if !prompt::can_prompt(ctx.settings.no_input) {
        return Err(CliError::usage("no passphrase for the key file and no terminal to ask on")
            .with_hint("pipe it with --passphrase-stdin, or set RATCHET_KEYS_PASSPHRASE"));
    }
    let p = prompt::secret("Key file passphrase: ")?;
    if p.expose().is_empty() {
        return Err(CliError::usage("the passphrase is empty"));
    }
    if confirm && prompt::secret("Again: ")?.expose() != p.expose() {
        return Err(CliError::usage("the passphrases differ"));
    }
    Ok(p)
}
