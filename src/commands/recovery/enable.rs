//! `ratchet recovery enable`.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::sdk;
use crate::ui::output::Record;

/// Set up secret storage and key backup, and print the recovery key once.
///
/// For an account with neither (one ratchet set up, say): makes a recovery
/// key, stores the cross-signing private keys and a new backup key in secret
/// storage under it, starts a key backup and uploads this device's room keys.
/// The recovery key is printed once, on stdout, and kept nowhere: write it
/// down. With it, any new device (ratchet's `recovery recover`, or Element's
/// "Verify with recovery key") becomes verified and reads the backed-up
/// history. On an account that already has secret storage (Element made it)
/// this refuses: use `recovery recover` with the key you have.
///
/// Example:
///
///   ratchet recovery enable
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct EnableArgs {}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RecoveryKeyRecord {
    /// The recovery key: shown this once.
    recovery_key: String,
    backup_version: Option<String>,
    /// Room keys uploaded to the new backup.
    uploaded: usize,
}

impl Record for RecoveryKeyRecord {
    const TYPE: &'static str = "recovery_key";
    fn human(&self) -> String {
        format!(
            "Recovery key (shown once; write it down, keep it secret):\n\n    {}\n\nbackup version {}, {} room key(s) uploaded",
            self.recovery_key,
            self.backup_version.as_deref().unwrap_or("?"),
            self.uploaded
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_enable(ctx: &mut CommandContext, _args: &EnableArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let key = sdk::secrets::enable(&client).await?;
    let uploaded = sdk::backup::upload_pending(&client).await?;
    ctx.out.data(&RecoveryKeyRecord {
        recovery_key: key.expose().to_owned(),
        backup_version: sdk::backup::version_here(&client).await?,
        uploaded,
    })
}
