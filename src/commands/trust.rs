//! `ratchet trust`: this profile's local trust in one device.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::e2ee::trust::LocalTrust;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk;
use crate::ui::output::Record;

/// Set your local trust in a device: verified, blacklisted, ignored or unset.
///
/// Local trust stays on this device (nothing is signed or sent). A
/// blacklisted device never gets room keys from this profile: it gets
/// `m.room_key.withheld` with code m.blacklisted instead, in all-devices
/// isolation (in exclude-insecure, matrix-sdk withholds by cross-signing
/// alone). A locally verified device counts as verified here; to verify it
/// for real, compare emoji with its owner. For QA: make m.blacklisted on
/// purpose, then `unset` it again.
///
/// Examples:
///
///   ratchet trust @bob:example.org BOBDEVICE blacklisted
///   ratchet --json trust @bob:example.org BOBDEVICE unset
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct TrustArgs {
    /// The device's owner
    user: String,
    /// The device id
    device: String,
    /// The trust to set
    #[arg(value_enum)]
    trust: LocalTrust,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct LocalTrustRecord {
    user_id: String,
    device_id: String,
    local_trust: LocalTrust,
    previous: LocalTrust,
}

impl Record for LocalTrustRecord {
    const TYPE: &'static str = "local_trust";
    fn human(&self) -> String {
        format!(
            "{} {}  local trust {} (was {})",
            self.user_id,
            self.device_id,
            self.local_trust.name(),
            self.previous.name()
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_trust(ctx: &mut CommandContext, args: &TrustArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let user = rooms::parse_user(&args.user, &own)?;
    if !client.encryption().tracked_users().await?.contains(&user) {
        client.encryption().request_user_identity(&user).await?;
    }
    let previous = sdk::trust::set_local_trust(&client, &user, args.device.as_str().into(), args.trust).await?;
    ctx.out.data(&LocalTrustRecord {
        user_id: user.to_string(),
        device_id: args.device.clone(),
        local_trust: args.trust,
        previous,
    })
}
