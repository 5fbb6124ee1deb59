//! `ratchet debug …`: failures made on purpose, for QA.

use clap::Subcommand;

use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::ui::prompt;

pub(crate) mod forget_olm;
pub(crate) mod forget_room_key;

/// Break things on purpose, to reproduce decryption failures.
#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    ForgetOlm(forget_olm::ForgetOlmArgs),
    ForgetRoomKey(forget_room_key::ForgetRoomKeyArgs),
}

pub(crate) async fn run(ctx: &mut CommandContext, command: &DebugCommand) -> CliResult {
    match command {
        DebugCommand::ForgetOlm(args) => forget_olm::cmd_forget_olm(ctx, args).await,
        DebugCommand::ForgetRoomKey(args) => forget_room_key::cmd_forget_room_key(ctx, args).await,
    }
}

/// Destructive commands ask on a terminal and need --yes otherwise.
pub(crate) fn confirm(ctx: &CommandContext, yes: bool, question: &str) -> CliResult {
    if yes {
        return Ok(());
    }
    if !prompt::can_prompt(ctx.settings.no_input) {
        return Err(CliError::usage("this destroys key material; confirm with --yes when not on a terminal"));
    }
    if prompt::confirm(question)? {
        Ok(())
    } else {
        Err(CliError::declined("Cancelled; nothing was changed."))
    }
}
