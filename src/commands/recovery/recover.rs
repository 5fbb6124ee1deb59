//! `ratchet recovery recover`.

use clap::Args;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::sdk;
use crate::ui::prompt;

/// Verify this device with the recovery key, and turn key backup on.
///
/// The key Element (or `ratchet recovery enable`) gave you unlocks the
/// account's secret storage: the cross-signing private keys are imported,
/// this device is signed with them (it becomes cross-signed, so clients in
/// "exclude insecure devices" mode share keys with it), and the backup key
/// is imported, so room keys are backed up and `backup restore` can read
/// history from before this device existed.
///
/// The key never goes on the command line: it comes from --key-stdin (first
/// line of stdin), RATCHET_RECOVERY_KEY, or a prompt on a terminal (not
/// echoed, as a password: the key must not stay in the scrollback; pasting
/// it is easiest). A wrong or mistyped key changes nothing and exits 4.
///
/// Examples:
///
///   ratchet recovery recover
///   echo "$RECOVERY_KEY" | ratchet recovery recover --key-stdin
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RecoverArgs {
    /// Read the recovery key from the first line of stdin
    #[arg(long)]
    key_stdin: bool,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_recover(ctx: &mut CommandContext, args: &RecoverArgs) -> CliResult {
    let env = ctx.settings.recovery_key_env.clone();
    let no_input = ctx.settings.no_input;
    let sources = || prompt::SecretSources {
        from_stdin: args.key_stdin,
        stdin_flag: "--key-stdin",
        what: "recovery key",
        env: (env.as_ref(), "RATCHET_RECOVERY_KEY"),
        prompt: "Recovery key: ",
        no_input,
        echo: false,
    };
    // A key given (stdin, environment) or none to be had (no terminal to
    // ask on: a usage error) is settled first; a prompt waits until it is
    // known that there is secret storage to open with it.
    let prompting = !args.key_stdin && env.is_none() && prompt::can_prompt(no_input);
    let given = if prompting { None } else { Some(prompt::read_secret(sources())?) };
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    // No secret storage, no recovery key to ask for: say what works instead
    // (before a prompt for a key that cannot exist).
    if !sdk::secrets::storage_exists(&client).await? {
        let facts = sdk::trust::own_facts(&client).await?;
        let mut e = CliError::failed(
            "this account has no secret storage: no recovery key was ever set up for it (by Element or `recovery \
             enable`)",
        );
        let (cross_signed, _) = sdk::trust::own_state(&client).await?;
        if cross_signed {
            e = e.with_hint(format!("`{}` sets it up", crate::ui::hint::ratchet("recovery enable")));
        } else {
            for how in crate::e2ee::trust::how_to_verify_this_device(facts) {
                e = e.with_hint(format!("to verify this device: {how}"));
            }
        }
        return Err(e);
    }
    let key = match given {
        Some(key) => key,
        None => prompt::read_secret(sources())?,
    };
    let made = sdk::secrets::recover(&client, &key).await?;
    ctx.state()?.set_backup_gone(None)?;
    if made {
        ctx.out.status("The account had no key backup: made a new one; its key is in secret storage.");
    }
    // Before the status, so that it counts them; a failure is retried by
    // `finish` (exit 3 if it fails again).
    if let Err(e) = ctx.upload_backup(&client).await {
        ctx.out.warn(format!("room keys not uploaded to the backup yet: {}", e.message));
    }
    // Keys (and trust) that came with recovery may open events kept
    // undecryptable.
    ctx.retry_undecryptable(&client).await;
    let status = super::status_of(&client).await?;
    let cross_signed = status.cross_signed;
    ctx.out.data(&status)?;
    if let Some(next) = super::next_step(&status) {
        ctx.out.status(next);
    }
    if !cross_signed {
        // Secret storage without the cross-signing keys (made by `recovery
        // enable` on an account with no identity, say): the key opened it,
        // but this device is no more verified than before.
        return Err(CliError::failed(
            "this device is still not cross-signed: secret storage holds no cross-signing keys",
        )
        .with_hint(format!(
            "`{}` makes one and signs this device; `{}` then stores its \
             keys in secret storage",
            crate::ui::hint::ratchet("identity --create"),
            crate::ui::hint::ratchet("recovery recover")
        )));
    }
    Ok(())
}
