//! `ratchet recovery status`.

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;

/// Show whether recovery is set up: secret storage, this device's
/// cross-signing, its private keys, the backup, and room keys backed up.
///
/// Example:
///
///   ratchet --json recovery status | jq .room_keys_backed_up
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct StatusArgs {}

#[instrument(skip_all)]
pub(crate) async fn cmd_status(ctx: &mut CommandContext, _args: &StatusArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    ctx.check_backup_still_there(&client).await?;
    let status = super::status_of(&client).await?;
    ctx.out.data(&status)?;
    if let Some(next) = super::next_step(&status) {
        ctx.out.status(next);
    }
    Ok(())
}
