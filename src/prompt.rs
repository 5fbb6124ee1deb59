//! Interactive input, only when a person is there: stdin and stderr are
//! terminals and `--no-input` is not set. Otherwise callers fail with a hint,
//! so a script never hangs on a prompt.

use std::io::IsTerminal;

use crate::error::CliError;

pub(crate) fn can_prompt(no_input: bool) -> bool {
    !no_input && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Reads a secret from the terminal without echo.
pub(crate) fn secret(prompt: &str) -> Result<String, CliError> {
    rpassword::prompt_password(prompt).map_err(|e| CliError::failed("could not read from the terminal").with_source(e))
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
