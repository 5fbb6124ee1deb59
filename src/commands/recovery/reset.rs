//! `ratchet recovery reset`.

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::sdk;
use crate::ui::output::Record;
use crate::ui::prompt;
use serde::Serialize;

/// Make a new cross-signing identity for your account (destructive).
///
/// For an account whose recovery key is lost. Deletes the key backup and
/// secret storage, and replaces the identity: every other device of yours
/// becomes unverified, and everyone who verified you sees your identity
/// change (a verification violation) until they verify you again. This
/// device is signed by the new identity; run `recovery enable` after it for
/// a new recovery key and backup. The server authorises it with your
/// password (--password-stdin, RATCHET_PASSWORD, or a prompt); after an
/// OAuth 2.0 login (`login --oauth`) it prints the server's approval page
/// instead (MSC4312; opened on a desktop), and for an account made by
/// single sign-on (no password) the server's single sign-on page, and waits
/// two minutes for you to approve or sign in there. Asks for confirmation on a terminal; --yes otherwise.
///
/// Example:
///
///   ratchet recovery reset --yes --password-stdin < password.txt
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ResetArgs {
    /// Do not ask for confirmation
    #[arg(long)]
    yes: bool,
    /// Read the account password from the first line of stdin
    #[arg(long)]
    password_stdin: bool,
    /// For an OAuth 2.0 or single sign-on account: only print the address to approve at; open no browser
    #[arg(long)]
    no_browser: bool,
}

/// Where the account's owner approves the reset: an OAuth 2.0 server's
/// approval page (MSC4312), or the homeserver's single sign-on page for
/// user-interactive auth. Printed before the wait, for a script or a
/// person to open.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ApprovalRecord {
    /// The server's approval page.
    url: String,
    /// Whether ratchet opened a browser itself.
    browser_opened: bool,
}

impl Record for ApprovalRecord {
    const TYPE: &'static str = "approval";
    fn human(&self) -> String {
        let opened = if self.browser_opened { " (opened in your browser)" } else { "" };
        format!("Approve the reset at this address{opened}:\n\n  {}\n", self.url)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_reset(ctx: &mut CommandContext, args: &ResetArgs) -> CliResult {
    if !args.yes {
        if !prompt::can_prompt(ctx.settings.no_input) {
            return Err(CliError::usage("resetting the identity destroys the backup and needs --yes off a terminal"));
        }
        if !prompt::confirm(
            "Reset your cross-signing identity? The key backup and secret storage are deleted, and all your other \
             devices and everyone who verified you must verify again.",
        )? {
            return Err(CliError::declined("Not reset; nothing changed."));
        }
    }
    let session = ctx.load_session()?;
    let oauth = session.oauth.is_some();
    let no_password = !oauth
        && !args.password_stdin
        && ctx.settings.password_env.is_none()
        && sdk::secrets::reauth_kind(&ctx.client().await?).await? != sdk::secrets::ReAuth::Password;
    if oauth || no_password {
        // An OAuth 2.0 login: the server's approval page (MSC4312). An
        // account made by single sign-on has no password: the server's
        // single sign-on page authorises the reset, as in Element. (One
        // that asks nothing now, in its grace period after an
        // authorisation, needs neither.)
        let client = ctx.client().await?;
        ctx.sync(&client).await?;
        let out = &ctx.out;
        let open = !args.no_browser;
        let approve = |url: &str| {
            let browser_opened = open && crate::sso::open_approval(url);
            out.data(&ApprovalRecord { url: url.to_owned(), browser_opened })?;
            out.status("Waiting for you there (at most two minutes)…");
            Ok(())
        };
        if oauth {
            sdk::secrets::reset_identity_oauth(&client, approve).await?;
        } else {
            sdk::secrets::reset_identity_sso(&client, approve).await?;
        }
    } else {
        let password = ctx.read_password(args.password_stdin, session.user_id.as_str())?;
        let client = ctx.client().await?;
        ctx.sync(&client).await?;
        // matrix-sdk deletes the backup and secret storage before the server
        // sees the password: a wrong one must stop here, with nothing changed.
        sdk::secrets::check_password(&client, &password).await?;
        sdk::secrets::reset_identity(&client, &password).await?;
    }
    let client = ctx.client().await?;
    // The reset deleted the server's backup: this device stops uploading
    // to it (no 404 at the next command), and `recovery enable` makes a
    // new one.
    if let Some(version) = sdk::backup::forget(&client).await? {
        ctx.state()?.set_backup_gone(Some(&version))?;
    }
    ctx.out.data(&super::status_of(&client).await?)
}
