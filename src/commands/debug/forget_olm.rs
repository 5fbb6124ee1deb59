//! `ratchet debug forget-olm`: delete the Olm sessions with one device.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use super::confirm;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk::olm;
use crate::sdk::rawstore::RawCryptoStore;
use crate::ui::output::Record;

/// Delete this profile's Olm sessions with a device: a wedge made on purpose.
///
/// The device's next Olm message to us (a room key, say) then cannot be
/// decrypted here, as after a real wedge (R9). Recover with `ratchet sync`,
/// which creates a new session and sends m.dummy (R10), or `ratchet
/// unwedge`. With --session, only that one session goes: the device may
/// then still hold an older one, the case where matrix-sdk unwedges by
/// itself once that older session is an hour old. Asks for confirmation on
/// a terminal; --yes otherwise.
///
/// Examples:
///
///   ratchet debug forget-olm @alice:example.org ALICEDEVICE --yes
///   ratchet debug forget-olm @alice:example.org ALICEDEVICE --session SESSION_ID --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ForgetOlmArgs {
    /// The device's owner
    user: String,
    /// The device id
    device: String,
    /// Delete only this Olm session (an id from `ratchet olm`, or its first
    /// characters if they fit one session)
    #[arg(long, value_name = "SESSION_ID")]
    session: Option<String>,
    /// Do not ask for confirmation
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ForgotOlmRecord {
    user_id: String,
    device_id: String,
    curve25519: String,
    /// The Olm sessions deleted.
    deleted_sessions: Vec<String>,
}

impl Record for ForgotOlmRecord {
    const TYPE: &'static str = "forgot_olm";
    fn human(&self) -> String {
        let mut s =
            format!("deleted {} Olm session(s) with {} {}", self.deleted_sessions.len(), self.user_id, self.device_id);
        for id in &self.deleted_sessions {
            s.push_str(&format!("\n  {id}"));
        }
        s
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_forget_olm(ctx: &mut CommandContext, args: &ForgetOlmArgs) -> CliResult {
    let client = ctx.client().await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let user = rooms::parse_user(&args.user, &own)?;
    let device = client.encryption().get_device(&user, args.device.as_str().into()).await?.ok_or_else(|| {
        CliError::failed(format!("unknown device {} of {user}", args.device)).with_hint(format!(
            "`{}` lists the devices ratchet knows",
            crate::ui::hint::ratchet("devices").arg(user.as_str())
        ))
    })?;
    let curve =
        device.curve25519_key().ok_or_else(|| CliError::failed("the device has no curve25519 key"))?.to_base64();
    let ledger = ctx.olm_ledger()?;
    let mut sessions: Vec<String> =
        olm::device_sessions(&client, &curve, &ledger).await?.sessions.into_iter().map(|s| s.session_id).collect();
    let wanted = match &args.session {
        Some(given) => Some(
            crate::ids::by_prefix("Olm session", given, sessions.iter().map(String::as_str))?
                .unwrap_or_else(|| given.clone()),
        ),
        None => None,
    };
    if let Some(wanted) = &wanted {
        if !sessions.contains(wanted) {
            return Err(CliError::failed(format!("no Olm session {wanted} with {user} {}", args.device)).with_hint(
                format!(
                    "`{}` lists them",
                    crate::ui::hint::ratchet("olm").arg(user.as_str()).arg(args.device.as_str())
                ),
            ));
        }
        sessions.retain(|s| s == wanted);
    }
    if sessions.is_empty() {
        return Err(CliError::failed(format!("no Olm session with {user} {} to delete", args.device)));
    }
    confirm(
        ctx,
        args.yes,
        &format!(
            "Delete {} Olm session(s) with {user} {}? Messages it sends over them will fail here.",
            sessions.len(),
            args.device
        ),
    )?;
    let secret = ctx.close_client().await?;
    let mut store = RawCryptoStore::open(&ctx.profile.paths().crypto_db(), &secret)?;
    match &wanted {
        Some(one) => store.delete_olm_session(&curve, one)?,
        None => store.delete_olm_sessions(&curve, sessions.len())?,
    }
    ctx.out.data(&ForgotOlmRecord {
        user_id: user.to_string(),
        device_id: args.device.clone(),
        curve25519: curve,
        deleted_sessions: sessions,
    })
}
