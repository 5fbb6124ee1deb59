//! Session ids as people type them back: human output shows the first 10
//! characters of a session id (`megolm 3bQ1tZ0aKx #4`), and wherever a
//! session id is taken, that prefix names the session when it fits one of
//! the candidates only (issue 14, item 8).

use crate::error::CliError;

/// The shortest prefix taken: below it only the whole id matches.
const MIN_PREFIX: usize = 4;

/// The candidate `given` names: one equal to it, else the only one that
/// begins with it. `Ok(None)` when none does (the caller says what was
/// looked for, and where); a usage error naming them when several do.
pub(crate) fn by_prefix<'a>(
    what: &str,
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Result<Option<String>, CliError> {
    let given = given.trim();
    let mut fits: Vec<&str> = Vec::new();
    for c in candidates {
        if c == given {
            return Ok(Some(c.to_owned()));
        }
        if given.chars().count() >= MIN_PREFIX && c.starts_with(given) && !fits.contains(&c) {
            fits.push(c);
        }
    }
    match fits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).to_owned())),
        several => Err(CliError::usage(format!(
            "`{given}` begins {} {what}s: {}",
            several.len(),
            several.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ))
        .with_hint("give more of the id")),
    }
}

#[cfg(test)]
mod tests {
    use super::by_prefix;

    const IDS: [&str; 3] = ["3bQ1tZ0aKxAAAA", "3bQ1tZ0aKxBBBB", "9zzzzzzzzzCCCC"];

    #[test]
    fn whole_ids_prefixes_and_ambiguity() {
        assert_eq!(by_prefix("session", "9zzzzzzzzzCCCC", IDS).unwrap().as_deref(), Some("9zzzzzzzzzCCCC"));
        assert_eq!(by_prefix("session", "9zzzzzzzzz", IDS).unwrap().as_deref(), Some("9zzzzzzzzzCCCC"));
        assert_eq!(by_prefix("session", " 3bQ1tZ0aKxB ", IDS).unwrap().as_deref(), Some("3bQ1tZ0aKxBBBB"));
        assert_eq!(by_prefix("session", "nope", IDS).unwrap(), None);
        // Too short to be taken as a prefix.
        assert_eq!(by_prefix("session", "9zz", IDS).unwrap(), None);
        let e = by_prefix("session", "3bQ1tZ0aKx", IDS).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Usage);
        assert!(e.message.contains("begins 2 sessions"), "{}", e.message);
        // A whole id that is also a prefix of another is that id.
        assert_eq!(by_prefix("session", "ab12", ["ab12", "ab123"]).unwrap().as_deref(), Some("ab12"));
    }
}
