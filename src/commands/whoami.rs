//! `ratchet whoami`: who this profile is, from the local session and store
//! alone (no network).

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::ui::output::Record;

/// Show this profile's user, device, homeserver and identity keys.
///
/// Works offline: everything comes from the session file and the store.
///
/// --access-token prints this device's access token instead (it is kept
/// encrypted in session.json): for a script's own requests to the server.
/// Anyone with it can act as you until the device logs out.
///
/// Examples:
///
///   ratchet whoami
///   ratchet --json whoami | jq -r .device_id
///   curl -H "Authorization: Bearer $(ratchet whoami --access-token)" …
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct WhoamiArgs {
    /// Print the access token only (decrypted from session.json; no lock, no network)
    #[arg(long)]
    access_token: bool,
}

/// `whoami --access-token`'s record.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct AccessTokenRecord {
    access_token: String,
}

impl Record for AccessTokenRecord {
    const TYPE: &'static str = "access_token";
    fn human(&self) -> String {
        self.access_token.clone()
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct WhoamiRecord {
    user_id: String,
    device_id: String,
    homeserver: String,
    profile: String,
    curve25519: String,
    ed25519: String,
}

impl Record for WhoamiRecord {
    const TYPE: &'static str = "whoami";
    fn human(&self) -> String {
        format!(
            "user:       {}\ndevice:     {}\nhomeserver: {}\nprofile:    {}\ncurve25519: {}\ned25519:    {}",
            self.user_id, self.device_id, self.homeserver, self.profile, self.curve25519, self.ed25519
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_whoami(ctx: &mut CommandContext, args: &WhoamiArgs) -> CliResult {
    if args.access_token {
        // The session file alone, with the store secret: no lock, so it
        // answers while a follower holds the profile.
        let session = ctx.unsealed_session()?;
        return ctx.out.data(&AccessTokenRecord { access_token: session.access_token });
    }
    let client = ctx.client().await?;
    let session = ctx.session().cloned().ok_or_else(|| CliError::internal("client without session"))?;
    let enc = client.encryption();
    let record = WhoamiRecord {
        user_id: session.user_id.to_string(),
        device_id: session.device_id.to_string(),
        homeserver: session.homeserver.clone(),
        profile: ctx.settings.profile.clone(),
        curve25519: enc.curve25519_key().await.map(|k| k.to_base64()).unwrap_or_default(),
        ed25519: enc.ed25519_key().await.unwrap_or_default(),
    };
    ctx.out.data(&record)
}
