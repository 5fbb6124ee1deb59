//! `ratchet logout`: ends the session on the server, then deletes the
//! profile's local data (session, store passphrase, encrypted store).

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::ui::output::Record;

/// Log out on the server and delete this profile's local data.
///
/// Deletes the session file, the store passphrase and the encrypted store:
/// this device's keys are gone for good, so messages only it could decrypt
/// stay unreadable. Export room keys first if you need them.
///
/// If the server cannot be reached, nothing is deleted unless `--local` is
/// given.
///
/// Examples:
///
///   ratchet keys export backup.txt && ratchet logout
///   ratchet --profile old-bot logout --local
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct LogoutArgs {
    /// Delete the local data without telling the server (the device stays
    /// listed on the account until removed elsewhere)
    #[arg(long)]
    local: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct LogoutRecord {
    user_id: Option<String>,
    device_id: Option<String>,
    server_logout: bool,
    removed: Vec<String>,
}

impl Record for LogoutRecord {
    const TYPE: &'static str = "logout";
    fn human(&self) -> String {
        let who = match (&self.user_id, &self.device_id) {
            (Some(u), Some(d)) => format!("{u} (device {d})"),
            _ => "this profile".into(),
        };
        let mut s = if self.server_logout {
            format!("Logged out {who} on the server.")
        } else {
            format!("Did not tell the server; {who} is still listed there.")
        };
        for path in &self.removed {
            s.push_str(&format!("\nremoved {path}"));
        }
        s
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_logout(ctx: &mut CommandContext, args: &LogoutArgs) -> CliResult {
    if !ctx.profile.paths().dir.exists() {
        return Err(CliError::auth(format!("not logged in (profile `{}` has no data)", ctx.settings.profile)));
    }
    ctx.lock_profile().await?;
    let session = ctx.load_session().ok();

    let mut server_logout = false;
    if !args.local {
        if session.is_none() {
            return Err(CliError::auth("no usable session to log out on the server")
                .with_hint("use `ratchet logout --local` to delete the local data anyway"));
        }
        let client = ctx.client().await?;
        ctx.forget_client();
        match client.matrix_auth().logout().await {
            Ok(_) => server_logout = true,
            Err(e) => {
                let err: CliError = e.into();
                if err.kind == crate::error::ErrorKind::Auth {
                    // The token is already dead: the server has forgotten this device.
                    ctx.out.warn("the server had already ended this session");
                } else {
                    return Err(CliError::new(err.kind, "could not log out on the server; nothing was deleted")
                        .with_source(anyhow::anyhow!(err.message))
                        .with_hint("use `ratchet logout --local` to delete the local data anyway"));
                }
            }
        }
    }

    let removed = ctx.profile.remove_login()?;
    ctx.out.data(&LogoutRecord {
        user_id: session.as_ref().map(|s| s.user_id.to_string()),
        device_id: session.as_ref().map(|s| s.device_id.to_string()),
        server_logout,
        removed,
    })
}
