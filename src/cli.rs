//! The command line as clap sees it: the top-level `Cli`, the global options
//! shared by every subcommand, and nothing else. Subcommand arguments live
//! beside their commands in `commands/`.

use clap::Parser;

use crate::commands::Command;
pub(crate) use crate::global::GlobalArgs;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::global::{parse_lock_seconds, parse_seconds};
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

    use crate::global::{parse_lock_seconds, parse_seconds};

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
/// line; without `--json`, clap's own message. Help and version are text,
/// not data: under `--json` they are that usage error too, as `man` and
/// `completions` are (issue 30: `--json send --help` printed text, exit 0).
pub(crate) fn parse_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind as K;
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    let given: Vec<String> = std::env::args().skip(1).take_while(|a| a != "--").collect();
    if !json {
        if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
            e.exit();
        }
        // clap's own message, minus the options it took from the
        // environment (they are not missing, and not needed on the line).
        let text = without_env_options(&e.render().to_string(), &given);
        eprint!("{text}");
        return std::process::ExitCode::from(2);
    }
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        let what = if e.kind() == K::DisplayHelp { "help" } else { "the version" };
        let err = crate::error::CliError::usage(format!("{what} is not data: it has no --json form"))
            .with_hint("run the same command without --json");
        return crate::process::exit(&crate::ui::output::Output::new(true, false, ColorChoice::Never), Err(err));
    }
    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
        let err = crate::error::CliError::usage("a subcommand is needed")
            .with_hint("add --help after the command to list its subcommands");
        return crate::process::exit(&crate::ui::output::Output::new(true, false, ColorChoice::Never), Err(err));
    }
    let text = without_env_options(&e.render().to_string(), &given);
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

/// The options that may come from the environment (`RATCHET_…`): clap
/// shows one set that way in its usage line as if it had to be typed.
const ENV_OPTIONS: [&str; 8] = [
    "--profile",
    "--data-dir",
    "--isolation",
    "--log-file",
    "--timeout",
    "--lock-timeout",
    "--no-input",
    "--homeserver",
];

/// TEXT (clap's message) with every `--option <VALUE>` of [`ENV_OPTIONS`]
/// that is not on the command line (GIVEN) taken out of its usage lines.
pub(crate) fn without_env_options(text: &str, given: &[String]) -> String {
    let typed = |opt: &str| given.iter().any(|a| a == opt || a.starts_with(&format!("{opt}=")));
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !line.trim_start().starts_with("Usage:") {
            out.push_str(line);
            continue;
        }
        let mut line = line.to_owned();
        for opt in ENV_OPTIONS.iter().filter(|o| !typed(o)) {
            let needle = format!(" {opt}");
            let mut from = 0;
            while let Some(found) = line[from..].find(&needle) {
                let at = from + found;
                let rest = &line[at + needle.len()..];
                // The option alone (` --no-input`) or with its value.
                let end = if rest.starts_with(' ') && rest[1..].starts_with('<') {
                    rest[1..].find('>').map_or(rest.len(), |i| i + 2)
                } else if rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\n') {
                    0
                } else {
                    from = at + needle.len(); // a longer option that starts the same
                    continue;
                };
                line.replace_range(at..at + needle.len() + end, "");
                from = at;
            }
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod env_option_tests {
    use super::without_env_options;

    #[test]
    fn options_from_the_environment_leave_the_usage_line() {
        let text =
            "error: missing <ROOM>\n\nUsage: ratchet send --profile <PROFILE> --data-dir <DIR> <ROOM> [TEXT]...\n";
        assert_eq!(without_env_options(text, &[]), "error: missing <ROOM>\n\nUsage: ratchet send <ROOM> [TEXT]...\n");
        let typed = ["--profile".to_owned(), "bob".to_owned()];
        assert_eq!(
            without_env_options(text, &typed),
            "error: missing <ROOM>\n\nUsage: ratchet send --profile <PROFILE> <ROOM> [TEXT]...\n"
        );
        // `--timeout` does not eat `--timeouts`, nor anything off the usage line.
        let other = "a --data-dir <DIR> here\nUsage: x --timeouts <N> --timeout <SECS>\n";
        assert_eq!(without_env_options(other, &[]), "a --data-dir <DIR> here\nUsage: x --timeouts <N>\n");
    }
}
