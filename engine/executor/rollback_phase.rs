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

/// Signals during a rollback that stop it: the first ones are reported and ignored (a
/// rollback is never skipped silently); this one stops the running compensations (SIGTERM,
/// their grace, SIGKILL) and starts no more, so a compensation that never ends cannot hold
/// the engine until SIGKILL orphans it.
const STOP_AFTER_SIGNALS: usize = 3;

/// Compensates `set` in reverse DAG order, independent ones in parallel. Returns whether
/// every compensation succeeded. A journal that cannot be written or a third signal halts it:
/// no further compensation starts, and those left are listed for a person.
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
    let concurrency = match &shared.fleet {
        // A rollout's hosts are undone batch by batch, in the order of `set`.
        Some(fleet) if fleet.sequential_rollback() => 1,
        _ => shared
            .options
            .concurrency
            .unwrap_or(runbook.concurrency)
            .max(1),
    };
    // Compensations have their own cancellation: a third signal during the rollback.
    let (stop_compensations, cancel) = watch::channel(CancelLevel::None);
    let mut signals_received = 0;
    // Why no further compensation starts: the operator insisted, or the journal failed.
    let mut halted: Option<String> = None;
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
            if halted.is_none()
                && let Some(cause) = shared.emitter.journal_failure()
            {
                // What cannot be recorded must not happen: a later `rollback RUN` does it.
                halted = Some(format!("the journal could not be written ({cause})"));
            }
            if halted.is_none()
                && running.len() < concurrency
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
                let journal_failed = shared.emitter.journal_failure().is_some();
                let not_started = report
                    .message
                    .as_deref()
                    .is_some_and(|message| message.starts_with("could not start"));
                if report.succeeded {
                    states[index] = State::Done;
                    summaries[index].compensation = Some(StepStatus::Compensated);
                } else if journal_failed && not_started {
                    // Never tried: it could not be recorded, so it was not started. Not a
                    // failed compensation, and nothing blocks on it: the rollback halts.
                    states[index] = State::Waiting;
                    halted.get_or_insert_with(|| "the journal could not be written".into());
                } else {
                    states[index] = State::Failed;
                    summaries[index].compensation = Some(StepStatus::CompensationFailed);
                    summaries[index].compensation_message = report.message.clone();
                    let id = &runbook.steps[index].id;
                    if signals_received >= STOP_AFTER_SIGNALS {
                        needs_a_person.push(format!("compensation of `{id}` was stopped before it finished (a third signal): check what it did, then undo the rest by hand"));
                    } else {
                        needs_a_person.push(format!("compensation of `{id}` failed: {}; undo it by hand", report.message.unwrap_or_default()));
                    }
                }
            }
            name = signals.next() => {
                signals_received += 1;
                if signals_received < STOP_AFTER_SIGNALS {
                    shared.emitter.emit(Event::Notice { message: format!("{name} received during rollback: compensations keep running so nothing is left half undone (a third signal stops them)") });
                } else if halted.is_none() {
                    shared.emitter.emit(Event::Notice { message: format!("{name} received a third time during rollback: stopping the running compensations; what is left is listed for a person") });
                    halted = Some(format!("the rollback was stopped by a third signal ({name})"));
                    let _ = stop_compensations.send(CancelLevel::Graceful);
                }
            }
        }
    }
    if let Some(why) = &halted {
        for &index in set {
            if states[index] == State::Waiting {
                needs_a_person.push(format!(
                    "compensation of `{}` was not run: {why}",
                    runbook.steps[index].id
                ));
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
