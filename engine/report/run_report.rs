//! The report of a recorded run (`runbook report`): its view is built once from the run
//! record and its timeline, then laid out by one renderer; the HTML page also gets the Gantt
//! chart. The renderers know the view, never each other.

use super::timeline::Timeline;
use super::view::ReportView;
use super::{gantt, html, markdown};
use crate::state::RunRecord;

/// The Markdown report of `record`, whose phases `timeline` placed on one axis.
pub(crate) fn markdown_report(record: &RunRecord, timeline: &Timeline) -> String {
    markdown::render(&ReportView::new(record, timeline))
}

/// The self-contained HTML report of `record`, with its Gantt chart inline.
pub(crate) fn html_report(record: &RunRecord, timeline: &Timeline) -> String {
    let view = ReportView::new(record, timeline);
    html::render(&view, &gantt::gantt_svg(&view))
}
