//! The sections of a run report as one view model, built once from the run record and its
//! timeline: the facts, the words for the outcome and the rollback, the rows of every table,
//! the chart's rows and what needs a person. The Markdown, HTML and Gantt renderers only lay
//! it out, so they say the same thing; none of them computes a word of its own.

use super::timeline::{Timeline, TimelineEntry};
use crate::events::{RunOutcome, StepStatus};
use crate::format::elapsed;
use crate::secrets::MASK;
use crate::state::{RecordedVar, RollbackState, RunRecord};

/// A declared variable as the report shows it.
#[derive(Debug)]
pub(crate) struct VariableRow<'a> {
    pub name: &'a str,
    /// The value, or `MASK` for a secret, or `(unset)`.
    pub value: String,
    pub source: &'a str,
}

/// One phase of one step in the timeline table.
#[derive(Debug)]
pub(crate) struct PhaseRow<'a> {
    pub step: &'a str,
    /// `forward` or `compensation`.
    pub phase: &'static str,
    /// `+1.2s` from the run's start, `—` if it never started.
    pub start: String,
    /// `0.230s`, `unfinished` when it has no end, `—` if it never started.
    pub duration: String,
    pub status: String,
    /// The count, `—` when none.
    pub attempts: String,
    pub message: &'a str,
    pub went_wrong: bool,
}

/// One bar of the Gantt chart: a phase that started.
#[derive(Debug)]
pub(crate) struct ChartBar {
    /// `forward` or `compensation`.
    pub phase: &'static str,
    /// The journal's status word, for the `data-status` attribute.
    pub status: &'static str,
    pub offset_ms: u64,
    /// None when the journal ends while the phase is still running.
    pub duration_ms: Option<u64>,
    pub went_wrong: bool,
    /// What the bar says on hover.
    pub tooltip: String,
}

/// One row of the Gantt chart: a step with its bars.
#[derive(Debug)]
pub(crate) struct ChartStep<'a> {
    pub id: &'a str,
    /// The id, with the step's name when it has one of its own.
    pub title: String,
    /// The status of a forward phase that never started, written where its bar would be.
    pub not_started: Option<String>,
    pub bars: Vec<ChartBar>,
}

/// A probe's result in the probes table.
#[derive(Debug)]
pub(crate) struct ProbeRow<'a> {
    pub step: &'a str,
    pub phase: &'a str,
    pub name: &'a str,
    pub passed: bool,
    pub samples: u64,
    pub message: &'a str,
}

impl ProbeRow<'_> {
    /// `passed` or `failed`.
    pub(crate) fn result(&self) -> &'static str {
        if self.passed { "passed" } else { "failed" }
    }
}

/// A step output in the outputs table (secret ones are left out).
#[derive(Debug)]
pub(crate) struct OutputRow<'a> {
    pub step: &'a str,
    pub key: &'a str,
    pub value: &'a str,
}

/// Where a step brought in by a module or a `for_each` was written.
#[derive(Debug)]
pub(crate) struct OriginRow<'a> {
    pub step: &'a str,
    /// `written at modules/backup.yaml:10, from `uses: modules/backup.yaml` at main.yaml:13`.
    pub text: String,
}

/// Where a step was written, in the words of a report (and of `show`): `FILE:LINE`, and the
/// module call that brought it in.
pub(crate) fn origin_text(origin: &crate::state::RecordedOrigin) -> String {
    match &origin.call {
        Some(call) => format!("written at {}, from {call}", origin.written_at),
        None => format!("written at {}", origin.written_at),
    }
}

/// Everything a run report shows, in the words it shows it.
#[derive(Debug)]
pub(crate) struct ReportView<'a> {
    pub run_id: &'a str,
    pub runbook: &'a str,
    pub file: &'a str,
    pub digest: &'a str,
    pub started_at: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub pid: u64,
    pub stopping: Option<&'a str>,
    /// The journal's last record was torn and is ignored.
    pub torn_tail: bool,
    /// The outcome's word (`rolled_back`), or `unfinished`.
    pub outcome: String,
    /// The run's own outcome and what later commands did: `succeeded (exit 0) in 11.3s;
    /// rolled back later by ops@box at ...: rolled back (exit 0) in 3.0s`.
    pub outcome_text: String,
    /// The step `--fail-at` failed on purpose, when the run is a rehearsal.
    pub rehearsal: Option<&'a str>,
    /// The runbook's `summary` as rendered at the end of the run.
    pub summary: Option<&'a str>,
    /// Every step's outputs but the secret ones, in the record's order.
    pub outputs: Vec<OutputRow<'a>>,
    pub variables: Vec<VariableRow<'a>>,
    /// The run's start, the zero of every offset, when the journal tells it.
    pub origin: Option<&'a str>,
    /// Milliseconds the chart's axis covers.
    pub span_ms: u64,
    /// The timeline table: phases in the order they started, then those that never did.
    pub phases: Vec<PhaseRow<'a>>,
    /// The chart: one row per step, in the record's order.
    pub chart: Vec<ChartStep<'a>>,
    pub probes: Vec<ProbeRow<'a>>,
    /// One sentence on the rollback.
    pub rollback: String,
    pub needs_a_person: Vec<String>,
    pub notices: &'a [String],
    /// The steps brought in by modules and `for_each`, in the record's order.
    pub origins: Vec<OriginRow<'a>>,
}

impl<'a> ReportView<'a> {
    /// The view of `record`, whose phases `timeline` placed on one axis.
    pub(crate) fn new(record: &'a RunRecord, timeline: &'a Timeline) -> ReportView<'a> {
        ReportView {
            run_id: &record.run_id,
            runbook: &record.runbook,
            file: &record.file,
            digest: &record.digest,
            started_at: &record.started_at,
            user: &record.user,
            host: &record.host,
            pid: u64::from(record.pid),
            stopping: record.stopping.as_deref(),
            torn_tail: record.torn_tail,
            outcome: record.outcome(),
            outcome_text: outcome_text(record),
            rehearsal: record.options.fail_at.as_deref(),
            summary: record.summary(),
            outputs: record
                .steps
                .iter()
                .flat_map(|step| {
                    step.outputs.iter().filter(|(_, value)| value != MASK).map(
                        move |(key, value)| OutputRow {
                            step: &step.id,
                            key,
                            value,
                        },
                    )
                })
                .collect(),
            variables: record
                .vars
                .iter()
                .map(|var| VariableRow {
                    name: &var.name,
                    value: variable_value(var),
                    source: &var.source,
                })
                .collect(),
            origin: timeline.origin.as_deref(),
            span_ms: timeline.span_ms,
            phases: timeline.entries.iter().map(phase_row).collect(),
            chart: grouped_by_host(
                record
                    .steps
                    .iter()
                    .map(|step| chart_step(&step.id, &step.name, timeline))
                    .collect(),
            ),
            probes: record
                .steps
                .iter()
                .flat_map(|step| {
                    step.probes.iter().map(move |probe| ProbeRow {
                        step: &step.id,
                        phase: probe.phase.name(),
                        name: &probe.name,
                        passed: probe.passed,
                        samples: u64::from(probe.samples),
                        message: &probe.message,
                    })
                })
                .chain(record.rollback_verify.iter().map(|probe| ProbeRow {
                    step: "rollback_verify",
                    phase: probe.phase.name(),
                    name: &probe.name,
                    passed: probe.passed,
                    samples: u64::from(probe.samples),
                    message: &probe.message,
                }))
                .collect(),
            rollback: rollback_text(record),
            needs_a_person: needs_a_person(record),
            notices: &record.notices,
            origins: record
                .origins
                .iter()
                .map(|origin| OriginRow {
                    step: &origin.step,
                    text: origin_text(origin),
                })
                .collect(),
        }
    }
}

fn phase_row(entry: &TimelineEntry) -> PhaseRow<'_> {
    let start = entry
        .offset_ms
        .map_or_else(|| "—".to_string(), |offset| format!("+{}", elapsed(offset)));
    let duration = match (entry.offset_ms, entry.duration_ms) {
        (None, _) => "—".to_string(),
        (Some(_), None) => "unfinished".to_string(),
        (Some(_), Some(duration)) => elapsed(duration),
    };
    let attempts = if entry.attempts == 0 {
        "—".to_string()
    } else {
        entry.attempts.to_string()
    };
    PhaseRow {
        step: &entry.step,
        phase: entry.phase,
        start,
        duration,
        status: status_text(entry.status),
        attempts,
        message: entry.message.as_deref().unwrap_or_default(),
        went_wrong: entry.went_wrong(),
    }
}

/// The chart's rows grouped by host (SPEC §12): the steps on the engine's machine first, then
/// each host's instances `id@host`, hosts in the order they first appear; the record's
/// order within each group.
fn grouped_by_host(rows: Vec<ChartStep<'_>>) -> Vec<ChartStep<'_>> {
    let mut hosts: Vec<&str> = Vec::new();
    let mut keyed: Vec<(usize, ChartStep<'_>)> = rows
        .into_iter()
        .map(|row| {
            let key = match crate::events::row_host(row.id) {
                None => 0,
                Some(host) => match hosts.iter().position(|known| *known == host) {
                    Some(position) => position + 1,
                    None => {
                        hosts.push(host);
                        hosts.len()
                    }
                },
            };
            (key, row)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, row)| row).collect()
}

fn chart_step<'a>(id: &'a str, name: &str, timeline: &'a Timeline) -> ChartStep<'a> {
    let title = if name == id {
        id.to_string()
    } else {
        format!("{id} ({name})")
    };
    let not_started = timeline
        .entry(id, "forward")
        .filter(|entry| entry.offset_ms.is_none())
        .map(|entry| status_text(entry.status));
    let bars = ["forward", "compensation"]
        .into_iter()
        .filter_map(|phase| {
            let entry = timeline.entry(id, phase)?;
            let offset_ms = entry.offset_ms?;
            let tooltip = format!(
                "{id} {}: {} at +{} for {}{}",
                entry.phase,
                status_text(entry.status),
                elapsed(offset_ms),
                entry
                    .duration_ms
                    .map_or_else(|| "an unknown time".to_string(), elapsed),
                entry
                    .message
                    .as_ref()
                    .map(|message| format!(" ({message})"))
                    .unwrap_or_default()
            );
            Some(ChartBar {
                phase: entry.phase,
                status: entry.status.name(),
                offset_ms,
                duration_ms: entry.duration_ms,
                went_wrong: entry.went_wrong(),
                tooltip,
            })
        })
        .collect();
    ChartStep {
        id,
        title,
        not_started,
        bars,
    }
}

/// A status for people: the status's own words, `not started` for `pending`.
fn status_text(status: StepStatus) -> String {
    match status {
        StepStatus::Pending => "not started".to_string(),
        other => other.as_str().to_string(),
    }
}

/// The run's own outcome and what later commands did, or why the run has no end.
fn outcome_text(record: &RunRecord) -> String {
    if record.end.is_some() && !record.actions.is_empty() {
        return record.story();
    }
    match &record.end {
        Some(end) => format!(
            "{} (exit {}) after {}",
            end.outcome.words(end.exit_code),
            end.exit_code,
            elapsed(end.duration_ms)
        ),
        None if record.in_progress() => {
            "in progress: its engine is still running it, so this is the state so far".to_string()
        }
        None => "unfinished: the journal has no end record".to_string(),
    }
}

/// A variable's value as the report shows it; a secret is always masked.
fn variable_value(var: &RecordedVar) -> String {
    if var.secret {
        MASK.to_string()
    } else {
        var.value.clone().unwrap_or_else(|| "(unset)".to_string())
    }
}

/// One sentence on the rollback: whether it ran and how it ended, with counts.
fn rollback_text(record: &RunRecord) -> String {
    let text = rollback_state_text(record);
    // Steps marked `irreversible` that ran: a rollback does not undo them, by intent.
    let ran: Vec<String> = record
        .irreversible
        .iter()
        .filter(|id| {
            record.step(id).is_some_and(|step| {
                !matches!(
                    step.forward.status,
                    StepStatus::Pending | StepStatus::Skipped
                )
            })
        })
        .cloned()
        .collect();
    if ran.is_empty() {
        text
    } else {
        format!(
            "{text}; not undone, by intent (irreversible): {}",
            ran.join(", ")
        )
    }
}

fn rollback_state_text(record: &RunRecord) -> String {
    let count = |status: StepStatus| {
        record
            .steps
            .iter()
            .filter_map(|step| step.compensation.as_ref())
            .filter(|phase| phase.status == status)
            .count()
    };
    let counts = format!(
        "{} compensated, {} failed, {} blocked",
        count(StepStatus::Compensated),
        count(StepStatus::CompensationFailed),
        count(StepStatus::Blocked)
    );
    match record.rollback {
        Some(RollbackState::Complete) => {
            format!("complete: every compensation succeeded ({counts})")
        }
        Some(RollbackState::Incomplete) => format!("incomplete: a person must act ({counts})"),
        Some(RollbackState::Started) => {
            format!("started, but the journal ends before it finished ({counts})")
        }
        None => match record.end.as_ref().map(|end| end.outcome) {
            Some(RunOutcome::Succeeded) => "not needed: the run succeeded".to_string(),
            Some(RunOutcome::FailedAfterPivot) => {
                "stopped at the pivot: the steps before it were not compensated".to_string()
            }
            Some(_) => "not run".to_string(),
            None => "none recorded".to_string(),
        },
    }
}

/// What a person must do; for a run without an end, how to finish it.
fn needs_a_person(record: &RunRecord) -> Vec<String> {
    match &record.end {
        Some(end) => end.needs_a_person.clone(),
        None => vec![format!(
            "the engine stopped before the run finished: `runbook resume {}` or `runbook rollback {}`",
            record.run_id, record.run_id
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::state::{RecordedEnd, RecordedPhase, RecordedStep};

    fn step(id: &str, status: StepStatus, compensation: Option<StepStatus>) -> RecordedStep {
        let phase = |status: StepStatus| RecordedPhase {
            status,
            attempts: 1,
            started: Some("2026-01-01T00:00:01.000Z".to_string()),
            finished: Some("2026-01-01T00:00:01.250Z".to_string()),
            duration_ms: 250,
            message: None,
            not_started: false,
            outcome: None,
            finished_seq: None,
        };
        RecordedStep {
            id: id.to_string(),
            name: id.to_string(),
            forward: phase(status),
            outputs: Vec::new(),
            probes: Vec::new(),
            compensation: compensation.map(phase),
            compensation_command: None,
            waiting_for_approval: false,
            approval: None,
        }
    }

    fn record(steps: Vec<RecordedStep>, end: Option<(RunOutcome, i32)>) -> RunRecord {
        let mut run = RunRecord::new(Path::new("run"));
        run.run_id = "20260101_000000-abcde".to_string();
        run.started_at = "2026-01-01T00:00:00Z".to_string();
        run.steps = steps;
        run.vars = vec![
            RecordedVar {
                name: "token".to_string(),
                value: Some("hunter22".to_string()),
                secret: true,
                source: "env".to_string(),
            },
            RecordedVar {
                name: "region".to_string(),
                value: None,
                secret: false,
                source: "default".to_string(),
            },
        ];
        run.end = end.map(|(outcome, exit_code)| RecordedEnd {
            outcome,
            exit_code,
            duration_ms: 2_500,
            needs_a_person: Vec::new(),
            time: "2026-01-01T00:00:02.500Z".to_string(),
            summary: None,
        });
        run
    }

    #[test]
    fn an_ended_run_reads_its_outcome_and_counts_its_rollback() {
        let mut run = record(
            vec![
                step(
                    "backup",
                    StepStatus::Succeeded,
                    Some(StepStatus::Compensated),
                ),
                step(
                    "deploy",
                    StepStatus::Failed,
                    Some(StepStatus::CompensationFailed),
                ),
            ],
            Some((RunOutcome::RollbackIncomplete, 4)),
        );
        run.rollback = Some(RollbackState::Incomplete);
        let timeline = Timeline::of(&run);
        let view = ReportView::new(&run, &timeline);
        assert_eq!(
            view.outcome_text,
            "rollback incomplete (exit 4) after 2.500s"
        );
        assert_eq!(
            view.rollback,
            "incomplete: a person must act (1 compensated, 1 failed, 0 blocked)"
        );
        assert!(view.needs_a_person.is_empty());
        let values: Vec<&str> = view
            .variables
            .iter()
            .map(|var| var.value.as_str())
            .collect();
        assert_eq!(values, [MASK, "(unset)"]);
        let wrong = |index: usize| -> Vec<bool> {
            view.chart[index]
                .bars
                .iter()
                .map(|bar| bar.went_wrong)
                .collect()
        };
        assert_eq!(wrong(0), [false, false]);
        assert_eq!(wrong(1), [true, true]);
        let deploy = &view.chart[1];
        assert!(
            deploy.bars[0]
                .tooltip
                .starts_with("deploy forward: failed at +"),
            "{}",
            deploy.bars[0].tooltip
        );
    }

    #[test]
    fn a_run_without_an_end_says_how_to_finish_it() {
        let mut pending = step("announce", StepStatus::Pending, None);
        pending.forward.started = None;
        pending.forward.finished = None;
        pending.forward.attempts = 0;
        let run = record(
            vec![step("backup", StepStatus::Succeeded, None), pending],
            None,
        );
        let timeline = Timeline::of(&run);
        let view = ReportView::new(&run, &timeline);
        assert_eq!(
            view.outcome_text,
            "unfinished: the journal has no end record"
        );
        assert_eq!(view.rollback, "none recorded");
        assert_eq!(
            view.needs_a_person,
            [
                "the engine stopped before the run finished: `runbook resume 20260101_000000-abcde` or `runbook rollback 20260101_000000-abcde`"
            ]
        );
        let announce = view
            .phases
            .iter()
            .find(|row| row.step == "announce")
            .expect("a row for the step that never started");
        assert_eq!(
            (announce.start.as_str(), announce.duration.as_str()),
            ("—", "—")
        );
        assert_eq!(
            (announce.status.as_str(), announce.attempts.as_str()),
            ("not started", "—")
        );
        assert_eq!(view.chart[1].not_started.as_deref(), Some("not started"));
        assert!(view.chart[1].bars.is_empty());
    }
}
