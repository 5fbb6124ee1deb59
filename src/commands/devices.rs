//! `ratchet devices`: the devices ratchet knows, with keys and trust.

use clap::Args;
use matrix_sdk::ruma::OwnedUserId;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::e2ee::trust::LocalTrust;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::ui::output::Record;

/// List devices: id, display name, identity keys and trust.
///
/// For one user, or for everyone ratchet tracks (members of the encrypted
/// rooms it is in, and itself). Syncs first, so the lists are current.
///
/// Examples:
///
///   ratchet devices @bob:example.org
///   ratchet --json devices | jq -r 'select(.verified == false) | .device_id'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct DevicesArgs {
    /// User id (@bob:example.org) or a bare name on your server; default: everyone tracked
    user: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DeviceRecord {
    user_id: String,
    device_id: String,
    display_name: Option<String>,
    curve25519: Option<String>,
    ed25519: Option<String>,
    /// Cross-signed by its owner, or locally verified.
    verified: bool,
    /// Signed by its owner's cross-signing identity. A device that is not is
    /// "insecure" in MSC4153's sense: in exclude-insecure mode it gets no
    /// room keys and what it sends is not decrypted.
    cross_signed_by_owner: bool,
    /// Our local trust setting.
    local_trust: LocalTrust,
    /// This profile's own device.
    own: bool,
    /// The server no longer lists it.
    deleted: bool,
}

impl Record for DeviceRecord {
    const TYPE: &'static str = "device";
    fn human(&self) -> String {
        let mut flags = vec![if self.verified { "verified" } else { "unverified" }];
        flags.push(if self.cross_signed_by_owner { "cross-signed" } else { "insecure: not cross-signed by its owner" });
        if self.own {
            flags.push("this device");
        }
        if self.deleted {
            flags.push("deleted");
        }
        if matches!(self.local_trust, LocalTrust::Blacklisted | LocalTrust::Ignored) {
            flags.push(self.local_trust.name());
        }
        format!(
            "{} {}  \"{}\"  [{}]\n  curve25519 {}\n  ed25519    {}",
            self.user_id,
            self.device_id,
            crate::ui::terminal::inert(self.display_name.as_deref().unwrap_or("")),
            flags.join(", "),
            self.curve25519.as_deref().unwrap_or("?"),
            self.ed25519.as_deref().unwrap_or("?"),
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_devices(ctx: &mut CommandContext, args: &DevicesArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let own_user = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let own_device = client.device_id().ok_or_else(|| CliError::internal("no device id"))?.to_owned();
    let mut users: Vec<OwnedUserId> = match &args.user {
        Some(u) => vec![rooms::parse_user(u, &own_user)?],
        None => client.encryption().tracked_users().await?.into_iter().collect(),
    };
    users.sort();
    if let Some(user) = args.user.as_ref().and(users.first()) {
        // An explicit user we do not track yet: ask the server about them.
        if !client.encryption().tracked_users().await?.contains(user) {
            client.encryption().request_user_identity(user).await?;
        }
    }
    let mut shown = 0;
    for user in &users {
        let devices = client.encryption().get_user_devices(user).await?;
        let mut list: Vec<_> = devices.devices().collect();
        list.sort_by(|a, b| a.device_id().cmp(b.device_id()));
        for d in list {
            shown += 1;
            ctx.out.data(&DeviceRecord {
                user_id: user.to_string(),
                device_id: d.device_id().to_string(),
                display_name: d.display_name().map(str::to_owned),
                curve25519: d.curve25519_key().map(|k| k.to_base64()),
                ed25519: d.ed25519_key().map(|k| k.to_base64()),
                verified: d.is_verified(),
                cross_signed_by_owner: d.is_cross_signed_by_owner(),
                local_trust: crate::sdk::trust::local_trust_of(d.local_trust_state()),
                own: *user == own_user && d.device_id() == own_device,
                deleted: d.is_deleted(),
            })?;
        }
    }
    if shown == 0 {
        ctx.out.status("No devices known.");
    }
    Ok(())
}
