//! `ratchet recovery enable`.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::sdk;
use crate::ui::output::Record;

/// Set up secret storage and key backup, and print the recovery key once.
///
/// For an account with neither (one ratchet set up, say): makes a recovery
/// key, stores the cross-signing private keys and a new backup key in secret
/// storage under it, and starts a key backup. The recovery key is printed
/// once, on stdout, as soon as it exists (before this device's room keys
/// are uploaded: an upload failure cannot lose it) and kept nowhere: write
/// it down. With it, any new device (ratchet's `recovery recover`, or
/// Element's "Verify with recovery key") becomes verified and reads the
/// backed-up history. On an account that already has secret storage
/// (Element made it) this refuses: use `recovery recover` with the key you
/// have. A run that failed before the key was printed made no key: run it
/// again.
///
/// Examples:
///
///   ratchet recovery enable
///   ratchet recovery enable --replace-key   # the key was lost: a new one replaces it
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct EnableArgs {
    /// Replace the recovery key of the existing secret storage (this device
    /// must hold every secret); clients then accept only the new key
    #[arg(long)]
    replace_key: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RecoveryKeyRecord {
    /// The recovery key: shown this once.
    recovery_key: String,
    /// The backup its secret storage holds the key of.
    backup_version: Option<String>,
}

impl Record for RecoveryKeyRecord {
    const TYPE: &'static str = "recovery_key";
    fn human(&self) -> String {
        format!(
            "Recovery key (shown once; write it down, keep it secret):\n\n    {}\n\nbackup version {}",
            self.recovery_key,
            self.backup_version.as_deref().unwrap_or("?"),
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_enable(ctx: &mut CommandContext, args: &EnableArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    // Backup on for the whole account (`m.key_backup`, spec v1.19), over
    // another client's "off": before the enabling, so that no request runs
    // between it and this command's own upload at its end, which goes by
    // this setting, not by the store's older copy.
    match sdk::backup::set_account_setting(&client, true).await {
        Ok(()) => ctx.backup_turned_on = true,
        Err(e) => {
            ctx.out.warn(format!("could not record that backup is on for the account (m.key_backup): {}", e.message))
        }
    }
    let (key, trouble) = sdk::secrets::enable(&client, args.replace_key).await?;
    // The key first: nothing before it may fail. (Never on stderr, which
    // ends up in logs: if stdout is gone, say how to get a new one.)
    let backup_version = sdk::backup::version_here(&client).await.unwrap_or(None);
    let record = RecoveryKeyRecord { recovery_key: key.expose().to_owned(), backup_version };
    if let Err(e) = ctx.out.data(&record) {
        return Err(CliError::failed(format!("the recovery key could not be shown: {}", e.message)).with_hint(
            format!(
                "`{}` makes a new one (this device holds every secret)",
                crate::ui::hint::ratchet("recovery enable --replace-key")
            ),
        ));
    }
    if let Some(trouble) = trouble {
        ctx.out.warn(trouble);
    }
    if let Err(e) = ctx.state().and_then(|db| db.set_backup_gone(None)) {
        ctx.out.warn(format!("could not clear the note of a gone backup: {}", e.message));
    }
    // This device's room keys go up as every command's do, at its end
    // (`CommandContext::finish`): a failure there is exit 3, and the next
    // command uploads what is left.
    Ok(())
}
