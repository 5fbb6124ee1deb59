//! `ratchet certify`: cross-sign another device of your own account by
//! its Ed25519 key, for scripts (element-meta#2709).

use std::io::BufRead;

use clap::Args;
use matrix_sdk::ruma::OwnedDeviceId;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::ui::output::Record;

/// Cross-sign another device of your account, checked by its Ed25519 key.
///
/// For bots and scripts that cannot compare emoji: the device is signed
/// with your self-signing key (MSC4153: it is then "cross-signed by its
/// owner" for everyone) only if the Ed25519 key the server lists for it is
/// the one you give, read from the device itself (`ratchet whoami` there,
/// or Element's session details). A different key signs nothing (exit
/// status 1). This device must hold your self-signing key (it made the
/// identity, or `recovery recover` ran). A device signed already is not
/// signed again.
///
/// Examples:
///
///   ratchet certify BOTDEVICE --ed25519 "$(ratchet --profile bot --json whoami | jq -r .ed25519)"
///   ratchet certify BOTDEVICE --ed25519-stdin < key.txt
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CertifyArgs {
    /// The device id, of your own account
    device: OwnedDeviceId,

    /// Its Ed25519 key (base64), as the device itself shows it
    #[arg(long, value_name = "KEY", required_unless_present = "ed25519_stdin")]
    ed25519: Option<String>,

    /// Read the Ed25519 key from the first line of stdin
    #[arg(long, conflicts_with = "ed25519")]
    ed25519_stdin: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct CertifiedRecord {
    user_id: String,
    device_id: String,
    ed25519: String,
    /// It was cross-signed already: nothing was uploaded.
    already: bool,
}

impl Record for CertifiedRecord {
    const TYPE: &'static str = "certified";
    fn human(&self) -> String {
        if self.already {
            format!("{} {} was cross-signed already (key {})", self.user_id, self.device_id, self.ed25519)
        } else {
            format!("cross-signed {} {} (key {})", self.user_id, self.device_id, self.ed25519)
        }
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_certify(ctx: &mut CommandContext, args: &CertifyArgs) -> CliResult {
    let expected = match (&args.ed25519, args.ed25519_stdin) {
        (Some(key), _) => key.clone(),
        (None, _) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::failed("could not read the key from stdin").with_source(e))?;
            if line.trim().is_empty() {
                return Err(CliError::usage("--ed25519-stdin: stdin gave no key"));
            }
            line
        }
    };
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let done = crate::sdk::trust::certify_own_device(&client, &args.device, expected.trim()).await?;
    ctx.out.data(&CertifiedRecord {
        user_id: client.user_id().map(|u| u.to_string()).unwrap_or_default(),
        device_id: args.device.to_string(),
        ed25519: done.ed25519,
        already: done.already,
    })
}
