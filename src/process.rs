//! Process-level plumbing that `main` calls: the file-creation mask, the
//! panic hook for shutdown, the runtime and its shutdown, and turning a
//! result into an exit code. Nothing here knows about commands.

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{CliError, ErrorKind};
use crate::output::Output;

/// Secrets (session file, store key) are created 0600; a umask of 077 also
/// covers the files matrix-sdk creates in the store directory.
pub(crate) fn private_umask() {
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc_umask(0o077) };
}

extern "C" {
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Runs `work` on a multi-threaded runtime, then shuts the runtime down with
/// a short timeout: the SDK may leave background tasks (sync beats, key
/// uploads) running, and they must not hold the exit hostage.
pub(crate) fn run<T>(work: impl Future<Output = T>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal("could not start the async runtime").with_source(e))?;
    install_panic_hook();
    let result = runtime.block_on(work);
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(result)
}

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

/// The exit code for a result, printing the error (once) if there is one.
pub(crate) fn exit(out: &Output, result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `ratchet … | head`: the reader left; that is success.
        Err(err) if err.kind == ErrorKind::PipeClosed => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::from(err.kind.exit_code())
        }
    }
}
