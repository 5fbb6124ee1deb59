//! `ratchet unwedge`: a new Olm session and an `m.dummy` over it (R9, R10),
//! at most once per device per hour (R11).

use clap::Args;
use matrix_sdk::ruma::OwnedDeviceId;
use serde::Serialize;
use tracing::instrument;

use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::e2ee::olm::{wait_before_new, UNWEDGE_INTERVAL_MS};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::rooms;
use crate::sdk::olm;
use crate::ui::output::Record;

/// Replace the Olm session with a device: new session, then m.dummy over it.
///
/// For each device (default: every device of USER), claims one of its
/// one-time keys, creates a new Olm session from it, and sends an empty
/// m.dummy encrypted with that new session (rules R9, R10), so the device
/// switches to it. matrix-sdk never sends this m.dummy itself.
///
/// R11: a client does not create a new session with a device if it already
/// created one for it in the past hour. ratchet keeps that record on disk
/// (<profile>/state.sqlite3) and refuses with exit 5 and the time left; --force
/// overrides it.
///
/// Examples:
///
///   ratchet unwedge @bob:example.org BOBDEVICE
///   ratchet --json unwedge @bob:example.org --force
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct UnwedgeArgs {
    /// The user whose device(s) to unwedge
    user: String,
    /// Device ids (default: all of the user's devices)
    devices: Vec<String>,
    /// Create a session even if one was created within the past hour (overrides R11)
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct UnwedgedRecord {
    user_id: String,
    device_id: String,
    /// The new Olm session.
    session_id: String,
    dummy_sent: bool,
    /// R11 was overridden with --force.
    forced: bool,
}

impl Record for UnwedgedRecord {
    const TYPE: &'static str = "unwedged";
    fn human(&self) -> String {
        let forced = if self.forced { " (R11 overridden)" } else { "" };
        format!("{} {}  new Olm session {}, m.dummy sent{forced}", self.user_id, self.device_id, self.session_id)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_unwedge(ctx: &mut CommandContext, args: &UnwedgeArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let own_user = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let own_device = client.device_id().ok_or_else(|| CliError::internal("no device id"))?.to_owned();
    let user = rooms::parse_user(&args.user, &own_user)?;

    let known = olm::user_device_ids(&client, &user).await?;
    let devices: Vec<OwnedDeviceId> = if args.devices.is_empty() {
        known.into_iter().filter(|d| !(user == own_user && *d == own_device)).collect()
    } else {
        let mut list = Vec::new();
        for d in &args.devices {
            let id: OwnedDeviceId = d.as_str().into();
            if !known.contains(&id) {
                return Err(CliError::failed(format!("unknown device {d} of {user}")).with_hint(format!(
                    "`{}` lists the devices ratchet knows",
                    crate::ui::hint::ratchet("devices").arg(user.as_str())
                )));
            }
            list.push(id);
        }
        list
    };
    if devices.is_empty() {
        return Err(CliError::failed(format!("ratchet knows no device of {user} to unwedge"))
            .with_hint("share an encrypted room with them and sync first"));
    }

    let mut ledger = ctx.olm_ledger()?;
    let mut refused = Vec::new();
    for device in &devices {
        let now = now_ms();
        let wait = wait_before_new(ledger.last_created(&user, device), now);
        if let Some(wait) = wait {
            if !args.force {
                refused.push(format!("{device} (in {}m{:02}s)", wait / 60_000, (wait / 1000) % 60));
                continue;
            }
            ctx.out.warn(format!(
                "{device}: overriding R11 (a session was created {}s ago)",
                (UNWEDGE_INTERVAL_MS - wait) / 1000
            ));
        }
        let new = olm::force_new_session(&client, &user, device).await?;
        // R11 counts the session from the moment it exists: a dummy that
        // fails below does not make another one allowed at once.
        ledger.record_created(&user, device, now);
        ledger.save()?;
        let dummy = olm::send_dummy(&client, &user, device).await;
        ctx.out.data(&UnwedgedRecord {
            user_id: new.user_id,
            device_id: new.device_id,
            session_id: new.session_id,
            dummy_sent: dummy.is_ok(),
            forced: wait.is_some(),
        })?;
        if let Err(e) = dummy {
            return Err(CliError::new(
                ErrorKind::Partial,
                format!("the new Olm session with {device} was made but not announced: {}", e.message),
            )
            .with_hint("the next message ratchet encrypts for that device announces it (R10)")
            .with_hint("R11 counts the session already: another one waits an hour (--force overrides)"));
        }
    }
    if !refused.is_empty() {
        return Err(CliError::new(
            ErrorKind::Refused,
            format!("not creating another Olm session within the hour (R11) with {}", refused.join(", ")),
        )
        .with_hint("ratchet created one with that device less than an hour ago; --force overrides R11"));
    }
    Ok(())
}
