//! Interactive input, only when a person is there: stdin and stderr are
//! terminals and `--no-input` is not set. Otherwise callers fail with a hint,
//! so a script never hangs on a prompt.

use std::io::IsTerminal;

use crate::error::CliError;
use crate::profile::session::Secret;

pub(crate) fn can_prompt(no_input: bool) -> bool {
    !no_input && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Reads a secret from the terminal without echo.
pub(crate) fn secret(prompt: &str) -> Result<Secret, CliError> {
    rpassword::prompt_password(prompt)
        .map(Secret::new)
        .map_err(|e| CliError::failed("could not read from the terminal").with_source(e))
}

/// Reads a line from the terminal, shown as it is typed.
pub(crate) fn visible(prompt: &str) -> Result<Secret, CliError> {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::failed("could not read from the terminal").with_source(e))?;
    Ok(Secret::new(line.trim_end_matches(['\n', '\r']).to_owned()))
}

/// Asks a yes/no question on the terminal; only "y" or "yes" is yes.
pub(crate) fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::Write;
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::failed("could not read from the terminal").with_source(e))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// A secret piped in on stdin (`--password-stdin`, `--passphrase-stdin`):
/// its first line, without the line ending. Refused when stdin is a
/// terminal (the user should be prompted instead) or the line is empty.
pub(crate) fn secret_from_stdin(flag: &str, what: &str) -> Result<Secret, CliError> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::usage(format!("{flag} needs the {what} piped in, not typed"))
            .with_hint(format!("drop {flag} to be prompted instead")));
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin.lock().read_line(&mut line).map_err(|e| CliError::failed("could not read stdin").with_source(e))?;
    let secret = line.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(CliError::usage(format!("{flag} read an empty {what}")));
    }
    Ok(Secret::new(secret))
}

/// Where a secret may come from, in order: stdin (when its flag is given),
/// an environment variable, a prompt on the terminal.
pub(crate) struct SecretSources<'a> {
    /// The `--…-stdin` flag was given.
    pub(crate) from_stdin: bool,
    /// Its name, for messages (`--password-stdin`).
    pub(crate) stdin_flag: &'a str,
    /// What it is, for messages (`password`).
    pub(crate) what: &'a str,
    /// The environment variable's value, if set, and its name.
    pub(crate) env: (Option<&'a Secret>, &'a str),
    /// The prompt on a terminal.
    pub(crate) prompt: &'a str,
    pub(crate) no_input: bool,
    /// Show what is typed (a recovery key: 48 characters typed blind are
    /// too many, and it is no password: it was shown on screen once).
    pub(crate) echo: bool,
}

/// Reads a secret from the first source that has it; never from the
/// command line.
pub(crate) fn read_secret(s: SecretSources<'_>) -> Result<Secret, CliError> {
    if s.from_stdin {
        return secret_from_stdin(s.stdin_flag, s.what);
    }
    if let Some(value) = s.env.0 {
        return Ok(value.clone());
    }
    if can_prompt(s.no_input) {
        return if s.echo { visible(s.prompt) } else { secret(s.prompt) };
    }
    Err(CliError::usage(format!("no {} given and no terminal to ask on", s.what))
        .with_hint(format!("pipe it with {}, or set {}", s.stdin_flag, s.env.1)))
}
