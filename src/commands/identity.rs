//! `ratchet identity`: a user's cross-signing identity as this device sees
//! it, and for your own, where this device stands.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;
use crate::sdk::trust::{self, PrivateKeys};
use crate::ui::output::Record;

/// Show a cross-signing identity: yours by default, or another user's.
///
/// For your own user: the master key, whether this device is cross-signed
/// by it (MSC4153's "secure" device: Element users' clients share keys with
/// it and decrypt what it sends only then), and which private cross-signing
/// keys this device holds. For another user: their master key, whether you
/// verified them, and whether their identity changed since you did (a
/// verification violation: messages to them are refused until you look).
/// Asks the server for the current keys first.
///
/// A verification violation has two ways out, as in Element: verify the
/// new identity with them (`ratchet verify USER`), or withdraw your
/// verification (--withdraw-verification: you accept the new identity as
/// unverified, and messages to them flow again). Asks for confirmation on
/// a terminal; --yes otherwise.
///
/// The identity of someone you never verified can change too (a reset, a
/// new account on another client; or a server that lies). Nothing is
/// refused then, but `identity_changed` says so until you acknowledge the
/// new identity (--acknowledge, Element's "OK" on "their identity was
/// reset") or verify it.
///
/// --create makes your account's cross-signing identity when it has none
/// (an account logged in with --no-bootstrap, or set up by a client that
/// does not cross-sign) and signs this device with it, as `login` does; the
/// server may ask for the password (--password-stdin, RATCHET_PASSWORD or a
/// prompt). It never replaces an identity that exists.
///
/// Examples:
///
///   ratchet identity
///   ratchet --json identity @bob:example.org | jq .verification_violation
///   ratchet identity @bob:example.org --withdraw-verification
///   ratchet identity @bob:example.org --acknowledge
///   ratchet identity --create --password-stdin < password.txt
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct IdentityArgs {
    /// User id (@bob:example.org) or a bare name on your server; default: yourself
    user: Option<String>,

    /// Accept USER's changed identity, unverified: withdraws your
    /// verification of them (after a verification violation)
    #[arg(long, requires = "user")]
    withdraw_verification: bool,

    /// Accept USER's changed identity (never verified by you) as theirs:
    /// `identity_changed` is cleared
    #[arg(long, requires = "user", conflicts_with = "withdraw_verification")]
    acknowledge: bool,

    /// Do not ask for confirmation (with --withdraw-verification)
    #[arg(long, requires = "withdraw_verification")]
    yes: bool,

    /// Create your account's cross-signing identity (when it has none) and
    /// sign this device with it
    #[arg(long, conflicts_with_all = ["user", "withdraw_verification"])]
    create: bool,

    /// With --create: read the account password from the first line of stdin
    #[arg(long, requires = "create")]
    password_stdin: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct IdentityRecord {
    user_id: String,
    /// Your own identity.
    own: bool,
    /// The master key (base64); null when the user has no cross-signing identity.
    master_key: Option<String>,
    /// Own identity: trusted on this device. Another user: verified by you.
    verified: bool,
    previously_verified: bool,
    /// Verified once, and the identity changed since.
    verification_violation: bool,
    /// Never verified by you, and the identity changed since this device
    /// first saw it (Element: "their identity was reset"): `identity USER
    /// --acknowledge` accepts it, `verify USER` verifies it. Always false
    /// for your own identity.
    identity_changed: bool,
    /// Own identity only: whether this device is signed by it.
    this_device_cross_signed: Option<bool>,
    /// Own identity only: the private keys this device holds.
    private_keys: Option<PrivateKeys>,
}

impl Record for IdentityRecord {
    const TYPE: &'static str = "identity";
    fn human(&self) -> String {
        let Some(master) = &self.master_key else {
            return format!("{}  no cross-signing identity", self.user_id);
        };
        let mut s = format!("{}\n  master key  {master}", self.user_id);
        if self.own {
            let signed = self.this_device_cross_signed.unwrap_or(false);
            s.push_str(&format!(
                "\n  this device {}",
                if signed { "cross-signed (secure)" } else { "NOT cross-signed (insecure: verify it)" }
            ));
            if let Some(k) = &self.private_keys {
                let held: Vec<&str> =
                    [(k.master, "master"), (k.self_signing, "self-signing"), (k.user_signing, "user-signing")]
                        .iter()
                        .filter(|(has, _)| *has)
                        .map(|(_, name)| *name)
                        .collect();
                s.push_str(&format!(
                    "\n  private keys here: {}",
                    if held.is_empty() { "none".to_owned() } else { held.join(", ") }
                ));
            }
        } else {
            s.push_str(&format!("\n  verified by you: {}", if self.verified { "yes" } else { "no" }));
            if self.verification_violation {
                s.push_str("\n  VERIFICATION VIOLATION: their identity changed since you verified them");
            }
            if self.identity_changed {
                s.push_str("\n  IDENTITY CHANGED since this device first saw it (you never verified them)");
            }
        }
        s
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_identity(ctx: &mut CommandContext, args: &IdentityArgs) -> CliResult {
    let client = ctx.client().await?;
    let own_user = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let user = match &args.user {
        Some(u) => rooms::parse_user(u, &own_user)?,
        None => own_user.clone(),
    };
    let own = user == own_user;
    if args.create {
        create(ctx, &client, args.password_stdin).await?;
    }
    if args.withdraw_verification {
        if own {
            return Err(CliError::usage("--withdraw-verification is for another user's identity"));
        }
        let found = trust::identity(&client, &user).await?;
        if !found.verification_violation {
            ctx.out.status(format!(
                "{user}'s identity shows no verification violation (not verified by you, or unchanged since): \
                 nothing to accept."
            ));
        } else {
            if !args.yes {
                if !crate::ui::prompt::can_prompt(ctx.settings.no_input) {
                    return Err(CliError::usage("withdrawing a verification needs --yes off a terminal"));
                }
                if !crate::ui::prompt::confirm(&format!(
                    "{user}'s identity changed since you verified them. Accept the new identity as unverified? \
                     (Check with them first; `{}` verifies it again.)",
                    crate::ui::hint::ratchet("verify").arg(user.as_str())
                ))? {
                    return Err(CliError::declined("Nothing changed."));
                }
            }
            if trust::withdraw_verification(&client, &user).await? {
                ctx.out.status(format!(
                    "Verification of {user} withdrawn: messages to them are sent again; `{}` verifies the new identity.",
                    crate::ui::hint::ratchet("verify").arg(user.as_str())
                ));
            }
        }
    }
    if args.acknowledge {
        if own {
            return Err(CliError::usage("--acknowledge is for another user's identity"));
        }
        if trust::acknowledge_identity(&client, &user).await? {
            ctx.out.status(format!("{user}'s new identity acknowledged: this device takes it as theirs from now on."));
        } else {
            ctx.out.status(format!(
                "{user}'s identity has not changed since this device first saw it (or you verified it): nothing to \
                 acknowledge."
            ));
        }
    }
    let found = trust::identity(&client, &user).await?;
    let (this_device_cross_signed, private_keys) = if own {
        let (signed, keys) = trust::own_state(&client).await?;
        (Some(signed), Some(keys))
    } else {
        (None, None)
    };
    let unverified_here = this_device_cross_signed == Some(false);
    let record = IdentityRecord {
        user_id: user.to_string(),
        own,
        master_key: found.master_key,
        verified: found.verified,
        previously_verified: found.previously_verified,
        verification_violation: found.verification_violation,
        identity_changed: found.identity_changed,
        this_device_cross_signed,
        private_keys,
    };
    let changed = record.identity_changed;
    ctx.out.data(&record)?;
    if changed {
        ctx.out.status(format!(
            "{user}'s identity changed since this device first saw it. Check with them (another channel), then \
             `{}` accepts it, or `{}` verifies it.",
            crate::ui::hint::ratchet("identity").arg(user.as_str()).word("--acknowledge"),
            crate::ui::hint::ratchet("verify").arg(user.as_str())
        ));
    }
    if unverified_here {
        for how in crate::e2ee::trust::how_to_verify_this_device(trust::own_facts(&client).await?) {
            ctx.out.status(format!("To verify this device: {how}"));
        }
    }
    Ok(())
}

/// `identity --create`: the account's identity, made here (never over one
/// that exists).
async fn create(ctx: &mut CommandContext, client: &matrix_sdk::Client, password_stdin: bool) -> CliResult {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let held = client.encryption().cross_signing_status().await.is_some_and(|s| s.is_complete());
    if !held && client.encryption().request_user_identity(&own).await?.is_some() {
        let mut e = CliError::failed("your account already has a cross-signing identity; nothing was changed");
        for how in crate::e2ee::trust::how_to_verify_this_device(trust::own_facts(client).await?) {
            e = e.with_hint(format!("to verify this device: {how}"));
        }
        return Err(e);
    }
    let password = ctx.read_password(password_stdin, own.as_str())?;
    let made = trust::bootstrap_at_login(client, Some(&password)).await?;
    if made != crate::e2ee::trust::CrossSigningAtLogin::Created {
        return Err(CliError::failed("your account already has a cross-signing identity; nothing was changed"));
    }
    ctx.out.status("Cross-signing identity created; this device is signed by it.");
    if crate::sdk::secrets::storage_exists(client).await? {
        ctx.out.status(format!(
            "The account has secret storage: `{}` with its recovery key stores the new \
             identity's keys in it.",
            crate::ui::hint::ratchet("recovery recover")
        ));
    } else {
        ctx.out.status(format!(
            "`{}` gives it a recovery key and a key backup.",
            crate::ui::hint::ratchet("recovery enable")
        ));
    }
    Ok(())
}
