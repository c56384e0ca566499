//! The end-of-run summary: a table of steps (status, attempts, duration), the failed step's
//! last output lines and message, and what needs a person.

use std::fmt::Write;

use crate::events::StepStatus;
use crate::executor::RunResult;
use crate::format::tenths;

/// Renders the summary of a finished run; `rehearsal` names the step `--fail-at` failed.
pub fn summary_text(result: &RunResult, run_id: &str, rehearsal: Option<&str>) -> String {
    let mut out = String::new();
    let width = result
        .steps
        .iter()
        .map(|step| step.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:width$}  {:<20} {:>8} {:>10}  rollback",
        "step", "status", "attempts", "duration"
    );
    for step in &result.steps {
        let compensation = step.compensation.map(StepStatus::as_str).unwrap_or("");
        let duration = if step.attempts == 0 {
            String::new()
        } else {
            tenths(step.duration)
        };
        let attempts = if step.attempts == 0 {
            String::new()
        } else {
            step.attempts.to_string()
        };
        let status = if step.status == StepStatus::Pending {
            "not started"
        } else {
            step.status.as_str()
        };
        let _ = writeln!(
            out,
            "{:width$}  {:<20} {:>8} {:>10}  {compensation}",
            step.id, status, attempts, duration
        );
    }
    for step in result.steps.iter().filter(|step| {
        matches!(
            step.status,
            StepStatus::Failed | StepStatus::FailedAllowed | StepStatus::FailedTolerated
        )
    }) {
        let mut message = step.message.as_deref().unwrap_or("").lines();
        let _ = writeln!(
            out,
            "\n{} `{}`: {}",
            step.status.as_str(),
            step.id,
            message.next().unwrap_or_default()
        );
        // A multi-line message (a probe's output) stays under its step, never flush left.
        for line in message {
            let _ = writeln!(out, "  {line}");
        }
        if !step.tail.is_empty() {
            let _ = writeln!(out, "  last {} lines of output:", step.tail.len());
            for line in &step.tail {
                let _ = writeln!(out, "  | {line}");
            }
        }
    }
    if !result.needs_a_person.is_empty() {
        let _ = writeln!(out, "\nneeds a person:");
        for line in &result.needs_a_person {
            let _ = writeln!(out, "  - {line}");
        }
    }
    if let Some(summary) = &result.summary {
        let mut lines = summary.lines();
        let _ = writeln!(out, "\nsummary: {}", lines.next().unwrap_or_default());
        for line in lines {
            let _ = writeln!(out, "         {line}");
        }
    }
    let _ = writeln!(out, "\n{}", final_line(result, run_id, rehearsal));
    out
}

/// `run ID: failed; rolled back (exit 1)`, naming a rehearsal: the last line of every run.
pub fn final_line(result: &RunResult, run_id: &str, rehearsal: Option<&str>) -> String {
    let rehearsal = rehearsal
        .map(|step| format!(", a rehearsal of a failure at `{step}`"))
        .unwrap_or_default();
    format!(
        "run {run_id}{rehearsal}: {} (exit {})",
        result.outcome.words(result.exit_code),
        result.exit_code
    )
}
