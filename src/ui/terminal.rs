//! Text from the network, made inert for a terminal: a message body, a room
//! name or a display name can hold escape sequences that move the cursor,
//! recolour or clear the screen, or a bell. In human output every control
//! character is shown as an escape (`\x1b`, `\u{85}`…) instead of being sent
//! to the terminal; line breaks stay readable, as continuation lines
//! indented under the first, so a multi-line body cannot pass for another
//! message. JSON output keeps the exact text.

/// `text` with every control character escaped (line breaks included:
/// for one-line fields such as names).
pub(crate) fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_inert(&mut out, c);
    }
    out
}

/// A whole human line (or lines) on its way to the terminal: every control
/// character escaped except line breaks. The last line of defence, applied
/// by `Output` to everything it writes, so that no record, warning or
/// error (whose fields may come from the network: a room id from a
/// to-device event, a server's error text) can drive the terminal; one-line
/// fields are escaped with [`inert`] where they are formatted, so that a
/// line break in one cannot pass for another line either.
pub(crate) fn inert_text(text: &str) -> String {
    inert_lines(text, "")
}

/// `text` with control characters escaped, each line break kept and
/// followed by `indent`, so continuation lines stay under their message.
pub(crate) fn inert_lines(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                out.push('\n');
                out.push_str(indent);
            }
            c => push_inert(&mut out, c),
        }
    }
    out
}

fn push_inert(out: &mut String, c: char) {
    // C0 controls, DEL, C1 controls; the bidirectional overrides and marks,
    // which reorder what follows them on screen; and the invisible format
    // characters (zero-width space and joiners' kin, word joiner, BOM, soft
    // hyphen), which make two different strings look the same. The
    // zero-width joiner stays: emoji are built with it.
    let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}');
    let invisible = matches!(
        c,
        '\u{200b}' | '\u{200c}' | '\u{2028}' | '\u{2029}' | '\u{2060}'
            ..='\u{2064}' | '\u{feff}' | '\u{180e}' | '\u{ad}'
    );
    if c.is_control() || bidi || invisible {
        match c as u32 {
            n @ 0..=0xff => out.push_str(&format!("\\x{n:02x}")),
            n => out.push_str(&format!("\\u{{{n:x}}}")),
        }
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_run() {
        assert_eq!(inert("\x1b[2J\x1b[31mred\x07"), "\\x1b[2J\\x1b[31mred\\x07");
        assert_eq!(inert("tab\there"), "tab\\x09here");
        assert_eq!(inert("\u{85}next\u{202e}"), "\\x85next\\u{202e}");
        assert_eq!(inert("plain ünïcode 🎉"), "plain ünïcode 🎉");
        assert_eq!(inert("a\nb"), "a\\x0ab");
        // Invisible characters that make two names look alike (issue 20);
        // the joiner that builds emoji stays.
        assert_eq!(inert("ad\u{200b}min"), "ad\\u{200b}min");
        assert_eq!(inert("\u{feff}x\u{ad}y\u{2060}"), "\\u{feff}x\\xady\\u{2060}");
        assert_eq!(inert("👩\u{200d}💻"), "👩\u{200d}💻");
    }

    #[test]
    fn line_breaks_become_indented_continuations() {
        assert_eq!(inert_lines("one\ntwo\r\nthree", "    "), "one\n    two\n    three");
        assert_eq!(inert_lines("x\x1b[Ay", "  "), "x\\x1b[Ay");
    }
}
