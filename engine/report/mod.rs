//! Reporters: what a person or a machine sees of a run. They consume the executor's events;
//! the CLI picks them.

mod gantt;
mod html;
mod json;
mod markdown;
mod plain;
mod progress;
mod summary;

pub(crate) use gantt::Timeline;
pub(crate) use html::html_report;
pub use json::JsonLines;
pub(crate) use markdown::markdown_report;
pub use plain::PlainLines;
pub use progress::LiveProgress;
pub use summary::summary_text;

/// Anything that shows events.
pub trait Reporter: Send {
    fn handle(&mut self, event: &crate::events::Event);
}

/// The wall-clock time of day in UTC, `HH:MM:SS`, for plain lines.
pub(crate) fn clock() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    stamp.get(11..19).unwrap_or_default().to_string()
}
