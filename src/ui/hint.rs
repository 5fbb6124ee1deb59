//! Suggested commands: every hint, fix or "run …" line that names a
//! ratchet command is built here, so that pasted into a POSIX shell it
//! runs as shown. It carries the options that select the profile
//! (`--data-dir`, `--profile`) when they are not the defaults, quotes
//! every value that needs it (room ids start with `!`, which bash expands;
//! event ids with `$`), and leaves placeholders (`FILE`) as they are.
//!
//! The invocation's profile and data directory are resolved once, before
//! dispatch, and read from here: hints are built in places that hold no
//! context (error conversions, the SDK facade, policy), and passing
//! `Settings` through all of them would buy nothing (STYLE.md prefers
//! explicit settings; this is the one process-wide value, and it never
//! changes after `init`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What selects this invocation's profile, as a hint must repeat it.
#[derive(Debug, Default, Clone)]
struct Invocation {
    /// The profile, when a hint must name it.
    profile: Option<String>,
    /// The data directory, when one was given (flag or environment).
    data_dir: Option<PathBuf>,
}

static INVOCATION: OnceLock<Invocation> = OnceLock::new();

/// Records the profile a hint must name (None: the default one, taken by
/// default) and the data directory given, if any (once).
pub(crate) fn init(profile: Option<&str>, data_dir: Option<&Path>) {
    let _ =
        INVOCATION.set(Invocation { profile: profile.map(str::to_owned), data_dir: data_dir.map(Path::to_path_buf) });
}

/// `word` as one POSIX shell word: bare when it holds only characters no
/// shell treats specially, else in single quotes.
pub(crate) fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '_' | '-')
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `ratchet WORDS` for this profile, from fixed words (subcommands, flags,
/// placeholders: nothing that needs quoting); `.arg(…)` adds values.
pub(crate) fn ratchet(words: &str) -> Cmd {
    let words: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
    Cmd { raw: words.clone(), words, theirs: false }
}

/// The same, to be run on another user's or device's side.
pub(crate) fn theirs(words: &str) -> Cmd {
    Cmd { theirs: true, ..ratchet(words) }
}

/// A ratchet command line to suggest.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    /// The words as the shell must see them (quoted where needed).
    words: Vec<String>,
    /// The same words as ratchet receives them (for the paste test).
    raw: Vec<String>,
    /// For another person or device (`on their side: …`): no profile.
    theirs: bool,
}

impl Cmd {
    /// A value: quoted for the shell as needed.
    pub(crate) fn arg(mut self, value: impl AsRef<str>) -> Cmd {
        self.words.push(quote(value.as_ref()));
        self.raw.push(value.as_ref().to_owned());
        self
    }

    /// A flag, or a placeholder the user fills in (`FILE`): as written.
    pub(crate) fn word(mut self, word: &str) -> Cmd {
        self.words.push(word.to_owned());
        self.raw.push(word.to_owned());
        self
    }

    /// The arguments ratchet would receive, profile options included.
    fn argv(&self, inv: &Invocation) -> Vec<String> {
        let mut argv = Vec::new();
        if !self.theirs {
            if let Some(dir) = &inv.data_dir {
                argv.extend(["--data-dir".to_owned(), dir.to_string_lossy().into_owned()]);
            }
            if let Some(profile) = &inv.profile {
                argv.extend(["--profile".to_owned(), profile.clone()]);
            }
        }
        argv.extend(self.raw.iter().cloned());
        argv
    }

    fn render(&self, inv: &Invocation) -> String {
        let mut line = String::from("ratchet");
        if !self.theirs {
            if let Some(dir) = &inv.data_dir {
                line.push_str(" --data-dir ");
                line.push_str(&quote(&dir.to_string_lossy()));
            }
            if let Some(profile) = &inv.profile {
                line.push_str(" --profile ");
                line.push_str(&quote(profile));
            }
        }
        for word in &self.words {
            line.push(' ');
            line.push_str(word);
        }
        line
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inv = INVOCATION.get().cloned().unwrap_or_default();
        let line = self.render(&inv);
        log_for_tests(&line, &self.argv(&inv), self.theirs || inv.profile.is_none());
        f.write_str(&line)
    }
}

/// Test hook: with `RATCHET_HINT_LOG` set (debug builds), every hint
/// rendered is appended to that file (whether it must name this profile,
/// the line, and the arguments ratchet should receive from it), so the
/// suite can paste each one into a shell and check what the shell makes
/// of it.
fn log_for_tests(line: &str, argv: &[String], unnamed: bool) {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("RATCHET_HINT_LOG") {
        use std::io::Write;
        let argv = serde_json::to_string(argv).unwrap_or_default();
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{}\t{line}\t{argv}", if unnamed { "unnamed" } else { "ours" });
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (line, argv, unnamed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_paste_into_a_shell() {
        let inv = Invocation { profile: Some("bob".into()), data_dir: Some("/tmp/my data".into()) };
        let cmd = ratchet("room join").arg("!abc:example.org");
        assert_eq!(cmd.render(&inv), "ratchet --data-dir '/tmp/my data' --profile bob room join '!abc:example.org'");
        let other = theirs("verify --self").arg("DEV");
        assert_eq!(other.render(&inv), "ratchet verify --self DEV");
        assert_eq!(ratchet("keys import").word("FILE").render(&Invocation::default()), "ratchet keys import FILE");
        assert_eq!(quote("$event:x"), "'$event:x'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("@alice:example.org"), "@alice:example.org");
        assert_eq!(quote(""), "''");
    }
}
