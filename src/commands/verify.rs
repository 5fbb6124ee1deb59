//! `ratchet verify`: interactive verification by emoji (SAS), of another
//! user's device, of your own other device, or of whoever asks.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk::trust;
use crate::sdk::verify::{self, Confirm, ShortAuth};
use crate::ui::output::{Output, Record};
use crate::ui::prompt;

/// Verify a device by comparing emoji (SAS) with the other side.
///
/// `verify USER DEVICE` asks another user's device; `verify USER` asks the
/// user (their cross-signing identity) in your direct chat with them, made
/// if there is none; `verify --self [DEVICE]` asks your own other device
/// (all of them that are verified, without DEVICE); `verify --accept`
/// waits for a request from one of your own devices and accepts it;
/// `--accept --from USER` for one from USER (and joins USER's invite to
/// the direct chat a user verification comes in, that one only);
/// `--accept --from-anyone` for one from anybody. Both sides must run at
/// the same time: each syncs until the flow ends (--wait seconds at most).
///
/// When the seven emoji appear, both sides compare them. On a terminal you
/// are asked whether they match. Off a terminal the emoji are printed as an
/// `sas` record on stdout and one line is read from stdin: `yes` confirms,
/// anything else (or end of input) is a mismatch, so a script can compare
/// the emoji of two processes. --yes confirms without comparing: for tests
/// and demos only, it proves nothing about who is on the other side, so
/// with --accept it needs --from (whoever asked first would otherwise be
/// signed with your user-signing key).
///
/// On success the other device is verified here; a device of your own is
/// also signed with your self-signing key if this device holds it (that is
/// what makes a new device "cross-signed by its owner" for everyone). A
/// mismatch or a cancel on either side ends both, exit 1; so does --wait
/// running out.
///
/// Examples:
///
///   ratchet verify --accept --from @alice:example.org        # on bob's side first
///   ratchet verify @bob:example.org BOBDEVICE                # then on alice's
///   ratchet verify --self OLDDEVICE                          # a new device of yours
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct VerifyArgs {
    /// USER [DEVICE] to verify (with --self: DEVICE only, optional)
    #[arg(num_args = 0..=2, value_name = "TARGET")]
    target: Vec<String>,

    /// Verify one of your own devices
    #[arg(long = "self", conflicts_with = "accept")]
    own: bool,

    /// Wait for a verification request and accept it
    #[arg(long)]
    accept: bool,

    /// With --accept: only a request from this user (default: your own devices)
    #[arg(long, value_name = "USER", requires = "accept")]
    from: Option<String>,

    /// With --accept: a request from any user (never with --yes)
    #[arg(long, requires = "accept", conflicts_with_all = ["from", "yes"])]
    from_anyone: bool,

    /// Confirm the emoji without comparing them (tests and demos only)
    #[arg(long)]
    yes: bool,

    /// Give up (and cancel) after this many seconds
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = crate::global::parse_seconds)]
    wait: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct EmojiRecord {
    symbol: String,
    name: String,
}

/// The emoji to compare.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SasRecord {
    flow_id: String,
    other_user: String,
    other_device: String,
    /// The other device's display name, as its owner sees it in their
    /// sessions list ("Element Desktop").
    other_device_name: Option<String>,
    emoji: Vec<EmojiRecord>,
    decimals: Option<[u16; 3]>,
}

impl Record for SasRecord {
    const TYPE: &'static str = "sas";
    fn human(&self) -> String {
        let device = match &self.other_device_name {
            Some(name) => {
                format!("\"{}\" ({})", crate::ui::terminal::inert(name), crate::ui::terminal::inert(&self.other_device))
            }
            None => crate::ui::terminal::inert(&self.other_device),
        };
        let mut s = format!("Compare these emoji with {} {device}:", crate::ui::terminal::inert(&self.other_user));
        for e in &self.emoji {
            s.push_str(&format!("\n  {}  {}", e.symbol, e.name));
        }
        if let Some([a, b, c]) = self.decimals {
            s.push_str(&format!("\n  (or the numbers {a} {b} {c})"));
        }
        s
    }
}

/// A verification that ended well.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct VerifiedRecord {
    flow_id: String,
    user_id: String,
    device_id: String,
    /// One of your own devices.
    own: bool,
    /// After the flow: whether the other device is cross-signed by its owner.
    other_cross_signed: bool,
    /// After the flow: whether this device is cross-signed by its owner.
    this_device_cross_signed: bool,
}

impl Record for VerifiedRecord {
    const TYPE: &'static str = "verified";
    fn human(&self) -> String {
        let mut s = format!("verified {} {}", self.user_id, self.device_id);
        if self.own {
            s.push_str(&format!(
                "\n  that device {}; this device {}",
                if self.other_cross_signed { "is cross-signed" } else { "is NOT cross-signed" },
                if self.this_device_cross_signed { "is cross-signed" } else { "is NOT cross-signed" },
            ));
        }
        s
    }
}

/// How the answer comes: --yes, a terminal question, or a line of stdin.
struct Answer<'a> {
    out: &'a Output,
    yes: bool,
    terminal: bool,
}

impl Confirm for Answer<'_> {
    fn show(&mut self, sas: &ShortAuth) -> CliResult<oneshot::Receiver<bool>> {
        self.out.data(&SasRecord {
            flow_id: sas.flow_id.clone(),
            other_user: sas.other_user.clone(),
            other_device: sas.other_device.clone(),
            other_device_name: sas.other_device_name.clone(),
            emoji: sas
                .emoji
                .iter()
                .map(|(symbol, name)| EmojiRecord { symbol: symbol.clone(), name: name.clone() })
                .collect(),
            decimals: sas.decimals.map(|(a, b, c)| [a, b, c]),
        })?;
        let (tx, rx) = oneshot::channel();
        if self.yes {
            self.out.status("--yes: confirming without comparing.");
            let _ = tx.send(true);
        } else if self.terminal {
            tokio::task::spawn_blocking(move || {
                let _ = tx.send(prompt::confirm("Do the emoji match on both screens?").unwrap_or(false));
            });
        } else {
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                let read = std::io::stdin().read_line(&mut line).unwrap_or(0);
                let _ = tx.send(read > 0 && matches!(line.trim().to_ascii_lowercase().as_str(), "yes" | "y"));
            });
        }
        Ok(rx)
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_verify(ctx: &mut CommandContext, args: &VerifyArgs) -> CliResult {
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    // Bad input is said before anything talks to the server (a server that
    // is down must not turn it into exit 1).
    if args.accept {
        if args.yes && args.from.is_none() {
            return Err(CliError::usage("--accept --yes needs --from USER")
                .with_hint("--yes confirms without comparing: name who may ask (your own id for your own devices)"));
        }
        if !args.target.is_empty() {
            return Err(
                CliError::usage("--accept takes no USER or DEVICE").with_hint("use --from USER to pick the requester")
            );
        }
    }
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let encryption = client.encryption();

    let request = if args.accept {
        // Whom to accept: your own devices unless told (a request from a
        // stranger must be asked for by name, or with --from-anyone).
        let from = match (&args.from, args.from_anyone) {
            (Some(u), _) => Some(rooms::parse_user(u, &own)?),
            (None, true) => None,
            (None, false) => Some(own.clone()),
        };
        // The requester's device must be known before its request arrives,
        // or the SDK drops the request.
        encryption.request_user_identity(from.as_deref().unwrap_or(&own)).await?;
        ctx.out.status(match &from {
            Some(u) if *u == own => "Waiting for a verification request from one of your own devices…".to_owned(),
            Some(u) => format!("Waiting for a verification request from {u}…"),
            None => "Waiting for a verification request from anyone…".to_owned(),
        });
        verify::accept_incoming(&client, from.as_deref(), deadline, &ctx.keeper()).await?
    } else {
        let (user, device) = match (args.own, args.target.as_slice()) {
            (true, []) => (own.clone(), None),
            (true, [device]) => (own.clone(), Some(device.clone())),
            (false, [user, device]) => (rooms::parse_user(user, &own)?, Some(device.clone())),
            (false, [user]) => (rooms::parse_user(user, &own)?, None),
            (false, []) => {
                return Err(CliError::usage("say what to verify: USER DEVICE, --self [DEVICE] or --accept"));
            }
            _ => return Err(CliError::usage("with --self, give at most the DEVICE")),
        };
        let identity = encryption.request_user_identity(&user).await?;
        match device {
            Some(device) => {
                let found = encryption.get_device(&user, device.as_str().into()).await?.ok_or_else(|| {
                    CliError::failed(format!("unknown device {device} of {user}")).with_hint(format!(
                        "`{}` lists the devices ratchet knows",
                        crate::ui::hint::ratchet("devices").arg(user.as_str())
                    ))
                })?;
                if user == own && client.device_id() == Some(found.device_id()) {
                    return Err(CliError::usage("that is this device; verify it from another one"));
                }
                found.request_verification().await?
            }
            None => {
                let identity = identity.ok_or_else(|| {
                    if user == own {
                        CliError::failed("your account has no cross-signing identity to verify against").with_hint(
                            format!(
                                "`{}` creates one and signs this device",
                                crate::ui::hint::ratchet("identity --create")
                            ),
                        )
                    } else {
                        CliError::failed(format!("{user} has no cross-signing identity to verify")).with_hint(format!(
                            "verify one of their devices: `{}`",
                            crate::ui::hint::ratchet("verify").arg(user.as_str()).word("DEVICE")
                        ))
                    }
                })?;
                if user != own {
                    ctx.out.status(format!(
                        "Asking {user} in your direct chat (made now if there is none); they accept there"
                    ));
                }
                identity
                    .request_verification()
                    .await
                    .map_err(|e| CliError::failed("could not request the verification").with_source(e))?
            }
        }
    };
    ctx.out.status(format!("Verification with {} started; syncing until it ends…", request.other_user_id()));
    let terminal = prompt::can_prompt(ctx.settings.no_input) && std::io::stdout().is_terminal();
    let mut answer = Answer { out: &ctx.out, yes: args.yes, terminal };
    let done = verify::run(&client, request, &mut answer, deadline, &ctx.keeper()).await?;

    let other_user = rooms::parse_user(&done.other_user, &own)?;
    let other = encryption.get_device(&other_user, done.other_device.as_str().into()).await?;
    // Secrets come only from a device of ours that is itself verified (one
    // that could hold them). Best effort: the verification is done.
    if other_user == own && other.as_ref().is_some_and(|d| d.is_cross_signed_by_owner()) {
        if let Err(e) = receive_secrets(ctx, &client, deadline).await {
            ctx.out.warn(format!("could not receive the account's secrets: {}", e.message));
        }
    }
    let (this_device_cross_signed, _) = trust::own_state(&client).await?;
    ctx.out.data(&VerifiedRecord {
        flow_id: done.flow_id,
        own: other_user == own,
        user_id: done.other_user,
        device_id: done.other_device,
        other_cross_signed: other.is_some_and(|d| d.is_cross_signed_by_owner()),
        this_device_cross_signed,
    })
}

/// After verifying with a device of your own: the SDK asked it for the
/// account's secrets (cross-signing keys, backup key); they arrive in the
/// next syncs. Syncs until this device holds the cross-signing keys and,
/// when the account has a backup, backs up to it (the backup key is taken
/// up from the secret inbox: `sdk::backup::adopt_received_key`), for 45 s
/// at most (the other device answers after its next sync, which may be a
/// 30 s long poll when it first needs an Olm session with this one). What
/// does not arrive is said, with what to run.
async fn receive_secrets(ctx: &mut CommandContext, client: &matrix_sdk::Client, deadline: Instant) -> CliResult {
    let until = deadline.min(Instant::now() + Duration::from_secs(45));
    let has_backup = crate::sdk::backup::on_server(client).await?.is_some();
    let mut told = false;
    loop {
        ctx.sync(client).await?;
        if let Some(version) = crate::sdk::backup::adopt_received_key(client).await? {
            ctx.state().and_then(|db| db.set_backup_gone(None))?;
            ctx.out.status(format!("Backup key received: this device now backs up to version {version}."));
        }
        let keys = client.encryption().cross_signing_status().await.is_some_and(|s| s.is_complete());
        let backup = !has_backup || crate::sdk::backup::version_here(client).await?.is_some();
        if keys && backup {
            return Ok(());
        }
        if !told {
            ctx.out.status("Waiting for the account's secrets from your other device…");
            told = true;
        }
        if Instant::now() >= until {
            if !backup {
                ctx.out.warn(format!(
                    "the other device did not send the backup key: this device's room keys are not backed up; \
                     `{}` with the recovery key turns backup on",
                    crate::ui::hint::ratchet("recovery recover")
                ));
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
