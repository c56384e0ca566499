//! The dispatcher: the one loop that owns a run's state. It starts ready steps up to the
//! concurrency limit, reacts to step completions, signals and the run deadline, and on
//! failure stops starting steps, cancels running ones and compensates in reverse DAG order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::command::CancelLevel;
use super::compensate::{CompensationReport, compensate};
use super::hooks::run_hooks;
use super::shared::{Renderer, RunShared};
use super::step::{StepReport, run_step};
use super::verify::verify;
use crate::errors::{
    EXIT_FAILED, EXIT_FAILED_NOT_ROLLED_BACK, EXIT_ROLLBACK_INCOMPLETE, EXIT_SIGINT, EXIT_SIGTERM,
    EXIT_SUCCESS,
};
use crate::events::{CancelReason, DurationMs, Event, Phase, RunOutcome, StepOutcome, StepStatus};
use crate::plan::Context;
use crate::rollback::{RanStep, must_wait_for, plan_rollback};

/// One step's final state, for the summary.
#[derive(Debug, Clone)]
pub struct StepSummary {
    pub id: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub duration: Duration,
    pub message: Option<String>,
    pub tail: Vec<String>,
    /// What its compensation did, if it ran or was blocked.
    pub compensation: Option<StepStatus>,
    pub compensation_message: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub exit_code: i32,
    pub steps: Vec<StepSummary>,
    pub needs_a_person: Vec<String>,
    pub stop_reason: Option<CancelReason>,
}

/// Signals that cancel a run, as one stream.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// Where a dispatch begins.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new run.
    Fresh,
    /// A run whose engine died (`runbook resume`): steps already done keep their status and
    /// finish order (their outputs are in the context); `failed` goes straight to rollback.
    Resume {
        statuses: Vec<StepStatus>,
        finished_order: Vec<usize>,
        outcomes: Vec<StepOutcome>,
        failed: Option<usize>,
    },
    /// Compensate only `set`: no forward step, no hooks. `requested` is true for `runbook
    /// rollback RUN` (success is exit 0), false when `resume` finishes the rollback of a failed
    /// run (success is exit 1: the run failed and was rolled back).
    Rollback {
        set: Vec<usize>,
        statuses: Vec<StepStatus>,
        outcomes: Vec<StepOutcome>,
        requested: bool,
    },
}

/// Runs the whole runbook: forward phase, rollback if needed, hooks.
pub async fn dispatch(
    shared: Arc<RunShared>,
    mut context: Context,
    start: Start,
) -> std::io::Result<RunResult> {
    let started = Instant::now();
    let mut signals = Signals::install()?;
    let runbook = shared.runbook.clone();
    let count = runbook.steps.len();
    let mode = match &start {
        Start::Fresh => "run",
        Start::Resume { .. } => "resume",
        Start::Rollback { .. } => "rollback",
    };
    shared.emitter.emit(Event::RunStarted {
        run_id: shared.info.id.clone(),
        runbook: runbook.name.clone(),
        steps: count,
        directory: shared.info.directory.display().to_string(),
        mode: mode.to_string(),
    });
    if matches!(start, Start::Rollback { .. }) {
        return rollback_only(&shared, &context, &start, &mut signals, started).await;
    }
    if matches!(start, Start::Fresh) {
        run_hooks(&shared, &runbook.hooks.on_start, "on_start", &context).await;
    }

    let concurrency = shared
        .options
        .concurrency
        .unwrap_or(runbook.concurrency)
        .max(1);
    let (cancel_sender, cancel) = watch::channel(CancelLevel::None);
    let reads: Vec<Vec<String>> = runbook
        .steps
        .iter()
        .map(crate::model::Step::reads_steps)
        .collect();
    let mut statuses = vec![StepStatus::Pending; count];
    let mut reports: Vec<Option<StepReport>> = vec![None; count];
    let mut finished_order = vec![0usize; count];
    let mut resumed_outcomes: Vec<StepOutcome> = vec![StepOutcome::Failed; count];
    let mut stop_reason: Option<CancelReason> = None;
    if let Start::Resume {
        statuses: done,
        finished_order: order,
        outcomes,
        failed,
    } = &start
    {
        statuses.clone_from(done);
        finished_order.clone_from(order);
        resumed_outcomes.clone_from(outcomes);
        if let Some(index) = failed {
            let reason = CancelReason::StepFailed {
                step: runbook.steps[*index].id.to_string(),
            };
            shared.emitter.emit(Event::Stopping {
                reason: reason.clone(),
                message: format!(
                    "step `{}` failed (as the operator said)",
                    runbook.steps[*index].id
                ),
            });
            stop_reason = Some(reason);
        }
    }
    let mut finished = finished_order.iter().copied().max().unwrap_or(0);
    let mut running: JoinSet<StepReport> = JoinSet::new();
    let run_limit = shared.run_timeout(&context);
    let deadline = run_limit.map(|limit| tokio::time::Instant::now() + limit);
    let run_deadline = async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(run_deadline);
    let mut deadline_passed = false;

    loop {
        if let (None, Some(message)) = (&stop_reason, shared.emitter.journal_failure()) {
            // Fail closed: what is not recorded must not happen.
            let reason = CancelReason::JournalFailed {
                message: message.clone(),
            };
            shared.emitter.emit(Event::Stopping {
                reason: reason.clone(),
                message: format!("{message}: no further step starts"),
            });
            stop_reason = Some(reason);
            let _ = cancel_sender.send(CancelLevel::Graceful);
        }
        if stop_reason.is_none() {
            for index in 0..count {
                if running.len() >= concurrency {
                    break;
                }
                let ready = statuses[index] == StepStatus::Pending
                    && runbook.steps[index]
                        .needs
                        .iter()
                        .all(|&need| statuses[need].satisfies_needs());
                if ready {
                    statuses[index] = StepStatus::Running;
                    running.spawn(run_step(
                        shared.clone(),
                        index,
                        context.with_steps(&reads[index]),
                        cancel.clone(),
                    ));
                }
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let report = match joined {
                    Ok(report) => report,
                    Err(error) => {
                        // A panicking step task is an engine bug; still stop and roll back.
                        shared.emitter.emit(Event::Notice { message: format!("internal error in a step task: {error}") });
                        let Some(index) = statuses.iter().position(|status| *status == StepStatus::Running) else { continue };
                        StepReport { index, status: StepStatus::Failed, attempts: 0, duration: Duration::ZERO, message: Some("internal error".into()), outputs: Vec::new(), tail: Vec::new(), outcome: StepOutcome::Failed }
                    }
                };
                let index = report.index;
                let step = &runbook.steps[index];
                let mut status = report.status;
                if status == StepStatus::Failed && step.allow_failure {
                    status = StepStatus::FailedAllowed;
                }
                finished += 1;
                finished_order[index] = finished;
                statuses[index] = status;
                context.set_step(step.id.as_str(), status.as_str(), &report.outputs);
                if status != StepStatus::Skipped {
                    shared.emitter.emit(Event::StepFinished {
                        step: step.id.to_string(),
                        phase: Phase::Forward,
                        status,
                        attempts: report.attempts,
                        duration: DurationMs(report.duration),
                        message: report.message.clone(),
                        outputs: report.outputs.iter().map(|(key, value)| (key.clone(), shared.emitter.mask(value))).collect(),
                        outcome: Some(report.outcome),
                    });
                }
                if status != StepStatus::Skipped && step.rollback.is_some() {
                    record_compensation(&shared, index, &context.with_steps(&reads[index]));
                }
                if matches!(status, StepStatus::Failed | StepStatus::Cancelled) && stop_reason.is_none() {
                    let reason = CancelReason::StepFailed { step: step.id.to_string() };
                    let message = format!("step `{}` {}", step.id, status.as_str());
                    shared.emitter.emit(Event::Stopping { reason: reason.clone(), message });
                    stop_reason = Some(reason);
                    let _ = cancel_sender.send(CancelLevel::Graceful);
                }
                reports[index] = Some(report);
            }
            name = signals.next() => {
                if matches!(stop_reason, Some(CancelReason::Signal { .. })) {
                    shared.emitter.emit(Event::Notice { message: format!("{name} again: killing running steps now; their compensation still runs") });
                    let _ = cancel_sender.send(CancelLevel::Immediate);
                } else {
                    let reason = CancelReason::Signal { signal: name.to_string() };
                    shared.emitter.emit(Event::Stopping { reason: reason.clone(), message: format!("{name} received: stopping, then rolling back") });
                    stop_reason = Some(reason);
                    let _ = cancel_sender.send(CancelLevel::Graceful);
                }
            }
            () = &mut run_deadline, if !deadline_passed => {
                deadline_passed = true;
                if stop_reason.is_none() {
                    let limit = run_limit.map(|limit| humantime::format_duration(limit).to_string()).unwrap_or_default();
                    shared.emitter.emit(Event::Stopping { reason: CancelReason::RunTimeout, message: format!("the run reached its `timeout` of {limit}") });
                    stop_reason = Some(CancelReason::RunTimeout);
                    let _ = cancel_sender.send(CancelLevel::Graceful);
                }
            }
        }
    }

    let mut summaries: Vec<StepSummary> = runbook
        .steps
        .iter()
        .map(|step| {
            let report = reports[step.index].as_ref();
            StepSummary {
                id: step.id.to_string(),
                status: statuses[step.index],
                attempts: report.map_or(0, |report| report.attempts),
                duration: report.map_or(Duration::ZERO, |report| report.duration),
                message: report.and_then(|report| report.message.clone()),
                tail: report.map(|report| report.tail.clone()).unwrap_or_default(),
                compensation: None,
                compensation_message: None,
            }
        })
        .collect();

    let signal_exit = match &stop_reason {
        Some(CancelReason::Signal { signal }) if signal == "SIGINT" => Some(EXIT_SIGINT),
        Some(CancelReason::Signal { signal }) if signal == "SIGTERM" => Some(EXIT_SIGTERM),
        Some(CancelReason::Signal { .. }) => Some(129),
        _ => None,
    };
    let mut needs_a_person = Vec::new();
    let (outcome, exit_code) = if stop_reason.is_none() {
        (RunOutcome::Succeeded, EXIT_SUCCESS)
    } else if let Some(CancelReason::JournalFailed { message }) = &stop_reason {
        needs_a_person.push(format!("the journal could not be written ({message}); nothing was compensated: fix the disk, then undo by hand what ran"));
        for step in runbook
            .steps
            .iter()
            .filter(|step| statuses[step.index] != StepStatus::Pending)
        {
            needs_a_person.push(format!(
                "`{}` ran ({})",
                step.id,
                statuses[step.index].as_str()
            ));
        }
        (RunOutcome::FailedNotRolledBack, EXIT_FAILED_NOT_ROLLED_BACK)
    } else if shared.options.no_rollback {
        for step in runbook
            .steps
            .iter()
            .filter(|step| step.rollback.is_some() && statuses[step.index] != StepStatus::Pending)
        {
            needs_a_person.push(format!(
                "`{}` ran and was not compensated (`--no-rollback`)",
                step.id
            ));
        }
        (
            RunOutcome::FailedNotRolledBack,
            signal_exit.unwrap_or(EXIT_FAILED_NOT_ROLLED_BACK),
        )
    } else {
        let ran: Vec<RanStep> = (0..count)
            .map(|index| RanStep {
                status: statuses[index],
                finished_order: finished_order[index],
            })
            .collect();
        let plan = plan_rollback(&runbook, &ran);
        let outcomes: Vec<StepOutcome> = (0..count)
            .map(|index| {
                reports[index]
                    .as_ref()
                    .map_or(resumed_outcomes[index], |report| report.outcome)
            })
            .collect();
        let complete = run_rollback(
            &shared,
            &plan.compensate,
            &context,
            &outcomes,
            &mut summaries,
            &mut signals,
            &mut needs_a_person,
        )
        .await;
        let verified = complete && verify_rollback(&shared, &context, &mut needs_a_person).await;
        if let Some(pivot) = plan.pivot {
            for &index in &plan.behind_pivot {
                needs_a_person.push(format!(
                    "`{}` finished before pivot `{}` and was not compensated",
                    runbook.steps[index].id, runbook.steps[pivot].id
                ));
            }
            for summary in summaries.iter().filter(|summary| {
                matches!(summary.status, StepStatus::Failed | StepStatus::Cancelled)
            }) {
                needs_a_person.push(format!(
                    "finish or repair `{}` by hand: it failed after pivot `{}`",
                    summary.id, runbook.steps[pivot].id
                ));
            }
            (RunOutcome::FailedAfterPivot, EXIT_FAILED_NOT_ROLLED_BACK)
        } else if !(complete && verified) {
            (RunOutcome::RollbackIncomplete, EXIT_ROLLBACK_INCOMPLETE)
        } else {
            (RunOutcome::RolledBack, signal_exit.unwrap_or(EXIT_FAILED))
        }
    };

    context.set_run_status(outcome.as_str());
    let (hooks, moment) = if outcome == RunOutcome::Succeeded {
        (&runbook.hooks.on_success, "on_success")
    } else {
        (&runbook.hooks.on_failure, "on_failure")
    };
    run_hooks(&shared, hooks, moment, &context).await;
    run_hooks(&shared, &runbook.hooks.always, "always", &context).await;
    Ok(finish_run(
        &shared,
        outcome,
        exit_code,
        summaries,
        &needs_a_person,
        stop_reason,
        started,
    ))
}

/// Compensates `set` in reverse DAG order, independent ones in parallel. Returns whether
/// every compensation succeeded. Signals during the rollback are reported and ignored: a
/// rollback is never skipped silently.
async fn run_rollback(
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
            let waits = must_wait_for(&shared.graph, set, index);
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
async fn verify_rollback(
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
        Err(message) => Err(message),
    };
    match result {
        Ok(()) => true,
        Err(message) => {
            needs_a_person.push(format!(
                "the rollback did not bring the system back: {message}"
            ));
            false
        }
    }
}

/// Reports the end of the run (what needs a person masked) and builds its result.
fn finish_run(
    shared: &RunShared,
    outcome: RunOutcome,
    exit_code: i32,
    steps: Vec<StepSummary>,
    needs_a_person: &[String],
    stop_reason: Option<CancelReason>,
    started: Instant,
) -> RunResult {
    let needs_a_person: Vec<String> = needs_a_person
        .iter()
        .map(|line| shared.emitter.mask(line))
        .collect();
    shared.emitter.emit(Event::RunFinished {
        outcome,
        exit_code,
        duration: DurationMs(started.elapsed()),
        needs_a_person: needs_a_person.clone(),
    });
    RunResult {
        outcome,
        exit_code,
        steps,
        needs_a_person,
        stop_reason,
    }
}

/// Journals the compensation of a step that ran, rendered as it would run now (masked), so
/// `show` and reports can say what a later rollback will do.
fn record_compensation(shared: &RunShared, index: usize, context: &Context) {
    let Some(compensation) = &shared.runbook.steps[index].rollback else {
        return;
    };
    let Ok(renderer) = Renderer::new(shared, context) else {
        return;
    };
    let command = match renderer.render(&compensation.run) {
        Ok(command) => shared.emitter.mask(&command),
        Err(message) => format!("(cannot be rendered yet: {message})"),
    };
    shared.emitter.emit(Event::CompensationRecorded {
        step: shared.runbook.steps[index].id.to_string(),
        command,
    });
}

/// `runbook rollback RUN`: compensates `set` of a finished run, in reverse DAG order, then
/// `rollback_verify`. No forward step runs and no hook.
async fn rollback_only(
    shared: &Arc<RunShared>,
    context: &Context,
    start: &Start,
    signals: &mut Signals,
    started: Instant,
) -> std::io::Result<RunResult> {
    let Start::Rollback {
        set,
        statuses,
        outcomes,
        requested,
    } = start
    else {
        return Err(std::io::Error::other("rollback_only needs Start::Rollback"));
    };
    let requested = *requested;
    let runbook = &shared.runbook;
    let mut summaries: Vec<StepSummary> = runbook
        .steps
        .iter()
        .map(|step| StepSummary {
            id: step.id.to_string(),
            status: statuses[step.index],
            attempts: 0,
            duration: Duration::ZERO,
            message: None,
            tail: Vec::new(),
            compensation: None,
            compensation_message: None,
        })
        .collect();
    let mut needs_a_person = Vec::new();
    let complete = run_rollback(
        shared,
        set,
        context,
        outcomes,
        &mut summaries,
        signals,
        &mut needs_a_person,
    )
    .await;
    let verified = complete && verify_rollback(shared, context, &mut needs_a_person).await;
    let (outcome, exit_code) = if complete && verified {
        (
            RunOutcome::RolledBack,
            if requested { EXIT_SUCCESS } else { EXIT_FAILED },
        )
    } else {
        (RunOutcome::RollbackIncomplete, EXIT_ROLLBACK_INCOMPLETE)
    };
    Ok(finish_run(
        shared,
        outcome,
        exit_code,
        summaries,
        &needs_a_person,
        None,
        started,
    ))
}
