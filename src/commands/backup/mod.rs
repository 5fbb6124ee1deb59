//! `ratchet backup …`: the server-side key backup.

use clap::Subcommand;

use crate::context::CommandContext;
use crate::error::CliResult;

pub(crate) mod restore;
pub(crate) mod status;

/// Inspect and restore the server-side key backup.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    Status(status::StatusArgs),
    Restore(restore::RestoreArgs),
}

pub(crate) async fn run(ctx: &mut CommandContext, command: &BackupCommand) -> CliResult {
    match command {
        BackupCommand::Status(args) => status::cmd_status(ctx, args).await,
        BackupCommand::Restore(args) => restore::cmd_restore(ctx, args).await,
    }
}
