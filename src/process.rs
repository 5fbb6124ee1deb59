//! Process-level plumbing that `main` calls: the file-creation mask, the
//! panic hook for shutdown, the runtime and its shutdown, and turning a
//! result into an exit code. Nothing here knows about commands.

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{CliError, ErrorKind};
use crate::ui::output::Output;

/// Secrets (session file, store key) are created 0600; a umask of 077 also
/// covers the files matrix-sdk creates in the store directory.
pub(crate) fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Runs `work` on a multi-threaded runtime and returns its result, leaving
/// the runtime running: the process exits right after (see `main`).
///
/// Nothing is torn down on the way out, on purpose. Everything a command
/// promises is written before it returns (every store write is an awaited,
/// committed SQLite transaction; ratchet's own files are replaced
/// atomically and synced; output is flushed record by record). Dropping the
/// client would only close the store's connections, which checkpoints their
/// write-ahead logs (more synced writes), and wait for the SDK's background
/// tasks (recovery and backup set-up) — milliseconds on every run, for
/// nothing a later run needs: SQLite recovers an un-checkpointed log on the
/// next open, and a transaction cut off mid-way is rolled back.
pub(crate) fn run<T>(work: impl Future<Output = T>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal("could not start the async runtime").with_source(e))?;
    install_panic_hook();
    let result = runtime.block_on(work);
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    std::mem::forget(runtime);
    Ok(result)
}

/// matrix-sdk starts background tasks at session restore (recovery and
/// backup set-up), and they may still be running while the process exits,
/// or while `close_client` drops a client: deadpool panics inside such a
/// task when its blocking store call is cut off ("Task has been
/// cancelled"). tokio contains such panics; only their message would reach
/// the user. Silence worker-thread panics once the command has finished;
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

/// A test hook for crash tests: when `RATCHET_KILL_AT` names `step`, this
/// process sends itself SIGKILL there (no unwinding, no flush, no exit
/// handler: what a kill or a power cut leaves). Debug builds only; a
/// release build compiles it to nothing.
pub(crate) fn kill_point(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("RATCHET_KILL_AT").is_ok_and(|at| at == step) {
        tracing::debug!(step, "RATCHET_KILL_AT: SIGKILL");
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// A test hook for fault tests: when `RATCHET_FAIL_AT` names `step`, the
/// operation there fails as an I/O error would, for the failures a real
/// server or disk cannot be made to produce on demand at that exact point
/// (the backup upload right after `recovery enable`, the send journal's
/// write after the server accepted a message). Debug builds only.
pub(crate) fn fail_point(step: &str) -> Result<(), CliError> {
    #[cfg(debug_assertions)]
    if std::env::var("RATCHET_FAIL_AT").is_ok_and(|at| at == step) {
        tracing::debug!(step, "RATCHET_FAIL_AT: failing");
        return Err(CliError::failed(format!("injected failure at {step} (RATCHET_FAIL_AT)")));
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
    Ok(())
}
