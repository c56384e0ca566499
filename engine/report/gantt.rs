//! The run as a Gantt chart: when each step and each compensation ran, as offsets from the
//! run's start, and that timeline drawn as a self-contained SVG for the HTML report. Times
//! come from the journal's RFC 3339 stamps; a phase that never started has no bar.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::html::escape;
use super::markdown::status_text;
use crate::events::StepStatus;
use crate::state::{RecordedPhase, RunRecord};

/// One phase of one step on the timeline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TimelineEntry {
    pub step: String,
    pub name: String,
    /// `forward` or `compensation`.
    pub phase: &'static str,
    pub status: StepStatus,
    pub attempts: u64,
    /// Milliseconds from the run's start; none when the phase never started.
    pub offset_ms: Option<u64>,
    /// None when the journal ends while the phase is still running.
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
}

impl TimelineEntry {
    /// The start as an offset from the run's start (`+1.2s`), or `—` if it never started.
    pub(crate) fn start_text(&self) -> String {
        self.offset_ms
            .map_or_else(|| "—".to_string(), |offset| format!("+{}", seconds(offset)))
    }

    /// The duration, `unfinished` when it has no end, `—` if it never started.
    pub(crate) fn duration_text(&self) -> String {
        match (self.offset_ms, self.duration_ms) {
            (None, _) => "—".to_string(),
            (Some(_), None) => "unfinished".to_string(),
            (Some(_), Some(duration)) => seconds(duration),
        }
    }

    /// Attempts, `—` when none.
    pub(crate) fn attempts_text(&self) -> String {
        if self.attempts == 0 {
            "—".to_string()
        } else {
            self.attempts.to_string()
        }
    }

    /// Whether the phase ended badly (the chart outlines it in red).
    pub(crate) fn went_wrong(&self) -> bool {
        matches!(
            self.status,
            StepStatus::Failed
                | StepStatus::Cancelled
                | StepStatus::CompensationFailed
                | StepStatus::Blocked
        )
    }
}

/// Every phase of a run placed on one time axis.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Timeline {
    /// The run's start, RFC 3339 with milliseconds: the zero of every offset.
    pub origin: Option<String>,
    /// Milliseconds from the start to the last thing the journal saw end.
    pub span_ms: u64,
    /// The phases in the order they started, then those that never started.
    pub entries: Vec<TimelineEntry>,
}

fn parse(stamp: Option<&str>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(stamp?).ok()
}

fn since(origin: Option<SystemTime>, time: Option<SystemTime>) -> Option<u64> {
    let elapsed = time?
        .duration_since(origin?)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    Some(u64::try_from(elapsed).unwrap_or(u64::MAX))
}

impl Timeline {
    /// Places every recorded phase of `record` on the run's time axis.
    pub(crate) fn of(record: &RunRecord) -> Timeline {
        let phases: Vec<(&str, &str, &'static str, &RecordedPhase)> = record
            .steps
            .iter()
            .flat_map(|step| {
                let forward = (
                    step.id.as_str(),
                    step.name.as_str(),
                    "forward",
                    &step.forward,
                );
                let compensation = step
                    .compensation
                    .as_ref()
                    .map(|phase| (step.id.as_str(), step.name.as_str(), "compensation", phase));
                std::iter::once(forward).chain(compensation)
            })
            .collect();
        let earliest = phases
            .iter()
            .filter_map(|(_, _, _, phase)| parse(phase.started.as_deref()))
            .min();
        // `started_at` has whole seconds only; the end record gives the start to the
        // millisecond (its time minus the run's duration).
        let from_end = record.end.as_ref().and_then(|end| {
            parse(Some(&end.time))?.checked_sub(Duration::from_millis(end.duration_ms))
        });
        let origin = match (from_end, earliest) {
            (Some(from_end), Some(earliest)) => Some(from_end.min(earliest)),
            (from_end, earliest) => from_end
                .or(earliest)
                .or_else(|| parse(Some(&record.started_at))),
        };
        let mut entries: Vec<TimelineEntry> = phases
            .into_iter()
            .map(|(step, name, kind, phase)| {
                let started = parse(phase.started.as_deref());
                let finished = phase.finished.is_some();
                TimelineEntry {
                    step: step.to_string(),
                    name: name.to_string(),
                    phase: kind,
                    status: phase.status,
                    attempts: u64::from(phase.attempts),
                    offset_ms: since(origin, started),
                    duration_ms: (started.is_some() && finished).then_some(phase.duration_ms),
                    message: phase.message.clone(),
                }
            })
            .collect();
        // Stable: phases that started together keep the record's order.
        entries.sort_by_key(|entry| entry.offset_ms.unwrap_or(u64::MAX));
        let last_end = entries
            .iter()
            .filter_map(|entry| Some(entry.offset_ms? + entry.duration_ms.unwrap_or(0)))
            .max()
            .unwrap_or(0);
        let run_duration = record.end.as_ref().map_or(0, |end| end.duration_ms);
        let mut span_ms = last_end.max(run_duration).max(1);
        // A phase still running when the journal ends is drawn open to the chart's edge:
        // leave it a tenth of the axis so it is seen.
        if entries
            .iter()
            .any(|entry| entry.offset_ms.is_some() && entry.duration_ms.is_none())
        {
            span_ms += span_ms.div_ceil(10);
        }
        Timeline {
            origin: origin.map(|time| humantime::format_rfc3339_millis(time).to_string()),
            span_ms,
            entries,
        }
    }

    /// The entry of `step`'s `phase`, if it was recorded.
    pub(crate) fn entry(&self, step: &str, phase: &str) -> Option<&TimelineEntry> {
        self.entries
            .iter()
            .find(|entry| entry.step == step && entry.phase == phase)
    }
}

/// Milliseconds as seconds for people: `0.004s`, `12.5s`, `2m 03s`, `1h 02m`.
pub(crate) fn seconds(milliseconds: u64) -> String {
    let total = milliseconds / 1000;
    match total {
        0..10 => format!("{:.3}s", milliseconds as f64 / 1000.0),
        10..60 => format!("{:.1}s", milliseconds as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", total / 60, total % 60),
        _ => format!("{}h {:02}m", total / 3600, total % 3600 / 60),
    }
}

const LABEL_WIDTH: f64 = 210.0;
const CHART_WIDTH: f64 = 720.0;
const WIDTH: f64 = LABEL_WIDTH + CHART_WIDTH + 40.0;
const TOP: f64 = 34.0;
const ROW: f64 = 30.0;
const BAR: f64 = 18.0;
const LEGEND: f64 = 44.0;

/// A tick interval that puts at most eight ticks on an axis of `span` milliseconds.
fn tick_interval(span: u64) -> u64 {
    const NICE: [u64; 20] = [
        10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
        300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
    ];
    NICE.into_iter()
        .find(|interval| span / interval <= 8)
        .unwrap_or_else(|| span.div_ceil(8 * 3_600_000) * 3_600_000)
}

fn tick_label(milliseconds: u64, interval: u64) -> String {
    let value = milliseconds as f64 / 1000.0;
    match interval {
        0..100 => format!("{value:.2}s"),
        100..1000 => format!("{value:.1}s"),
        _ => format!("{value:.0}s"),
    }
}

/// Shortens a row label that would run into the chart.
fn label(text: &str) -> String {
    const MOST: usize = 26;
    if text.chars().count() <= MOST {
        text.to_string()
    } else {
        let kept: String = text.chars().take(MOST - 1).collect();
        format!("{kept}…")
    }
}

/// The SVG Gantt chart of `record`: one row per step, a bar for its forward run and one in a
/// second colour for its compensation, seconds from the run start on the axis, and a legend.
pub(crate) fn gantt_svg(record: &RunRecord, timeline: &Timeline) -> String {
    let rows = record.steps.len().max(1);
    let chart_bottom = TOP + rows as f64 * ROW;
    let height = chart_bottom + LEGEND;
    let span = timeline.span_ms as f64;
    let x_of = |milliseconds: u64| LABEL_WIDTH + milliseconds as f64 / span * CHART_WIDTH;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg class="gantt" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="system-ui, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        "<title>timeline of run {}: forward steps and compensations</title>",
        escape(&record.run_id)
    );
    for index in 0..rows {
        if index % 2 == 1 {
            let _ = writeln!(
                svg,
                r#"<rect class="row" x="0" y="{}" width="{WIDTH}" height="{ROW}"/>"#,
                TOP + index as f64 * ROW
            );
        }
    }
    let interval = tick_interval(timeline.span_ms);
    let mut tick = 0;
    while tick <= timeline.span_ms {
        let x = x_of(tick);
        let _ = writeln!(
            svg,
            r#"<line class="grid" x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{chart_bottom}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            TOP - 6.0,
            TOP - 12.0,
            tick_label(tick, interval)
        );
        tick += interval;
    }
    if record.steps.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{LABEL_WIDTH}" y="{}">no step started</text>"#,
            TOP + ROW / 2.0 + 4.0
        );
    }
    for (index, step) in record.steps.iter().enumerate() {
        let top = TOP + index as f64 * ROW;
        let title = if step.name == step.id {
            step.id.clone()
        } else {
            format!("{} ({})", step.id, step.name)
        };
        let _ = writeln!(
            svg,
            r#"<text class="label" x="8" y="{:.1}">{}<title>{}</title></text>"#,
            top + ROW / 2.0 + 4.0,
            escape(&label(&step.id)),
            escape(&title)
        );
        let forward = timeline.entry(&step.id, "forward");
        if let Some(entry) = forward.filter(|entry| entry.offset_ms.is_none()) {
            let _ = writeln!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
                LABEL_WIDTH + 6.0,
                top + ROW / 2.0 + 4.0,
                escape(&status_text(entry.status))
            );
        }
        for phase in ["forward", "compensation"] {
            let Some(entry) = timeline.entry(&step.id, phase) else {
                continue;
            };
            let Some(offset) = entry.offset_ms else {
                continue;
            };
            let x = x_of(offset);
            // A phase still running when the journal ends reaches the edge of the chart.
            let end = entry
                .duration_ms
                .map_or(LABEL_WIDTH + CHART_WIDTH, |duration| {
                    x_of(offset + duration)
                });
            let mut classes = format!("bar {phase}");
            if entry.went_wrong() {
                classes.push_str(" wrong");
            }
            if entry.duration_ms.is_none() {
                classes.push_str(" unfinished");
            }
            let tooltip = format!(
                "{} {phase}: {} at +{} for {}{}",
                step.id,
                status_text(entry.status),
                seconds(offset),
                entry
                    .duration_ms
                    .map_or_else(|| "an unknown time".to_string(), seconds),
                entry
                    .message
                    .as_ref()
                    .map(|message| format!(" ({message})"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                svg,
                r#"<rect class="{classes}" data-step="{}" data-phase="{phase}" data-status="{}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{BAR}" rx="3"><title>{}</title></rect>"#,
                escape(&step.id),
                escape(entry.status.name()),
                top + (ROW - BAR) / 2.0,
                (end - x).max(2.0),
                escape(&tooltip)
            );
        }
    }
    let legend = chart_bottom + 24.0;
    for (index, (class, text)) in [
        ("forward", "forward step"),
        ("compensation", "compensation"),
        ("wrong", "failed, cancelled or blocked"),
        ("unfinished", "still running when the journal ends"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = 8.0 + index as f64 * 230.0;
        let _ = writeln!(
            svg,
            r#"<rect class="key {class}" x="{x}" y="{:.1}" width="22" height="12" rx="3"/><text x="{:.1}" y="{legend:.1}">{text}</text>"#,
            legend - 10.0,
            x + 28.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
