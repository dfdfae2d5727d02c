//! Text that reaches a client, made safe to show: guest output, errors and upstream messages
//! are written by untrusted code, and a client may print them on a terminal or show them to a
//! person who approves the next step.
//!
//! - ANSI escape sequences (CSI, OSC, DCS and the other string sequences, two-byte escapes,
//!   and their one-character C1 forms such as U+009B) are removed: they are formatting, and
//!   on a terminal they move the cursor, rewrite the title, or hide earlier lines.
//! - Every other control character (C0 except newline and tab, DEL, C1 U+0080..U+009F) and
//!   every bidirectional formatting character (U+061C, U+200E, U+200F, U+202A..U+202E,
//!   U+2066..U+2069), which can make text display in another order than it reads
//!   ("Trojan Source"), is replaced by a visible `<U+XXXX>`, so a reader sees that it was there.
//! - A carriage return becomes a newline (`\r\n` one newline): a lone `\r` would let later
//!   text overwrite earlier text on a terminal.
//!
//! Cleaning is idempotent: cleaned text contains nothing that would be changed again.

use serde_json::Value;

/// `s` without escape sequences, with other control and bidi characters made visible.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // A two-byte escape (ESC c, ESC 7, ...): both characters go.
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_hidden(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Control and bidirectional formatting characters that must not reach a reader as is.
fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A CSI sequence after its introducer: parameters and intermediates, then one final
/// character in `@`..`~`.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            break;
        }
    }
}

/// An OSC, DCS, SOS, PM or APC string after its introducer: it ends with BEL, ESC `\` or
/// the one-character ST (U+009C).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' if chars.peek() == Some(&'\\') => {
                chars.next();
                break;
            }
            _ => {}
        }
    }
}

/// [`clean`] every string in `v`, object keys included.
pub fn clean_json(v: &mut Value) {
    match v {
        Value::String(s) if needs_cleaning(s) => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            if map.keys().any(|k| needs_cleaning(k)) {
                let old = std::mem::take(map);
                for (k, mut item) in old {
                    clean_json(&mut item);
                    map.insert(clean(&k), item);
                }
            } else {
                map.values_mut().for_each(clean_json);
            }
        }
        _ => {}
    }
}

fn needs_cleaning(s: &str) -> bool {
    s.chars().any(|c| c != '\n' && c != '\t' && is_hidden(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_removed() {
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m ok"), "red ok");
        assert_eq!(clean("\u{1b}]0;title\u{7}x"), "x");
        assert_eq!(
            clean("\u{1b}]8;;http://a\u{1b}\\link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
        assert_eq!(clean("\u{9b}2Jclear"), "clear");
        assert_eq!(clean("\u{9d}0;t\u{9c}after"), "after");
        assert_eq!(clean("\u{1b}Pq#0\u{1b}\\dcs"), "dcs");
        assert_eq!(clean("a\u{1b}cb"), "ab");
    }

    #[test]
    fn controls_and_bidi_become_visible() {
        assert_eq!(clean("a\u{7}b\u{0}c\u{7f}"), "a<U+0007>b<U+0000>c<U+007F>");
        assert_eq!(clean("\u{85}\u{8f}\u{9c}"), "<U+0085><U+008F><U+009C>");
        assert_eq!(
            clean("if x \u{202e}}\u{2066}{ \u{200f}\u{61c}"),
            "if x <U+202E>}<U+2066>{ <U+200F><U+061C>"
        );
        assert_eq!(clean("keep\ttabs\nand lines"), "keep\ttabs\nand lines");
        assert_eq!(clean("crlf\r\nlone\rcr"), "crlf\nlone\ncr");
        assert_eq!(clean("é ü 中文 🙂"), "é ü 中文 🙂");
    }

    #[test]
    fn cleaning_is_idempotent_and_reaches_every_string() {
        let once = clean("\u{1b}[1mx\u{202e}\u{9b}y\u{8}\r");
        assert_eq!(clean(&once), once);
        let mut v = serde_json::json!({"a\u{202e}": ["\u{7}", {"b": "\u{1b}[2mc"}], "n": 1});
        clean_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a<U+202E>": ["<U+0007>"
            , {"b": "c"}], "n": 1})
        );
    }
}
