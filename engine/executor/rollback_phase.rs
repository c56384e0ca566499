//! The rollback phase: compensates a set of steps in reverse DAG order, independent ones in
//! parallel, blocking those whose dependents' compensation failed, then runs
//! `rollback_verify`. It records in each step's summary what its compensation did.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::command::CancelLevel;
use super::compensate::{CompensationReport, compensate};
use super::run_result::StepSummary;
use super::shared::{Renderer, RunShared};
use super::signals::Signals;
use super::verify::{VerifyError, verify};
use crate::events::{Event, Phase, StepOutcome, StepStatus};
use crate::plan::Context;
use crate::rollback::must_wait_for;

/// Compensates `set` in reverse DAG order, independent ones in parallel. Returns whether
/// every compensation succeeded. Signals during the rollback are reported and ignored: a
/// rollback is never skipped silently.
pub(crate) async fn run_rollback(
    shared: &Arc<RunShared>,
    set: &[usize],
    context: &Context,
    outcomes: &[StepOutcome],
    summaries: &mut [StepSummary],
    signals: &mut Signals,
    needs_a_person: &mut Vec<String>,
) -> bool {
    let runbook = &shared.runbook;
    shared.emitter.emit(Event::RollbackStarted {
        steps: set
            .iter()
            .map(|&index| runbook.steps[index].id.to_string())
            .collect(),
    });
    let concurrency = shared
        .options
        .concurrency
        .unwrap_or(runbook.concurrency)
        .max(1);
    // Compensations have their own cancellation, which nothing triggers.
    let (_never, cancel) = watch::channel(CancelLevel::None);
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Waiting,
        Running,
        Done,
        Failed,
        Blocked,
    }
    let mut states: Vec<State> = vec![State::Waiting; runbook.steps.len()];
    let mut running: JoinSet<CompensationReport> = JoinSet::new();
    loop {
        for &index in set {
            if states[index] != State::Waiting {
                continue;
            }
            let waits = must_wait_for(&runbook.graph, set, index);
            if waits
                .iter()
                .any(|&other| matches!(states[other], State::Failed | State::Blocked))
            {
                states[index] = State::Blocked;
                let on: Vec<String> = waits
                    .iter()
                    .filter(|&&other| matches!(states[other], State::Failed | State::Blocked))
                    .map(|&other| runbook.steps[other].id.to_string())
                    .collect();
                shared.emitter.emit(Event::CompensationBlocked {
                    step: runbook.steps[index].id.to_string(),
                    waiting_on: on.clone(),
                });
                summaries[index].compensation = Some(StepStatus::Blocked);
                needs_a_person.push(format!("compensation of `{}` was not run: it must come after `{}`, whose compensation failed", runbook.steps[index].id, on.join("`, `")));
                continue;
            }
            if running.len() < concurrency
                && waits.iter().all(|&other| states[other] == State::Done)
            {
                states[index] = State::Running;
                running.spawn(compensate(
                    shared.clone(),
                    index,
                    context.clone(),
                    outcomes[index],
                    cancel.clone(),
                ));
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(Ok(report)) = joined else { continue };
                let index = report.index;
                if report.succeeded {
                    states[index] = State::Done;
                    summaries[index].compensation = Some(StepStatus::Compensated);
                } else {
                    states[index] = State::Failed;
                    summaries[index].compensation = Some(StepStatus::CompensationFailed);
                    summaries[index].compensation_message = report.message.clone();
                    needs_a_person.push(format!("compensation of `{}` failed: {}; undo it by hand", runbook.steps[index].id, report.message.unwrap_or_default()));
                }
            }
            name = signals.next() => {
                shared.emitter.emit(Event::Notice { message: format!("{name} received during rollback: compensations keep running so nothing is left half undone") });
            }
        }
    }
    let complete = set.iter().all(|&index| states[index] == State::Done);
    shared.emitter.emit(Event::RollbackFinished { complete });
    complete
}

/// Runs `rollback_verify` once every compensation succeeded.
pub(crate) async fn verify_rollback(
    shared: &Arc<RunShared>,
    context: &Context,
    needs_a_person: &mut Vec<String>,
) -> bool {
    let probes = &shared.runbook.rollback_verify;
    if probes.is_empty() {
        return true;
    }
    let (_never, mut cancel) = watch::channel(CancelLevel::None);
    let result = match Renderer::new(shared, context) {
        Ok(renderer) => {
            verify(
                probes,
                "rollback_verify",
                Phase::Compensation,
                &renderer,
                &shared.base_env,
                shared,
                &mut cancel,
            )
            .await
        }
        Err(message) => Err(VerifyError {
            message,
            template: true,
        }),
    };
    match result {
        Ok(()) => true,
        Err(VerifyError {
            message,
            template: true,
        }) => {
            needs_a_person.push(format!(
                "`rollback_verify` could not be checked, a problem of the runbook rather than of the system: {message}; check by hand that the system is back"
            ));
            false
        }
        Err(VerifyError { message, .. }) => {
            needs_a_person.push(format!(
                "the rollback did not bring the system back: {message}"
            ));
            false
        }
    }
}
