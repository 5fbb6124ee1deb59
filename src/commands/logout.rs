//! `ratchet logout`: ends the session on the server, then deletes the
//! profile's local data (session, store passphrase, encrypted store).

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::ui::output::Record;
use crate::ui::prompt;

/// Log out on the server and delete this profile's local data.
///
/// Deletes the session file, the store passphrase and the encrypted store:
/// this device's keys are gone for good, so messages only it could decrypt
/// stay unreadable, unless their keys are in the key backup (`recovery
/// enable` / `recover`) or exported (`keys export`). Before deleting, the
/// keys still pending are uploaded to the backup, and logout says how many
/// of this device's room keys the backup holds. On a terminal it asks first;
/// off one it needs --yes.
///
/// If the server cannot be reached, nothing is deleted unless `--local` is
/// given.
///
/// Examples:
///
///   ratchet keys export backup.txt && ratchet logout
///   ratchet --profile old-bot logout --local --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct LogoutArgs {
    /// Delete the local data without telling the server (the device stays
    /// listed on the account until removed elsewhere)
    #[arg(long)]
    local: bool,

    /// Do not ask before deleting this device's keys
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct LogoutRecord {
    user_id: Option<String>,
    device_id: Option<String>,
    server_logout: bool,
    removed: Vec<String>,
    /// The room keys this device held, and how many of them are in the key
    /// backup (null when the store could not be opened).
    room_keys: Option<usize>,
    room_keys_backed_up: Option<usize>,
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

    // What is about to be destroyed, and whether the backup has it: the
    // pending keys go up first.
    let counts = match (session.is_some(), ctx.client().await) {
        (true, Ok(client)) => {
            if let Err(e) = ctx.upload_backup(&client).await {
                ctx.out.warn(format!("could not upload the pending room keys to the backup: {}", e.message));
            }
            Some(crate::sdk::backup::counts(&client).await?)
        }
        (true, Err(e)) if !args.local => return Err(e),
        _ => None,
    };
    let told = match counts {
        Some((0, _)) => "This device holds no room keys.".to_owned(),
        Some((total, backed)) if backed >= total => {
            format!("This device holds {total} room key(s), all of them in the key backup.")
        }
        Some((total, backed)) => format!(
            "This device holds {total} room key(s); {} of them are NOT in the key backup and will be gone \
             (export them first: `{}`).",
            total - backed,
            crate::ui::hint::ratchet("keys export FILE")
        ),
        None => "This device's store cannot be opened; its keys cannot be counted.".to_owned(),
    };
    // Keys about to be lost are a warning (it survives -q); the rest is
    // status.
    let losing = !matches!(counts, Some((total, backed)) if backed >= total);
    let tell = |ctx: &CommandContext| if losing { ctx.out.warn(&told) } else { ctx.out.status(&told) };
    if !args.yes {
        if !prompt::can_prompt(ctx.settings.no_input) {
            return Err(CliError::usage(format!("logout deletes this device's keys. {told}"))
                .with_hint("add --yes to log out off a terminal"));
        }
        tell(ctx);
        if !prompt::confirm("Log out and delete this device's keys?")? {
            return Err(CliError::declined("Not logged out; nothing was deleted."));
        }
    } else {
        tell(ctx);
    }

    let mut server_logout = false;
    if !args.local {
        if session.is_none() {
            return Err(CliError::auth("no usable session to log out on the server").with_hint(format!(
                "use `{}` to delete the local data anyway",
                crate::ui::hint::ratchet("logout --local")
            )));
        }
        let client = ctx.client().await?;
        ctx.forget_client();
        // A Matrix login's `POST /logout`, or an OAuth 2.0 login's token
        // revocation (RFC 7009) at its authorization server.
        match client.logout().await {
            Ok(_) => server_logout = true,
            Err(e) => {
                let err: CliError = e.into();
                if err.kind == crate::error::ErrorKind::Auth {
                    // The token is already dead: the server has forgotten this device.
                    ctx.out.warn("the server had already ended this session");
                } else {
                    return Err(CliError::new(err.kind, "could not log out on the server; nothing was deleted")
                        .with_source(anyhow::anyhow!(err.message))
                        .with_hint(format!(
                            "use `{}` to delete the local data anyway",
                            crate::ui::hint::ratchet("logout --local")
                        )));
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
        room_keys: counts.map(|(t, _)| t),
        room_keys_backed_up: counts.map(|(_, b)| b),
    })
}
