//! One ratchet process per profile at a time.
//!
//! matrix-sdk keeps Olm sessions, the outbound Megolm session and the account
//! in memory and writes them back after use. Two processes on one store would
//! each advance their own copy of a ratchet and overwrite the other's: a
//! Megolm (session, index) pair or an Olm chain key used twice. An exclusive
//! `flock` on `<profile>/lock`, held for the whole command, rules that out.
//! A second process waits up to `--lock-timeout` and then fails clearly.
//!
//! `sync --follow` is the one process that gives the lock back: it holds it
//! for one sync at a time (a *turn*, [`acquire_turn`]) and lets every command
//! that waits go first. The lock file counts turns, so the follower can tell
//! whether another process used the store since its last turn (its copy of
//! the store is then stale and must be rebuilt). Commands that wait mark
//! themselves with a shared `flock` on `<profile>/lock.wait` until they hold
//! the lock.

use std::fs::{self, File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::CliError;
use crate::ui::output::Output;

/// Held for the life of the command (or of one turn of a follower); the OS
/// releases it when the process exits, however it exits.
#[derive(Debug)]
pub(crate) struct ProfileLock {
    _file: File,
    /// The number of this hold, written into the lock file.
    pub(crate) turn: u64,
    /// The number the previous holder wrote.
    pub(crate) previous: u64,
}

fn open(path: &Path) -> Result<File, CliError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::failed(format!("could not open the profile lock {}", path.display())).with_source(e))
}

fn wait_marker(path: &Path) -> std::path::PathBuf {
    path.with_extension("wait")
}

pub(crate) async fn acquire(path: &Path, timeout: Duration, out: &Output) -> Result<ProfileLock, CliError> {
    acquire_counted(path, timeout, out, true).await
}

/// [`acquire`] without counting a turn: for a process that touches
/// nothing a follower keeps in memory (a one-shot `sync` that only
/// delivers what the follower kept, from ratchet's state database), so
/// that the follower does not rebuild its client after it.
pub(crate) async fn acquire_uncounted(path: &Path, timeout: Duration, out: &Output) -> Result<ProfileLock, CliError> {
    acquire_counted(path, timeout, out, false).await
}

async fn acquire_counted(path: &Path, timeout: Duration, out: &Output, count: bool) -> Result<ProfileLock, CliError> {
    let mut file = open(path)?;
    let start = Instant::now();
    let mut told = false;
    // While this process waits, a follower lets it go first.
    let mut waiting: Option<File> = None;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(CliError::failed("could not lock the profile").with_source(e));
            }
        }
        if waiting.is_none() {
            waiting = open(&wait_marker(path)).ok().filter(|f| f.try_lock_shared().is_ok());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let holder = holder(&mut file).map(|(p, _)| format!(" (pid {p})")).unwrap_or_default();
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
    record(file, count)
}

/// A follower's turn: waits as long as it takes, and never ahead of a
/// command that is waiting for the profile.
pub(crate) async fn acquire_turn(path: &Path) -> Result<ProfileLock, CliError> {
    acquire_turn_polling(path, Duration::from_millis(25), None).await.map(|held| held.expect("no deadline"))
}

/// [`acquire_turn`] for a follower that would rather not wait: tries every
/// millisecond (a process that is finishing gives the lock back within a
/// few), and gives up after `within` (`None` then).
pub(crate) async fn acquire_turn_within(path: &Path, within: Duration) -> Result<Option<ProfileLock>, CliError> {
    acquire_turn_polling(path, Duration::from_millis(1), Some(Instant::now() + within)).await
}

async fn acquire_turn_polling(
    path: &Path,
    every: Duration,
    deadline: Option<Instant>,
) -> Result<Option<ProfileLock>, CliError> {
    let marker = open(&wait_marker(path))?;
    loop {
        // An exclusive lock on the marker is refused while anyone waits.
        if marker.try_lock().is_ok() {
            let _ = marker.unlock();
            let file = open(path)?;
            match file.try_lock() {
                Ok(()) => return record(file, true).map(Some),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(CliError::failed("could not lock the profile").with_source(e));
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

/// Records who holds the lock (for the message above in other processes)
/// and counts the turn. A turn that cannot be counted fails the lock: a
/// follower that missed another process's turn would keep a stale client
/// (Olm and Megolm state used twice). A count that cannot be read is 0,
/// which no follower's last turn is, so it rebuilds.
fn record(mut file: File, count: bool) -> Result<ProfileLock, CliError> {
    let previous = holder(&mut file).map(|(_, t)| t).unwrap_or(0);
    let turn = if count { previous.wrapping_add(1).max(1) } else { previous };
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{} {turn}", std::process::id()))
        .and_then(|()| file.flush())
        .map_err(|e| CliError::failed("could not record this process in the profile lock").with_source(e))?;
    Ok(ProfileLock { _file: file, turn, previous })
}

/// The turn number the lock file holds now, read without the lock: the
/// last counted holder's, which may still hold it.
pub(crate) fn peek_turn(path: &Path) -> Option<u64> {
    let mut file = fs::File::open(path).ok()?;
    holder(&mut file).map(|(_, turn)| turn)
}

/// The holder's pid and its turn number (0 in a file older than turns).
fn holder(file: &mut File) -> Option<(u32, u64)> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let turn = words.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    Some((pid, turn))
}

/// The one process per profile that delivers `sync`'s records: `sync` and
/// `sync --follow` hold an exclusive `flock` on `<profile>/deliver.lock`
/// for their whole run, so two of them never split the stream between
/// them (issue 28). `chat` is a view and `agent` delivers nothing: neither
/// takes it. The OS releases it when the process exits, however it exits.
#[derive(Debug)]
pub(crate) struct DeliveryLock {
    _file: File,
}

/// Takes the delivery lock, or refuses (exit 2) naming the process that
/// holds it: waiting would be forever, as a follower never gives it back.
pub(crate) fn acquire_delivery(path: &Path) -> Result<DeliveryLock, CliError> {
    let mut file = open(path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| write!(file, "{}", std::process::id()))
                .and_then(|()| file.flush())
                .map_err(|e| CliError::failed("could not record this process in the delivery lock").with_source(e))?;
            Ok(DeliveryLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let pid = holder(&mut file).map(|(p, _)| p.to_string()).unwrap_or_else(|| "?".into());
            Err(CliError::usage(format!(
                "another `ratchet sync` (pid {pid}) is delivering this profile's records; a second one would split \
                 them"
            ))
            .with_hint(format!(
                "stop it first (Ctrl-C in its terminal, or kill -TERM {pid}); `chat ROOM` shows a room's events \
                 without taking them"
            )))
        }
        Err(TryLockError::Error(e)) => Err(CliError::failed("could not lock the profile's delivery").with_source(e)),
    }
}
