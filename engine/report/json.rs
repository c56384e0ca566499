//! `--log-format json`: one JSON object a line on stdout, each an event with a `time`
//! (RFC 3339, UTC) and a stable `event` name (see `events.rs`).

use std::io::Write;

use super::Reporter;
use crate::events::Event;

/// Writes events as JSON lines.
#[derive(Debug, Default)]
pub struct JsonLines;

impl Reporter for JsonLines {
    fn handle(&mut self, event: &Event) {
        let Ok(mut value) = serde_json::to_value(event) else {
            return;
        };
        if let Some(object) = value.as_object_mut() {
            let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            object.insert("time".into(), serde_json::Value::String(time));
            // An instance `id@host` (SPEC §12) names its host.
            let host = object
                .get("step")
                .and_then(serde_json::Value::as_str)
                .and_then(crate::events::row_host)
                .map(str::to_string);
            if let Some(host) = host {
                object.insert("host".into(), serde_json::Value::String(host));
            }
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", escape_c1(&value.to_string()));
        let _ = stdout.flush();
    }
}

/// JSON text with the C1 control characters (U+0080 to U+009F, which some terminals read as
/// escape sequences, `U+009B` as CSI) written as `\u00XX`: serde escapes only C0. Still the
/// same JSON value.
pub fn escape_c1(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(is_c1) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for character in json.chars() {
        if is_c1(character) {
            escaped.push_str(&format!("\\u{:04x}", u32::from(character)));
        } else {
            escaped.push(character);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

fn is_c1(character: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&character)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c1_controls_are_escaped_and_the_value_is_unchanged() {
        let value = serde_json::json!({"message": "a\u{9b}31mred é"});
        let text = escape_c1(&value.to_string()).into_owned();
        assert_eq!(text, r#"{"message":"a\u009b31mred é"}"#);
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, value);
    }
}
