//! ratchet's entry point: parse → logging → runtime → dispatch → exit code
//! (a command handed to a warm follower answers before the runtime).
//! Nothing else lives here.

mod attach;
mod batch;
mod cli;
mod clock;
mod commands;
mod context;
mod e2ee;
mod error;
mod events;
mod follow;
mod gapfill;
mod global;
mod ids;
mod process;
mod profile;
mod rooms;
mod sdk;
mod settings;
mod sso;
mod stream;
mod ui;
mod warm;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::Cli;
use crate::context::CommandContext;
use crate::error::CliError;
use crate::process::exit;
use crate::settings::Settings;
use crate::ui::output::Output;

fn main() -> ExitCode {
    process::private_umask();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::parse_error(e),
    };
    let out = Output::new(cli.global.json, cli.global.quiet, cli.global.color);
    if let Err(message) =
        ui::logging::init(cli.global.verbose, cli.global.json, out.color(), cli.global.log_file.as_deref())
    {
        return exit(&out, Err(CliError::usage(message)));
    }
    let settings = match Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(e) => return exit(&out, Err(e)),
    };
    let mut ctx = CommandContext::new(settings, out);
    if let Some(result) = commands::run_before_runtime(&ctx, &cli.command) {
        return exit(&ctx.out, result);
    }
    let outcome = process::run(async {
        let result = commands::run_command(&mut ctx, &cli.command).await;
        let result = ctx.finish(result).await;
        (result, ctx)
    });
    match outcome {
        Ok((result, ctx)) => {
            let code = exit(&ctx.out, result);
            // The client is not dropped: the process ends now (see process::run).
            std::mem::forget(ctx);
            code
        }
        Err(e) => exit(&Output::new(cli.global.json, cli.global.quiet, cli.global.color), Err(e)),
    }
}
