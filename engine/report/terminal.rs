//! Text from a step on the operator's terminal: control characters (escape sequences that
//! retitle the window or recolour the screen, NUL, BEL, carriage returns, C1 controls) are
//! shown in caret notation (`^[`, `^@`, like `cat -v`) instead of being obeyed. Files, pipes
//! and the step logs keep the bytes as they were.

use std::borrow::Cow;
use std::io::IsTerminal as _;
use std::sync::OnceLock;

/// Whether stdout is a terminal (asked once: it does not change during a run).
pub fn stdout_is_terminal() -> bool {
    static TERMINAL: OnceLock<bool> = OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stdout().is_terminal())
}

/// `text` for stdout: neutralised on a terminal, as it is elsewhere.
pub fn for_stdout(text: &str) -> Cow<'_, str> {
    if stdout_is_terminal() {
        neutralise(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// Control characters but tab and newline in caret notation; other text unchanged.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    let is_control =
        |character: char| character.is_control() && character != '\t' && character != '\n';
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\t' | '\n' => out.push(character),
            // C0 controls: `^@` for NUL ... `^[` for ESC ... `^_`; DEL is `^?`.
            '\0'..='\u{1f}' => {
                out.push('^');
                out.push(char::from(character as u8 + b'@'));
            }
            '\u{7f}' => out.push_str("^?"),
            // C1 controls (`\u{9b}` starts a sequence on some terminals).
            control if control.is_control() => out.push_str(&format!("<U+{:04X}>", control as u32)),
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn escapes_and_controls_are_shown_not_obeyed() {
        assert_eq!(
            neutralise("\u{1b}]0;PWNED\u{7}\u{1b}[31mred\u{1b}[0m nul:\0:end\r"),
            "^[]0;PWNED^G^[[31mred^[[0m nul:^@:end^M"
        );
        assert_eq!(neutralise("del\u{7f} csi\u{9b}"), "del^? csi<U+009B>");
        assert_eq!(neutralise("tab\tand ünïcode stay"), "tab\tand ünïcode stay");
    }
}
