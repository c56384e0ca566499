//! The run on one time axis: when each step and each compensation ran, as offsets from the
//! run's start. Times come from the journal's RFC 3339 stamps; a phase that never started has
//! no offset. `report --format json` prints it as is; the reports draw it.

use std::time::{Duration, SystemTime};

use serde::Serialize;

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
    /// Whether the phase ended badly (the chart outlines it in red).
    pub(crate) fn went_wrong(&self) -> bool {
        matches!(
            self.status,
            StepStatus::Failed
                | StepStatus::Cancelled
                | StepStatus::CompensationFailed
                | StepStatus::Blocked
                | StepStatus::Denied
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
