//! Step ids named on the command line (`--approve`, `--assume-succeeded`, `--assume-failed`)
//! are checked against the runbook before anything runs: a typo must not let steps run and
//! then fail a gate, and one step cannot be assumed both succeeded and failed.

use crate::model::{Action, Runbook};
use crate::suggest::suggest;

/// Every problem with the named ids, one message each; empty when all are fine.
pub(super) fn step_id_problems(
    runbook: &Runbook,
    approve: &[String],
    assume_succeeded: &[String],
    assume_failed: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    let gates: Vec<&str> = runbook
        .steps
        .iter()
        .filter(|step| matches!(step.action, Action::Approve(_)))
        .map(|step| step.id.as_str())
        .collect();
    let steps: Vec<&str> = runbook.steps.iter().map(|step| step.id.as_str()).collect();
    for id in approve {
        if gates.contains(&id.as_str()) {
            continue;
        }
        let problem = if steps.contains(&id.as_str()) {
            format!("`--approve {id}`: step `{id}` is not an approval gate")
        } else {
            format!("`--approve {id}`: the runbook has no approval gate `{id}`")
        };
        problems.push(with_hint(problem, id, &gates, "approval gates"));
    }
    for (option, ids) in [
        ("--assume-succeeded", assume_succeeded),
        ("--assume-failed", assume_failed),
    ] {
        for id in ids {
            if !steps.contains(&id.as_str()) {
                let problem = format!("`{option} {id}`: the runbook has no step `{id}`");
                problems.push(with_hint(problem, id, &steps, "steps"));
            }
        }
    }
    for id in assume_succeeded {
        if assume_failed.contains(id) {
            problems.push(format!(
                "step `{id}` is given both `--assume-succeeded` and `--assume-failed`: say which one happened"
            ));
        }
    }
    problems
}

fn with_hint(problem: String, id: &str, candidates: &[&str], kind: &str) -> String {
    match suggest(id, candidates.iter().copied()) {
        Some(best) => format!("{problem}\n  help: did you mean `{best}`?"),
        None if candidates.is_empty() => format!("{problem}\n  help: the runbook has no {kind}"),
        None => format!("{problem}\n  help: {kind}: {}", candidates.join(", ")),
    }
}

/// Prints the problems (exit 2, nothing run) or returns `Ok`.
pub(super) fn check_step_ids(
    runbook: &Runbook,
    approve: &[String],
    assume_succeeded: &[String],
    assume_failed: &[String],
) -> Result<(), i32> {
    let problems = step_id_problems(runbook, approve, assume_succeeded, assume_failed);
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        errln!("error: {problem}");
    }
    errln!("error: nothing was run");
    Err(crate::errors::EXIT_INVALID)
}
