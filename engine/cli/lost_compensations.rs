//! `rollback RUN` and `resume RUN --allow-changed` with a runbook edited since the run: the
//! journal's recorded compensations are the truth about what ran, so a step that ran with a
//! compensation and was not undone, but has no compensation in the runbook as it is now (the
//! step or its `rollback` was removed), is reported and nothing is done, rather than
//! "nothing to compensate".

use crate::events::StepStatus;
use crate::model::Runbook;
use crate::state::RunRecord;

/// Each step the journal says needs its compensation that `runbook` no longer has, with the
/// compensation as recorded (masked).
pub(super) fn lost_compensations(record: &RunRecord, runbook: &Runbook) -> Vec<(String, String)> {
    record
        .steps
        .iter()
        .filter(|step| {
            matches!(
                step.forward.status,
                StepStatus::Succeeded
                    | StepStatus::Failed
                    | StepStatus::FailedAllowed
                    | StepStatus::FailedTolerated
                    | StepStatus::Cancelled
                    | StepStatus::Running
            )
        })
        .filter(|step| {
            step.compensation
                .as_ref()
                .is_none_or(|phase| phase.status != StepStatus::Compensated)
        })
        .filter_map(|step| {
            let command = step.compensation_command.clone()?;
            let still_there = runbook
                .steps
                .iter()
                .any(|current| current.id.as_str() == step.id && current.rollback.is_some());
            (!still_there).then(|| (step.id.clone(), command))
        })
        .collect()
}

/// The refusal naming the lost compensations, or `None` when there are none.
pub(super) fn refusal(record: &RunRecord, runbook: &Runbook) -> Option<String> {
    let lost = lost_compensations(record, runbook);
    if lost.is_empty() {
        return None;
    }
    let listed: Vec<String> = lost
        .iter()
        .map(|(id, command)| {
            let first_line = command.lines().next().unwrap_or_default();
            format!("  - `{id}`: {first_line}")
        })
        .collect();
    Some(format!(
        "run {} recorded compensations that the runbook `{}` no longer has: nothing was done\n{}\n  help: put those steps (or their `rollback`) back in the runbook, or undo them by hand",
        record.run_id,
        record.file,
        listed.join("\n")
    ))
}
