//! `ratchet recovery …`: the recovery key, secret storage and identity reset.

use clap::Subcommand;
use serde::Serialize;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::ui::output::Record;

pub(crate) mod enable;
pub(crate) mod recover;
pub(crate) mod reset;
pub(crate) mod status;

/// Set up, use and reset recovery (the recovery key Element gives).
#[derive(Debug, Subcommand)]
pub(crate) enum RecoveryCommand {
    Enable(enable::EnableArgs),
    Recover(recover::RecoverArgs),
    Reset(reset::ResetArgs),
    Status(status::StatusArgs),
}

pub(crate) async fn run(ctx: &mut CommandContext, command: &RecoveryCommand) -> CliResult {
    match command {
        RecoveryCommand::Enable(args) => enable::cmd_enable(ctx, args).await,
        RecoveryCommand::Recover(args) => recover::cmd_recover(ctx, args).await,
        RecoveryCommand::Reset(args) => reset::cmd_reset(ctx, args).await,
        RecoveryCommand::Status(args) => status::cmd_status(ctx, args).await,
    }
}

/// Where recovery stands for this account and device.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RecoveryStatusRecord {
    /// The account has secret storage (a recovery key exists).
    secret_storage: bool,
    /// This device is cross-signed by the account's identity.
    cross_signed: bool,
    /// This device holds all three private cross-signing keys.
    cross_signing_keys_here: bool,
    /// The backup version this device uploads to, if any.
    backup_version: Option<String>,
    /// Room keys this device holds, and how many of them are in the backup.
    room_keys: usize,
    room_keys_backed_up: usize,
    /// The server's current backup version and how many room keys it holds
    /// (null: no backup, or the server could not be asked).
    server_backup_version: Option<String>,
    backup_keys_on_server: Option<u64>,
    /// The server answered about its backup (for the human line).
    #[serde(skip)]
    server_asked: bool,
}

impl Record for RecoveryStatusRecord {
    const TYPE: &'static str = "recovery_status";
    fn human(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let server = match (&self.server_backup_version, self.backup_keys_on_server) {
            (Some(v), Some(n)) => format!("version {v}, {n} room key(s)"),
            _ if self.server_asked => "none".to_owned(),
            _ => "unknown (the server could not be asked)".to_owned(),
        };
        format!(
            "secret storage      {}\nthis device         {}\ncross-signing keys  {}\nbackup here         {}\nbackup on server    {server}\nroom keys here      {} ({} of them backed up from here)",
            yes(self.secret_storage),
            if self.cross_signed { "cross-signed" } else { "NOT cross-signed" },
            if self.cross_signing_keys_here { "all three here" } else { "not all here" },
            self.backup_version.as_deref().map(|v| format!("version {v}")).unwrap_or_else(|| "off".into()),
            self.room_keys,
            self.room_keys_backed_up,
        )
    }
}

/// What `recovery status` and the end of `enable`/`recover`/`reset` show.
pub(crate) async fn status_of(client: &matrix_sdk::Client) -> CliResult<RecoveryStatusRecord> {
    use crate::sdk::{backup, secrets, trust};
    let (cross_signed, keys) = trust::own_state(client).await?;
    let (room_keys, room_keys_backed_up) = backup::counts(client).await?;
    let asked = backup::on_server(client).await;
    let server_asked = asked.is_ok();
    let server = asked.unwrap_or_else(|e| {
        tracing::debug!(error = %e.message, "could not ask the server for its backup");
        None
    });
    Ok(RecoveryStatusRecord {
        server_asked,
        server_backup_version: server.as_ref().map(|(v, _)| v.clone()),
        backup_keys_on_server: server.map(|(_, n)| n),
        secret_storage: secrets::storage_exists(client).await?,
        cross_signed,
        cross_signing_keys_here: keys.master && keys.self_signing && keys.user_signing,
        backup_version: backup::version_here(client).await?,
        room_keys,
        room_keys_backed_up,
    })
}

/// The step that comes next, after a recovery status (stderr, for a
/// person): the backup's history, or how to connect to a backup.
pub(crate) fn next_step(status: &RecoveryStatusRecord) -> Option<String> {
    match (&status.backup_version, &status.server_backup_version, status.backup_keys_on_server) {
        (Some(here), Some(server), Some(n)) if here == server && n > status.room_keys_backed_up as u64 => {
            Some(format!(
                "next: `{}` downloads the backup's {n} room key(s) (history from before this device)",
                crate::ui::hint::ratchet("backup restore")
            ))
        }
        (None, Some(_), _) if status.secret_storage => Some(
            format!(
                "next: `{}` with the recovery key turns backup on here",
                crate::ui::hint::ratchet("recovery recover")
            )
            .to_owned(),
        ),
        (None, None, _) if status.secret_storage && status.server_asked => Some(format!(
            "next: the server has no key backup (deleted by another device?): `{}` with the recovery key makes a new \
             one",
            crate::ui::hint::ratchet("recovery recover")
        )),
        (None, None, _) if !status.secret_storage && status.server_asked => Some(
            format!("next: `{}` sets up a recovery key and a key backup", crate::ui::hint::ratchet("recovery enable"))
                .to_owned(),
        ),
        _ => None,
    }
}
