//! The options every subcommand accepts (`GlobalArgs`), apart from the
//! command tree (`cli`), so that `settings`, which resolves them, imports
//! nothing of `commands/`.

use std::path::PathBuf;

use clap::Args;

use crate::e2ee::trust::Isolation;
use crate::ui::output::ColorChoice;

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Profile to use: one login, with its own session and encrypted store
    #[arg(
        long,
        global = true,
        hide_env_values = true,
        env = "RATCHET_PROFILE",
        default_value = "default",
        help_heading = "Global options"
    )]
    pub(crate) profile: String,

    /// Directory holding the profiles [default: the platform data dir + /ratchet]
    #[arg(
        long,
        global = true,
        hide_env_values = true,
        env = "RATCHET_DATA_DIR",
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub(crate) data_dir: Option<PathBuf>,

    /// Print data as JSON Lines: one object per line, each with a "type"
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) json: bool,

    /// More logging on stderr (-v: ratchet debug, -vv: also crypto, -vvv: everything)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub(crate) verbose: u8,

    /// No status messages on stderr (data and errors are still printed)
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub(crate) quiet: bool,

    /// When to colour stderr
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN",
        help_heading = "Global options"
    )]
    pub(crate) color: ColorChoice,

    /// Never prompt; fail with a hint instead (implied when stdin is not a terminal)
    #[arg(long, global = true, hide_env_values = true, env = "RATCHET_NO_INPUT", help_heading = "Global options")]
    pub(crate) no_input: bool,

    /// Device isolation (MSC4153): exclude-insecure shares room keys only with, and decrypts only
    /// from, devices cross-signed by their owner [default: the mode set at login, else
    /// exclude-insecure]
    #[arg(
        long,
        global = true,
        value_enum,
        hide_env_values = true,
        env = "RATCHET_ISOLATION",
        value_name = "MODE",
        help_heading = "Global options"
    )]
    pub(crate) isolation: Option<Isolation>,

    /// Also write a full trace log to this file (tokens and keys are never logged)
    #[arg(
        long,
        global = true,
        hide_env_values = true,
        env = "RATCHET_LOG_FILE",
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub(crate) log_file: Option<PathBuf>,

    /// Seconds to wait for each homeserver request
    #[arg(long, global = true, hide_env_values = true, env = "RATCHET_TIMEOUT", default_value = "30", value_name = "SECS", value_parser = parse_seconds, help_heading = "Global options")]
    pub(crate) timeout: u64,

    /// Seconds to wait for another ratchet process using the same profile
    #[arg(long, global = true, hide_env_values = true, env = "RATCHET_LOCK_TIMEOUT", default_value = "60", value_name = "SECS", value_parser = parse_lock_seconds, help_heading = "Global options")]
    pub(crate) lock_timeout: u64,
}

/// A whole number of seconds from `min` to one day.
fn seconds(s: &str, min: u64) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n < min => Err(format!("must be at least {min} second")),
        Ok(n) if n > 86_400 => Err("must be at most 86400 seconds (one day)".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number of seconds")),
    }
}

/// Request timeouts: zero would fail every request.
pub(crate) fn parse_seconds(s: &str) -> Result<u64, String> {
    seconds(s, 1)
}

/// Lock waits: zero means "do not wait".
pub(crate) fn parse_lock_seconds(s: &str) -> Result<u64, String> {
    seconds(s, 0)
}
