//! Untrusted text on its way to a terminal or a text report.
//!
//! VM names, uuids, command-line words, reason names from perf text and anything else read
//! from a VM or a file may hold control characters: ESC starts terminal sequences (window
//! title, colours, cursor moves), a newline forges report lines, bidi controls reorder what
//! the reader sees. [`printable`] is the one function every text output passes such strings
//! through; JSON (serde) and CSV (quoting) have their own escaping and keep the raw value.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as is: C0 and C1 controls, DEL, and the Unicode
/// format characters that reorder or hide text (bidi embeddings, overrides and isolates, the
/// directional marks, line and paragraph separators).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every unsafe character (see [`is_unsafe`]) written as a visible escape: `\n`,
/// `\r`, `\t`, `\x1b` for the other C0/C1 controls and DEL, `\u{202e}` for the rest. Borrowed
/// when there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A hostile name and the check that an output shows it safely, for the tests of every
/// output that prints names.
#[cfg(test)]
pub(crate) mod testing {
    /// Sets the window title, rings the bell, then forges a table row.
    pub(crate) const EVIL: &str = "evil\x1b]0;pwned\x07\nFAKE ROW 1 2 3";
    /// What the reader sees instead.
    pub(crate) const SHOWN: &str = "evil\\x1b]0;pwned\\x07\\nFAKE ROW 1 2 3";

    /// No control or bidi character (but the output's own newlines), no forged line, and the
    /// name shown escaped.
    pub(crate) fn assert_clean(what: &str, out: &str) {
        let bad: Vec<char> = out
            .chars()
            .filter(|c| *c != '\n' && super::is_unsafe(*c))
            .collect();
        assert!(bad.is_empty(), "{what}: raw {bad:?} in\n{out}");
        assert!(
            !out.lines().any(|l| l.trim_start().starts_with("FAKE ROW")),
            "{what}: a forged line in\n{out}"
        );
        assert!(
            out.contains(SHOWN),
            "{what}: the name is not shown escaped in\n{out}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_visibly() {
        assert!(matches!(printable("win11 gaming ü"), Cow::Borrowed(_)));
        assert_eq!(
            printable("evil\x1b]0;pwned\x07\nFAKE\tROW\r\u{7f}\u{9b}"),
            "evil\\x1b]0;pwned\\x07\\nFAKE\\tROW\\r\\x7f\\x9b"
        );
        assert_eq!(
            printable("a\u{202e}b\u{2066}c\u{200f}\u{2028}"),
            "a\\u{202e}b\\u{2066}c\\u{200f}\\u{2028}"
        );
        // Nothing unsafe is left, whatever goes in.
        let all: String = (0..0x3000u32).filter_map(char::from_u32).collect();
        assert!(!printable(&all).chars().any(is_unsafe));
    }
}
