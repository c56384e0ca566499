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
                .and_then(|step| step.split_once('@'))
                .map(|(_, host)| host.to_string());
            if let Some(host) = host {
                object.insert("host".into(), serde_json::Value::String(host));
            }
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
        let _ = stdout.flush();
    }
}
