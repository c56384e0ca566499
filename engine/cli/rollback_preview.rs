//! `runbook rollback RUN --dry-run`: the compensations a rollback of a recorded run would
//! run, in order, rendered as they would run (the run's recorded values and outputs, secrets
//! masked). Nothing runs, nothing is recorded and no lock is taken.

use std::fmt::Write;

use super::session::Session;
use crate::errors::{EXIT_ROLLBACK_INCOMPLETE, EXIT_SUCCESS};
use crate::events::StepOutcome;
use crate::executor::preview_compensation;

/// Prints the compensations of `set` (in rollback order) and `rollback_verify`; exit 0, or 3
/// when a compensation cannot be rendered (the rollback itself would fail there). `session`
/// is the recorded run's, built without a journal; `outcomes` are its steps' recorded ones.
pub(super) fn preview(
    session: Session,
    run_id: &str,
    set: Vec<usize>,
    outcomes: &[StepOutcome],
) -> i32 {
    let shared = &session.shared;
    let mut out = String::new();
    let steps = if set.len() == 1 { "step" } else { "steps" };
    let _ = writeln!(
        out,
        "run {run_id}: `runbook rollback {run_id}` would compensate {} {steps}, in this order (nothing was run):",
        set.len()
    );
    let mut broken = 0;
    for (number, &index) in set.iter().enumerate() {
        let id = &shared.runbook.steps[index].id;
        match preview_compensation(shared, index, &session.context, outcomes[index]) {
            Ok(compensation) => {
                let _ = writeln!(
                    out,
                    "\n{}. undo `{id}` (the step {})",
                    number + 1,
                    compensation.outcome.as_str().replace('_', " ")
                );
                write_block(&mut out, "   $ ", &compensation.script);
                for (name, value) in compensation
                    .env
                    .iter()
                    .filter(|(name, _)| name != "RUNBOOK_STEP_ID")
                {
                    write_block(&mut out, &format!("   env {name}="), value);
                }
                let _ = writeln!(out, "   in {}", compensation.cwd.display());
                for probe in &compensation.verify {
                    let _ = writeln!(out, "   then verify `{probe}`");
                }
            }
            Err(message) => {
                broken += 1;
                let _ = writeln!(out, "\n{}. undo `{id}`: would fail: {message}", number + 1);
            }
        }
    }
    let probes = &shared.runbook.rollback_verify;
    if !probes.is_empty() {
        let names: Vec<String> = probes
            .iter()
            .map(|probe| format!("`{}`", shared.emitter.mask(&probe.name)))
            .collect();
        let _ = writeln!(out, "\nthen rollback_verify: {}", names.join(", "));
    }
    out!("{out}");
    if broken > 0 {
        errln!(
            "error: {broken} of the compensations cannot be rendered: the rollback would be incomplete"
        );
        return EXIT_ROLLBACK_INCOMPLETE;
    }
    EXIT_SUCCESS
}

/// Writes a possibly multi-line value, its first line after `prefix`, the rest indented
/// under it.
fn write_block(out: &mut String, prefix: &str, text: &str) {
    let indent = " ".repeat(prefix.chars().count());
    let mut lines = text.trim_end_matches('\n').lines();
    let _ = writeln!(out, "{prefix}{}", lines.next().unwrap_or_default());
    for line in lines {
        let _ = writeln!(out, "{indent}{line}");
    }
}
