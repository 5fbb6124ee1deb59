//! One ratchet process per profile at a time.
//!
//! matrix-sdk keeps Olm sessions, the outbound Megolm session and the account
//! in memory and writes them back after use. Two processes on one store would
//! each advance their own copy of a ratchet and overwrite the other's: a
//! Megolm (session, index) pair or an Olm chain key used twice. An exclusive
//! `flock` on `<profile>/lock`, held for the whole command, rules that out.
//! A second process waits up to `--lock-timeout` and then fails clearly.

use std::fs::{self, File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::CliError;
use crate::ui::output::Output;

/// Held for the life of the command; the OS releases it when the process
/// exits, however it exits.
#[derive(Debug)]
pub(crate) struct ProfileLock {
    _file: File,
}

pub(crate) async fn acquire(path: &Path, timeout: Duration, out: &Output) -> Result<ProfileLock, CliError> {
    let mut file =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path).map_err(
            |e| CliError::failed(format!("could not open the profile lock {}", path.display())).with_source(e),
        )?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(CliError::failed("could not lock the profile").with_source(e));
            }
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let holder = holder_pid(&mut file).map(|p| format!(" (pid {p})")).unwrap_or_default();
            return Err(CliError::failed(format!(
                "the profile is in use by another ratchet process{holder}; gave up after {}s",
                timeout.as_secs()
            ))
            .with_hint("wait for it to finish, or raise --lock-timeout / RATCHET_LOCK_TIMEOUT"));
        }
        if !told && waited >= Duration::from_millis(500) {
            out.status("Waiting for another ratchet process using this profile…");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Record who holds it, for the message above in other processes.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(ProfileLock { _file: file })
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
