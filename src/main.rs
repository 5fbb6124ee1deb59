//! ratchet's entry point: parse → logging → runtime → dispatch → exit code.
//! Nothing else lives here.

mod cli;
mod commands;
mod context;
mod crypto;
mod error;
mod events;
mod journal;
mod lock;
mod logging;
mod megolm;
mod olm;
mod output;
mod prompt;
mod rawstore;
mod recovery;
mod rooms;
mod session;
mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;

use crate::cli::Cli;
use crate::context::CommandContext;
use crate::error::{CliError, ErrorKind};
use crate::output::{ColorChoice, Output};
use crate::settings::Settings;

fn main() -> ExitCode {
    // Secrets (session file, store passphrase) are created 0600; a umask of
    // 077 also covers files matrix-sdk creates in the store directory.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc_umask(0o077) };
    let cli = Cli::parse();
    let out = Output::new(cli.global.json, cli.global.quiet, cli.global.color);
    let ansi = cli.global.color == ColorChoice::Always
        || (cli.global.color == ColorChoice::Auto && std::io::stderr().is_terminal());
    if let Err(message) = logging::init(cli.global.verbose, ansi, cli.global.log_file.as_deref()) {
        return exit(&out, Err(CliError::usage(message)));
    }
    let settings = match Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(e) => return exit(&out, Err(e)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return exit(&out, Err(CliError::internal("could not start the async runtime").with_source(e))),
    };
    install_panic_hook();
    let mut ctx = CommandContext::new(settings, out);
    let (result, out) = runtime.block_on(async {
        let result = commands::run_command(&mut ctx, &cli.command).await;
        // The client and its store pools must be dropped inside the runtime.
        (result, ctx.into_output())
    });
    // The SDK may leave background tasks (sync beats, key uploads) running;
    // don't let them hold the exit hostage.
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    runtime.shutdown_timeout(Duration::from_secs(2));
    exit(&out, result)
}

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// matrix-sdk starts background tasks at session restore (recovery and
/// backup set-up). When the runtime stops, the blocking store calls they
/// wait on are cancelled and deadpool panics inside those tasks ("Task has
/// been cancelled"). tokio contains such panics; only their message would
/// reach the user. Silence worker-thread panics once shutdown has begun;
/// every other panic is reported as usual (and exits 101).
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_main = std::thread::current().name() == Some("main");
        if SHUTTING_DOWN.load(Ordering::SeqCst) && !on_main {
            return;
        }
        default(info);
    }));
}

fn exit(out: &Output, result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind == ErrorKind::PipeClosed => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::from(err.kind.exit_code())
        }
    }
}

extern "C" {
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}
