//! `ratchet olm`: Olm sessions per device, and which one is used.

use clap::Args;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use serde::Serialize;
use tracing::instrument;

use crate::clock::format_ts;
use crate::context::CommandContext;
use crate::e2ee::olm::{SessionInfo, R8_MIN_CAP};
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk::olm;
use crate::ui::output::Record;

/// Show the Olm sessions with each device, and which one encrypts.
///
/// For each device: its sessions (id, created, last used, and when it last
/// received and decrypted a message, where ratchet saw it), the session
/// rule R7 says to use (the one that last received and decrypted a message;
/// one that received nothing counts its creation time), and the session
/// matrix-sdk will actually encrypt with. ratchet carries a patch to
/// matrix-sdk-crypto 0.18 that makes the SDK choose by R7 too (the
/// published crate took the newest created: matrix-rust-sdk#3356), so the
/// two agree; they are flagged when they differ (ratchet's receipts and
/// the SDK's are kept apart, the SDK's in whole seconds). The count is
/// shown against R8's cap (keep at least 4 per device).
///
/// Examples:
///
///   ratchet olm @bob:example.org
///   ratchet --json olm @bob:example.org BOBDEVICE | jq .choices_differ
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct OlmArgs {
    /// User id, or a bare name on your server; default: everyone tracked
    user: Option<String>,
    /// Only this device of USER
    device: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct OlmDeviceRecord {
    user_id: String,
    device_id: String,
    curve25519: String,
    session_count: usize,
    /// R8: keep at least this many sessions per device.
    r8_min_cap: usize,
    sessions: Vec<SessionInfo>,
    r7_choice: Option<String>,
    sdk_choice: Option<String>,
    choices_differ: bool,
}

impl Record for OlmDeviceRecord {
    const TYPE: &'static str = "olm_device";
    fn human(&self) -> String {
        let mut s = format!(
            "{} {}  {} session(s) (R8: keep at least {})",
            self.user_id, self.device_id, self.session_count, self.r8_min_cap
        );
        for x in &self.sessions {
            let mut marks = Vec::new();
            if self.sdk_choice.as_deref() == Some(&x.session_id) {
                marks.push("sdk uses");
            }
            if self.r7_choice.as_deref() == Some(&x.session_id) {
                marks.push("R7 choice");
            }
            let received = x.last_received_ms.map(format_ts).unwrap_or_else(|| "-".into());
            s.push_str(&format!(
                "\n  {}  created {}  last used {}  last received {}{}",
                x.session_id,
                format_ts(x.created_ms),
                format_ts(x.last_used_ms),
                received,
                if marks.is_empty() { String::new() } else { format!("  <- {}", marks.join(", ")) }
            ));
        }
        if self.choices_differ {
            s.push_str("\n  ! matrix-sdk encrypts with a different session than R7 says to use");
        }
        s
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_olm(ctx: &mut CommandContext, args: &OlmArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let own_user = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let own_device = client.device_id().ok_or_else(|| CliError::internal("no device id"))?.to_owned();
    let ledger = ctx.olm_ledger()?;

    let mut users: Vec<OwnedUserId> = match &args.user {
        Some(u) => vec![rooms::parse_user(u, &own_user)?],
        None => client.encryption().tracked_users().await?.into_iter().collect(),
    };
    users.sort();
    let mut shown = 0;
    for user in &users {
        let devices = client.encryption().get_user_devices(user).await?;
        let mut ids: Vec<OwnedDeviceId> = devices.devices().map(|d| d.device_id().to_owned()).collect();
        ids.sort();
        if let Some(wanted) = &args.device {
            ids.retain(|d| d.as_str() == wanted);
            if ids.is_empty() {
                return Err(CliError::failed(format!("unknown device {wanted} of {user}")).with_hint(format!(
                    "`{}` lists the devices ratchet knows",
                    crate::ui::hint::ratchet("devices").arg(user.as_str())
                )));
            }
        }
        for id in ids {
            if *user == own_user && id == own_device {
                continue;
            }
            let Some(curve) = devices.get(&id).and_then(|d| d.curve25519_key()).map(|k| k.to_base64()) else {
                continue;
            };
            let found = olm::device_sessions(&client, &curve, &ledger).await?;
            shown += 1;
            ctx.out.data(&OlmDeviceRecord {
                user_id: user.to_string(),
                device_id: id.to_string(),
                curve25519: curve,
                session_count: found.sessions.len(),
                r8_min_cap: R8_MIN_CAP,
                choices_differ: found.r7_choice != found.sdk_choice,
                r7_choice: found.r7_choice,
                sdk_choice: found.sdk_choice,
                sessions: found.sessions,
            })?;
        }
    }
    if shown == 0 {
        ctx.out.status("No devices with Olm sessions to show.");
    }
    Ok(())
}
