//! Reporters: what a person or a machine sees of a run. They consume the executor's events;
//! the CLI picks them.

mod escape;
mod gantt;
mod html;
mod json;
mod markdown;
mod plain;
mod progress;
mod run_report;
mod summary;
mod terminal;
mod timeline;
mod view;

pub use json::{JsonLines, escape_c1};
pub use plain::PlainLines;
pub use progress::LiveProgress;
pub(crate) use run_report::{html_report, markdown_report};
pub use summary::{final_line, summary_text};
pub use terminal::{for_stdout, neutralise};
pub(crate) use timeline::Timeline;
pub(crate) use view::origin_text;

/// Anything that shows events.
pub trait Reporter: Send {
    fn handle(&mut self, event: &crate::events::Event);
}

/// The wall-clock time of day in UTC, `HH:MM:SS`, for plain lines.
pub(crate) fn clock() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    stamp.get(11..19).unwrap_or_default().to_string()
}
