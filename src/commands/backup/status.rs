//! `ratchet backup status`.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::sdk;
use crate::ui::output::Record;

/// Show the key backup: its version, keys on the server and here, and what
/// is still waiting to be uploaded.
///
/// Every ratchet command uploads the room keys it created or received
/// before it exits, so `pending` is 0 unless the last upload failed (the
/// next command retries it).
///
/// Example:
///
///   ratchet --json backup status | jq .pending
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct StatusArgs {}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct BackupStatusRecord {
    /// The server's current backup version (null: no backup).
    server_version: Option<String>,
    /// Room keys in the server's backup.
    keys_on_server: Option<u64>,
    /// The version this device uploads to (null: backup is off here).
    version_here: Option<String>,
    /// Room keys this device holds, and how many are in the backup.
    keys_here: usize,
    backed_up: usize,
    /// Room keys held here that are not in the backup yet.
    pending: usize,
    /// The account's `m.key_backup` setting (spec v1.19; null: never set).
    /// false: a client of the account turned backup off, and this device
    /// uploads nothing until one turns it on.
    account_enabled: Option<bool>,
}

impl Record for BackupStatusRecord {
    const TYPE: &'static str = "backup_status";
    fn human(&self) -> String {
        let server = match (&self.server_version, self.keys_on_server) {
            (Some(v), Some(n)) => format!("version {v}, {n} room key(s)"),
            _ => "none".into(),
        };
        let setting = match self.account_enabled {
            Some(true) => "on",
            Some(false) => "OFF (turned off by a client of this account: nothing is uploaded)",
            None => "not set (on)",
        };
        // With backup off here nothing is uploaded from here: no counts
        // that read as progress.
        let keys = match (&self.version_here, self.account_enabled) {
            (None, Some(false)) | (Some(_), _) => {
                format!("{} ({} backed up, {} pending)", self.keys_here, self.backed_up, self.pending)
            }
            (None, _) => format!("{} (backup is off here: none are uploaded)", self.keys_here),
        };
        format!(
            "backup on server  {server}\nbackup here       {}\nroom keys here    {keys}\naccount setting   {setting}",
            self.version_here.as_deref().map(|v| format!("version {v}")).unwrap_or_else(|| "off".into()),
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_status(ctx: &mut CommandContext, _args: &StatusArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.check_backup_still_there(&client).await?;
    let server = sdk::backup::on_server(&client).await?;
    let (keys_here, backed_up) = sdk::backup::counts(&client).await?;
    let version_here = sdk::backup::version_here(&client).await?;
    let account_enabled = sdk::backup::account_setting(&client, true).await?;
    ctx.out.data(&BackupStatusRecord {
        account_enabled,
        server_version: server.as_ref().map(|(v, _)| v.clone()),
        keys_on_server: server.map(|(_, n)| n),
        // Keys wait while the account's setting is off, too.
        pending: if version_here.is_some() || account_enabled == Some(false) {
            keys_here.saturating_sub(backed_up)
        } else {
            0
        },
        version_here,
        keys_here,
        backed_up,
    })
}
