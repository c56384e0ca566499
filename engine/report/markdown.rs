//! The deployment summary of a recorded run as Markdown: who ran which runbook where, the
//! variables (secrets masked), a timeline table of every step and compensation, probes, the
//! rollback outcome and what needs a person. The words shared with the HTML report live here
//! too, so both say the same thing.

use std::fmt::Write;

use super::gantt::{Timeline, seconds};
use crate::events::{RunOutcome, StepStatus};
use crate::state::{RecordedVar, RollbackState, RunRecord};

/// What a secret variable shows instead of its value.
pub(crate) const MASK: &str = "••••••";

/// A status for people: the status's own words, `not started` for `pending`.
pub(crate) fn status_text(status: StepStatus) -> String {
    match status {
        StepStatus::Pending => "not started".to_string(),
        other => other.as_str().to_string(),
    }
}

/// `rolled back (exit 1) after 0.69s`, or why the run has no end.
pub(crate) fn outcome_text(record: &RunRecord) -> String {
    match &record.end {
        Some(end) => format!(
            "{} (exit {}) after {}",
            end.outcome.as_str(),
            end.exit_code,
            seconds(end.duration_ms)
        ),
        None => "unfinished: the journal has no end record".to_string(),
    }
}

/// A variable's value as the report shows it; a secret is always masked.
pub(crate) fn variable_value(var: &RecordedVar) -> String {
    if var.secret {
        MASK.to_string()
    } else {
        var.value.clone().unwrap_or_else(|| "(unset)".to_string())
    }
}

/// One sentence on the rollback: whether it ran and how it ended, with counts.
pub(crate) fn rollback_text(record: &RunRecord) -> String {
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
pub(crate) fn needs_a_person(record: &RunRecord) -> Vec<String> {
    match &record.end {
        Some(end) => end.needs_a_person.clone(),
        None => vec![format!(
            "the engine stopped before the run finished: `runbook resume {}` or `runbook rollback {}`",
            record.run_id, record.run_id
        )],
    }
}

/// Escapes text for Markdown: nothing in it may become markup, a link, raw HTML or a new
/// table cell, and it stays on one line.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(character);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            other => out.push(other),
        }
    }
    out
}

/// A code span that holds `value` literally, also inside a table cell.
fn code(value: &str) -> String {
    let value = value.replace(['\n', '\r', '\t'], " ").replace('|', "\\|");
    let longest = value
        .split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if value.starts_with('`') || value.ends_with('`') {
        format!("{fence} {value} {fence}")
    } else {
        format!("{fence}{value}{fence}")
    }
}

/// Renders the Markdown report of `record`.
pub(crate) fn markdown_report(record: &RunRecord, timeline: &Timeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run report: {}\n", text(&record.runbook));
    let _ = writeln!(out, "**{}**\n", text(&outcome_text(record)));
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Run | {} |", code(&record.run_id));
    let _ = writeln!(
        out,
        "| Runbook | {} ({}) |",
        code(&record.runbook),
        code(&record.file)
    );
    let _ = writeln!(out, "| Digest | {} |", code(&record.digest));
    let _ = writeln!(out, "| Started | {} |", text(&record.started_at));
    let _ = writeln!(
        out,
        "| By | {} on {} (pid {}) |",
        code(&record.user),
        code(&record.host),
        record.pid
    );
    if let Some(stopping) = &record.stopping {
        let _ = writeln!(out, "| Stopped because | {} |", text(stopping));
    }
    if record.torn_tail {
        let _ = writeln!(
            out,
            "| Note | the journal's last record was torn (the engine died while writing it) and is ignored |"
        );
    }

    let _ = writeln!(out, "\n## Variables\n");
    if record.vars.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(out, "| Name | Value | Source |\n|---|---|---|");
        for var in &record.vars {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&var.name),
                code(&variable_value(var)),
                text(&var.source)
            );
        }
    }

    let _ = writeln!(out, "\n## Timeline\n");
    if timeline.entries.is_empty() {
        let _ = writeln!(out, "No step started.");
    } else {
        let _ = writeln!(
            out,
            "Offsets are from the run's start{}.\n",
            timeline
                .origin
                .as_ref()
                .map(|origin| format!(" ({origin})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "| Step | Phase | Start | Duration | Status | Attempts | Message |\n|---|---|--:|--:|---|--:|---|"
        );
        for entry in &timeline.entries {
            let start = entry.start_text();
            let duration = entry.duration_text();
            let attempts = entry.attempts_text();
            let _ = writeln!(
                out,
                "| {} | {} | {start} | {duration} | {} | {attempts} | {} |",
                code(&entry.step),
                entry.phase,
                text(&status_text(entry.status)),
                text(entry.message.as_deref().unwrap_or_default())
            );
        }
    }

    let probes: Vec<_> = record
        .steps
        .iter()
        .flat_map(|step| step.probes.iter().map(move |probe| (step, probe)))
        .collect();
    let _ = writeln!(out, "\n## Probes\n");
    if probes.is_empty() {
        let _ = writeln!(out, "None ran.");
    } else {
        let _ = writeln!(
            out,
            "| Step | Phase | Probe | Result | Samples | Message |\n|---|---|---|---|--:|---|"
        );
        for (step, probe) in probes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                code(&step.id),
                text(probe.phase.name()),
                text(&probe.name),
                if probe.passed { "passed" } else { "failed" },
                probe.samples,
                text(&probe.message)
            );
        }
    }

    let _ = writeln!(out, "\n## Rollback\n\n{}", text(&rollback_text(record)));

    let _ = writeln!(out, "\n## Needs a person\n");
    let lines = needs_a_person(record);
    if lines.is_empty() {
        let _ = writeln!(out, "Nothing.");
    }
    for line in lines {
        let _ = writeln!(out, "- {}", text(&line));
    }
    if !record.notices.is_empty() {
        let _ = writeln!(out, "\n## Notices\n");
        for notice in &record.notices {
            let _ = writeln!(out, "- {}", text(notice));
        }
    }
    out
}
