//! The command line as clap sees it: the top-level `Cli`, the global options
//! shared by every subcommand, and nothing else. Subcommand arguments live
//! beside their commands in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser};

use crate::commands::Command;
use crate::e2ee::trust::Isolation;
use crate::ui::output::ColorChoice;

/// A command-line Matrix client that makes end-to-end encryption visible.
///
/// ratchet logs in, keeps an encrypted store between runs, and shows which
/// Megolm session and message index every encrypted message used.
///
/// Quick start:
///
///   ratchet login --homeserver https://matrix.example --user alice
///   ratchet room create --name test --encrypted --invite @bob:example
///   ratchet send '!room' 'hello'
///   ratchet messages '!room'
///
/// Exit codes: 0 ok, 1 failed, 2 usage, 3 partial (some items failed),
/// 4 authentication needed, 5 refused by a protocol rule, 101 bug.
#[derive(Debug, Parser)]
#[command(name = "ratchet", version, max_term_width = 100, verbatim_doc_comment)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

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
fn parse_lock_seconds(s: &str) -> Result<u64, String> {
    seconds(s, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(parse_seconds("5"), Ok(5));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("1e9").is_err());
        assert!(parse_seconds("86401").is_err());
        assert_eq!(parse_lock_seconds("0"), Ok(0));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::{parse_lock_seconds, parse_seconds};

    proptest! {
        #[test]
        fn durations(n in any::<i64>(), s in "\\PC{0,20}") {
            prop_assert_eq!(parse_seconds(&n.to_string()).is_ok(), (1..=86_400).contains(&n));
            prop_assert_eq!(parse_lock_seconds(&n.to_string()).is_ok(), (0..=86_400).contains(&n));
            let _ = parse_seconds(&s);
        }
    }
}

/// A command line clap refused (or help / version asked for). Help and
/// version print as clap prints them. A usage error under `--json`
/// (anywhere before `--`) is the same `error` record as every other error
/// (kind `usage`, exit 2), so that a script reading stderr parses every
/// line; without `--json`, clap's own message.
pub(crate) fn parse_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind as K;
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if !json || matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        e.exit();
    }
    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
        let err = crate::error::CliError::usage("a subcommand is needed")
            .with_hint("add --help after the command to list its subcommands");
        return crate::process::exit(&crate::ui::output::Output::new(true, false, ColorChoice::Never), Err(err));
    }
    let text = e.render().to_string();
    // The first line, and the indented lines that continue it (the
    // missing arguments), are the message; `tip:` lines and the usage
    // line are hints.
    let mut raw = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let mut message = raw.next().unwrap_or("invalid command line").trim().trim_start_matches("error: ").to_owned();
    while let Some(more) = raw.next_if(|l| l.starts_with(' ')) {
        message.push(' ');
        message.push_str(more.trim());
    }
    let lines = raw.map(str::trim);
    let mut err = crate::error::CliError::usage(message);
    for line in lines {
        if let Some(tip) = line.strip_prefix("tip: ") {
            err = err.with_hint(tip.to_owned());
        } else if !line.starts_with("For more information") {
            err = err.with_hint(line.to_owned());
        }
    }
    crate::process::exit(&crate::ui::output::Output::new(true, false, ColorChoice::Never), Err(err))
}
