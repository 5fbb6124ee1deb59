//! `ratchet completions` and `ratchet man`: generated from the same clap
//! definitions as the parser, so they cannot drift from it.

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use tracing::instrument;

use crate::cli::Cli;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};

/// Print a shell completion script.
///
/// Examples:
///
///   ratchet completions bash > ~/.local/share/bash-completion/completions/ratchet
///   ratchet completions zsh > "${fpath[1]}/_ratchet"
///   ratchet completions fish > ~/.config/fish/completions/ratchet.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CompletionsArgs {
    /// The shell
    shell: Shell,
}

/// Print the man page (roff).
///
/// Example:
///
///   ratchet man > ratchet.1 && man ./ratchet.1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ManArgs {}

fn no_json(ctx: &CommandContext, what: &str) -> CliResult {
    if ctx.out.is_json() {
        return Err(CliError::usage(format!("{what} is not data: it has no --json form")));
    }
    Ok(())
}

#[instrument(skip_all)]
pub(crate) async fn cmd_completions(ctx: &mut CommandContext, args: &CompletionsArgs) -> CliResult {
    no_json(ctx, "a completion script")?;
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ratchet", &mut out);
    ctx.out.raw(&out)
}

#[instrument(skip_all)]
pub(crate) async fn cmd_man(ctx: &mut CommandContext, _args: &ManArgs) -> CliResult {
    no_json(ctx, "the man page")?;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::internal("could not render the man page").with_source(e))?;
    ctx.out.raw(&out)
}
