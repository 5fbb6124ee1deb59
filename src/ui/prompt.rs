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
