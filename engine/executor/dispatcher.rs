//! The dispatcher: the one owner of a run's state. Its loop waits on step completions,
//! signals and the run deadline and hands each to one `handle_*` method, which decides what
//! happens next; it starts ready steps up to the concurrency limit and, once something
//! stops the run, cancels running steps and compensates in reverse DAG order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

use super::command::CancelLevel;
use super::compensate::{CompensationReport, undo_in_order};
use super::hooks::run_hooks;
use super::outcome::{
    AfterForward, Decision, RollbackResult, StepFacts, after_forward, after_rollback,
    after_rollback_only,
};
use super::readiness::{Readiness, lets_dependents_run};
use super::rollback_phase::{run_rollback, verify_rollback};
use super::rollout_gate::GateResult;
use super::rollouts::Rollouts;
use super::run_result::{RunResult, StepSummary};
use super::shared::{Renderer, RunShared};
use super::signals::Signals;
use super::step::{StepReport, run_step};
use crate::events::{CancelReason, DurationMs, Event, Phase, RunOutcome, StepOutcome, StepStatus};
use crate::plan::Context;
use crate::rollback::{RanStep, plan_rollback};

/// The message of the step a rehearsal (`--fail-at`) failed.
pub const REHEARSED_FAILURE: &str =
    "failed on purpose after it succeeded: a rehearsal (`--fail-at`)";

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

/// Runs the whole runbook: forward phase, rollback if needed, hooks; then closes the run's
/// control masters, however it ended (dropped, they are killed).
pub async fn dispatch(
    shared: Arc<RunShared>,
    context: Context,
    start: Start,
) -> std::io::Result<RunResult> {
    let result = dispatch_run(shared.clone(), context, start).await;
    if let Some(fleet) = &shared.fleet {
        fleet.close().await;
    }
    result
}

async fn dispatch_run(
    shared: Arc<RunShared>,
    context: Context,
    start: Start,
) -> std::io::Result<RunResult> {
    let started = Instant::now();
    let mut signals = Signals::install()?;
    let mode = match &start {
        Start::Fresh => "run",
        Start::Resume { .. } => "resume",
        Start::Rollback { .. } => "rollback",
    };
    shared.emitter.emit(Event::RunStarted {
        run_id: shared.info.id.clone(),
        runbook: shared.runbook.name.clone(),
        steps: shared.runbook.steps.len(),
        directory: shared.info.directory.display().to_string(),
        mode: mode.to_string(),
        rehearsal: shared
            .options
            .fail_at
            .map(|index| shared.runbook.steps[index].id.to_string()),
    });
    let mut dispatcher = Dispatcher::new(shared, context);
    match start {
        Start::Fresh => {
            let shared = dispatcher.shared.clone();
            let stopped_by = run_hooks(
                &shared,
                &shared.runbook.hooks.on_start,
                "on_start",
                &dispatcher.context,
                &mut signals,
            )
            .await;
            if let Some(signal) = stopped_by {
                let message = format!("{signal} received during the `on_start` hooks");
                let reason = CancelReason::Signal {
                    signal: signal.to_string(),
                };
                dispatcher.stop(reason, message);
            }
        }
        Start::Resume {
            statuses,
            finished_order,
            outcomes,
            failed,
        } => dispatcher.resume(statuses, finished_order, outcomes, failed),
        Start::Rollback {
            set,
            statuses,
            outcomes,
            requested,
        } => {
            dispatcher.statuses = statuses;
            dispatcher.resumed_outcomes = outcomes;
            return Ok(dispatcher
                .rollback_only(&set, requested, &mut signals, started)
                .await);
        }
    }
    dispatcher.forward(&mut signals).await;
    Ok(dispatcher.finish(&mut signals, started).await)
}

/// The state of one run, owned by the dispatch loop.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    pub(super) shared: Arc<RunShared>,
    /// Outputs and statuses of the steps that finished, for templates.
    pub(super) context: Context,
    concurrency: usize,
    /// The steps each step's templates read, so each task gets only those in its context.
    reads: Vec<Vec<String>>,
    pub(super) statuses: Vec<StepStatus>,
    pub(super) reports: Vec<Option<StepReport>>,
    /// Order in which steps finished (1 = first), 0 while not finished.
    finished_order: Vec<usize>,
    finished: usize,
    /// `RUNBOOK_STEP_OUTCOME` of steps that finished before a resume.
    resumed_outcomes: Vec<StepOutcome>,
    pub(super) stop_reason: Option<CancelReason>,
    pub(super) cancel: watch::Sender<CancelLevel>,
    /// The step each running task runs, so a task that panics is blamed on its own step.
    tasks: HashMap<tokio::task::Id, usize>,
    /// The run's `timeout`, rendered when the forward phase starts.
    run_limit: Option<Duration>,
    /// Each rollout's batch, failure budget and failed hosts (SPEC §12); empty without hosts.
    pub(super) rollouts: Rollouts,
    /// Tolerated hosts' instances to undo, each list in order, not yet started.
    pub(super) to_undo: Vec<Vec<usize>>,
    /// Pending steps whose needs let them run, kept as steps finish.
    readiness: Readiness,
    /// What those compensations did.
    early_compensations: Vec<CompensationReport>,
}

impl Dispatcher {
    pub fn new(shared: Arc<RunShared>, context: Context) -> Dispatcher {
        let runbook = &shared.runbook;
        let count = runbook.steps.len();
        let concurrency = shared
            .options
            .concurrency
            .unwrap_or(runbook.concurrency)
            .max(1);
        let reads = runbook
            .steps
            .iter()
            .map(|step| match &shared.fleet {
                Some(fleet) => fleet.reads(runbook, step.index),
                None => step.reads_steps(),
            })
            .collect();
        let (cancel, _) = watch::channel(CancelLevel::None);
        let statuses = vec![StepStatus::Pending; count];
        Dispatcher {
            concurrency,
            reads,
            readiness: Readiness::new(&runbook.steps, &statuses),
            statuses,
            reports: vec![None; count],
            finished_order: vec![0; count],
            finished: 0,
            resumed_outcomes: vec![StepOutcome::Failed; count],
            stop_reason: None,
            cancel,
            tasks: HashMap::new(),
            run_limit: None,
            rollouts: Rollouts::new(runbook, shared.fleet.as_ref().map(|fleet| &fleet.layout)),
            to_undo: Vec::new(),
            early_compensations: Vec::new(),
            shared,
            context,
        }
    }

    /// Takes over the state of a run whose engine died; `failed` is a step the operator said
    /// failed, which stops the run before anything starts.
    fn resume(
        &mut self,
        statuses: Vec<StepStatus>,
        finished_order: Vec<usize>,
        outcomes: Vec<StepOutcome>,
        failed: Option<usize>,
    ) {
        self.readiness = Readiness::new(&self.shared.runbook.steps, &statuses);
        self.statuses = statuses;
        self.finished = finished_order.iter().copied().max().unwrap_or(0);
        self.finished_order = finished_order;
        self.resumed_outcomes = outcomes;
        if let Some(index) = failed {
            let id = self.shared.runbook.steps[index].id.to_string();
            let message = format!("step `{id}` failed (as the operator said)");
            self.stop(CancelReason::StepFailed { step: id }, message);
        }
    }

    /// The forward phase: starts ready steps and handles every input until no step runs.
    async fn forward(&mut self, signals: &mut Signals) {
        let mut running: JoinSet<StepReport> = JoinSet::new();
        self.run_limit = self.shared.run_timeout(&self.context);
        let deadline = self
            .run_limit
            .map(|limit| tokio::time::Instant::now() + limit);
        let run_deadline = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(run_deadline);
        let mut deadline_passed = false;
        let mut gates: JoinSet<GateResult> = JoinSet::new();
        let mut undoing: JoinSet<Vec<CompensationReport>> = JoinSet::new();
        loop {
            if self.stop_reason.is_none()
                && let Some(message) = self.shared.emitter.journal_failure()
            {
                self.handle_journal_failure(message);
            }
            for set in std::mem::take(&mut self.to_undo) {
                undoing.spawn(undo_in_order(
                    self.shared.clone(),
                    set,
                    self.context.clone(),
                    self.outcomes(),
                ));
            }
            self.start_ready(&mut running);
            if self.stop_reason.is_some() {
                gates.abort_all();
            } else {
                self.advance_rollouts(&mut gates);
            }
            if running.is_empty() && gates.is_empty() && undoing.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = running.join_next_with_id() => self.handle_step(joined),
                Some(joined) = gates.join_next() => {
                    if let Ok(result) = joined {
                        self.handle_gate(result);
                    }
                }
                Some(joined) = undoing.join_next() => {
                    if let Ok(reports) = joined {
                        self.early_compensations.extend(reports);
                    }
                }
                name = signals.next() => self.handle_signal(name),
                () = &mut run_deadline, if !deadline_passed => {
                    deadline_passed = true;
                    self.handle_deadline();
                }
            }
        }
    }

    /// Steps that may start now, in file order, at most `room` of them: pending, with every
    /// need succeeded (or failed, allowed); none once the run is stopping.
    fn ready(&self, room: usize) -> Vec<usize> {
        if self.stop_reason.is_some() {
            return Vec::new();
        }
        self.readiness
            .ready()
            .filter(|&index| {
                self.statuses[index] == StepStatus::Pending && self.rollout_allows(index)
            })
            .take(room)
            .collect()
    }

    /// Skips every pending step that needs a skipped step, unless it says `after_skipped:
    /// run` (SPEC §4): one `if` switches off a whole branch. One pass in topological order
    /// carries the skip to the end of the branch, since a step comes after all its needs.
    fn skip_after_skipped(&mut self) {
        if self.stop_reason.is_some() || !self.readiness.take_new_skip() {
            return;
        }
        let shared = self.shared.clone();
        let steps = &shared.runbook.steps;
        for &index in shared.runbook.graph.topological_order() {
            let step = &steps[index];
            if self.statuses[index] != StepStatus::Pending || step.runs_after_skipped {
                continue;
            }
            let Some(&skipped) = step
                .needs
                .iter()
                .find(|&&need| self.statuses[need] == StepStatus::Skipped)
            else {
                continue;
            };
            let reason = format!("needs `{}`, which was skipped", steps[skipped].id);
            shared.emitter.emit(Event::StepSkipped {
                step: step.id.to_string(),
                reason: reason.clone(),
            });
            let mut report = skipped_report(index);
            report.message = Some(reason);
            self.finish_step(report);
        }
    }

    fn start_ready(&mut self, running: &mut JoinSet<StepReport>) {
        self.skip_after_skipped();
        let room = self.concurrency.saturating_sub(running.len());
        if room == 0 {
            return;
        }
        for index in self.ready(room) {
            self.statuses[index] = StepStatus::Running;
            self.readiness.started(index);
            let task = running.spawn(run_step(
                self.shared.clone(),
                index,
                self.step_context(index),
                self.cancel.subscribe(),
            ));
            self.tasks.insert(task.id(), index);
        }
    }

    /// What the templates of step `index` read: the steps they name and, for an instance on
    /// a host, `host` and its host's instances of those steps.
    fn step_context(&self, index: usize) -> Context {
        let mut context = self.context.with_steps(&self.reads[index]);
        if let Some(fleet) = &self.shared.fleet {
            fleet.instance_context(&self.shared.runbook, index, &mut context);
        }
        context
    }

    /// How each step ended and when, as the rollback rule reads it: an instance whose host
    /// was never reached did nothing to undo, as if it never ran.
    pub(super) fn ran(&self) -> Vec<RanStep> {
        self.statuses
            .iter()
            .zip(&self.finished_order)
            .zip(&self.reports)
            .map(|((&status, &finished_order), report)| RanStep {
                status: if report.as_ref().is_some_and(|report| report.not_started) {
                    StepStatus::Pending
                } else {
                    status
                },
                finished_order,
            })
            .collect()
    }

    /// Stops the run for `reason`: no step starts any more, running ones are cancelled.
    pub(super) fn stop(&mut self, reason: CancelReason, message: String) {
        self.shared.emitter.emit(Event::Stopping {
            reason: reason.clone(),
            message,
        });
        self.stop_reason = Some(reason);
        self.cancel.send_replace(CancelLevel::Graceful);
    }

    /// A step task ended: with its report, or by panicking (an engine bug, which fails the
    /// step it ran and still rolls back).
    fn handle_step(&mut self, joined: Result<(tokio::task::Id, StepReport), JoinError>) {
        let report = match joined {
            Ok((task, report)) => {
                self.tasks.remove(&task);
                report
            }
            Err(error) => {
                let Some(index) = self.tasks.remove(&error.id()) else {
                    return;
                };
                self.shared.emitter.emit(Event::Notice {
                    message: format!(
                        "internal error in the task of step `{}`: {error}",
                        self.shared.runbook.steps[index].id
                    ),
                });
                StepReport {
                    index,
                    status: StepStatus::Failed,
                    attempts: 0,
                    duration: Duration::ZERO,
                    message: Some("internal error".into()),
                    outputs: Vec::new(),
                    tail: Vec::new(),
                    outcome: StepOutcome::Failed,
                    undecided: false,
                    not_started: false,
                }
            }
        };
        self.finish_step(report);
    }

    /// Records how a step ended, and stops the run if it failed or was cancelled.
    pub(super) fn finish_step(&mut self, mut report: StepReport) {
        let shared = self.shared.clone();
        let shared = &shared;
        let index = report.index;
        if shared.options.fail_at == Some(index) && report.status == StepStatus::Succeeded {
            // A rehearsal: what the step did stays done, and the run goes on as if it failed.
            report.status = StepStatus::Failed;
            report.outcome = StepOutcome::Failed;
            report.message = Some(REHEARSED_FAILURE.to_string());
        }
        let step = &shared.runbook.steps[index];
        let mut status = report.status;
        if status == StepStatus::Failed && step.allow_failure && !report.undecided {
            status = StepStatus::FailedAllowed;
        }
        self.finished += 1;
        self.finished_order[index] = self.finished;
        self.statuses[index] = status;
        if status == StepStatus::Failed && self.tolerated(index, &report) {
            status = StepStatus::FailedTolerated;
            self.statuses[index] = status;
        }
        self.readiness
            .finished(&shared.runbook.steps, &self.statuses, index, status);
        self.context
            .set_step(step.id.as_str(), status.name(), &report.outputs);
        if status != StepStatus::Skipped {
            shared.emitter.emit(Event::StepFinished {
                step: step.id.to_string(),
                phase: Phase::Forward,
                status,
                attempts: report.attempts,
                duration: DurationMs(report.duration),
                message: report.message.clone(),
                outputs: report
                    .outputs
                    .iter()
                    .map(|(key, value)| (shared.emitter.mask(key), shared.emitter.mask(value)))
                    .collect(),
                outcome: Some(report.outcome),
            });
            if step.rollback.is_some() {
                record_compensation(shared, index, &self.step_context(index));
            }
        }
        let stops = match status {
            StepStatus::Failed | StepStatus::Cancelled => true,
            StepStatus::Denied | StepStatus::TimedOut => !lets_dependents_run(step, status),
            _ => false,
        };
        if stops && self.stop_reason.is_none() {
            let id = step.id.to_string();
            let message = format!("step `{id}` {}", status.as_str());
            self.stop(CancelReason::StepFailed { step: id }, message);
        }
        self.reports[index] = Some(report);
    }

    /// SIGINT, SIGTERM or SIGHUP: stop and roll back; a second one kills running steps at
    /// once, and their compensation still runs.
    fn handle_signal(&mut self, name: &'static str) {
        if matches!(self.stop_reason, Some(CancelReason::Signal { .. })) {
            self.shared.emitter.emit(Event::Notice {
                message: format!(
                    "{name} again: killing running steps now; their compensation still runs"
                ),
            });
            self.cancel.send_replace(CancelLevel::Immediate);
        } else {
            let reason = CancelReason::Signal {
                signal: name.to_string(),
            };
            self.stop(
                reason,
                format!("{name} received: stopping, then rolling back"),
            );
        }
    }

    /// The run reached its `timeout`.
    fn handle_deadline(&mut self) {
        if self.stop_reason.is_some() {
            return;
        }
        let limit = self
            .run_limit
            .map(|limit| humantime::format_duration(limit).to_string())
            .unwrap_or_default();
        self.stop(
            CancelReason::RunTimeout,
            format!("the run reached its `timeout` of {limit}"),
        );
    }

    /// The journal cannot be written: fail closed, since what is not recorded must not happen.
    fn handle_journal_failure(&mut self, message: String) {
        let text = format!("{message}: no further step starts");
        self.stop(CancelReason::JournalFailed { message }, text);
    }

    fn summaries(&self) -> Vec<StepSummary> {
        self.shared
            .runbook
            .steps
            .iter()
            .map(|step| {
                let report = self.reports[step.index].as_ref();
                StepSummary {
                    id: step.id.to_string(),
                    status: self.statuses[step.index],
                    attempts: report.map_or(0, |report| report.attempts),
                    duration: report.map_or(Duration::ZERO, |report| report.duration),
                    message: report.and_then(|report| report.message.clone()),
                    tail: report.map(|report| report.tail.clone()).unwrap_or_default(),
                    compensation: None,
                    compensation_message: None,
                }
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|mut summary| {
                let early = self.early_compensations.iter().rev().find(|report| {
                    self.shared.runbook.steps[report.index].id.as_str() == summary.id
                });
                if let Some(report) = early {
                    summary.compensation = Some(if report.succeeded {
                        StepStatus::Compensated
                    } else {
                        StepStatus::CompensationFailed
                    });
                    summary.compensation_message = report.message.clone();
                }
                summary
            })
            .collect()
    }

    /// `RUNBOOK_STEP_OUTCOME` of each step's compensation.
    fn outcomes(&self) -> Vec<StepOutcome> {
        self.reports
            .iter()
            .zip(&self.resumed_outcomes)
            .map(|(report, &resumed)| report.as_ref().map_or(resumed, |report| report.outcome))
            .collect()
    }

    /// After the forward phase: rolls back if the run stopped, decides the outcome, runs the
    /// hooks and reports the end.
    async fn finish(mut self, signals: &mut Signals, started: Instant) -> RunResult {
        let shared = self.shared.clone();
        let runbook = &shared.runbook;
        self.journal_not_started();
        if let Some(index) = shared.options.fail_at
            && !matches!(
                self.statuses[index],
                StepStatus::Failed | StepStatus::FailedAllowed
            )
        {
            let how = match self.statuses[index] {
                StepStatus::Pending => "did not start".to_string(),
                status => format!("ended {}", status.as_str()),
            };
            shared.emitter.emit(Event::Notice {
                message: format!(
                    "`--fail-at {}`: the step {how}, so the rehearsed failure did not happen",
                    runbook.steps[index].id
                ),
            });
        }
        let mut summaries = self.summaries();
        let facts: Vec<StepFacts<'_>> = runbook
            .steps
            .iter()
            .map(|step| StepFacts {
                id: step.id.as_str(),
                status: self.statuses[step.index],
                has_rollback: step.rollback.is_some(),
            })
            .collect();
        let stop_reason = self.stop_reason.as_ref();
        let mut needs_a_person: Vec<String> = self
            .early_compensations
            .iter()
            .filter(|report| !report.succeeded)
            .map(|report| {
                format!(
                    "compensation of `{}` (a tolerated host's) failed: {}; undo it by hand",
                    runbook.steps[report.index].id,
                    report.message.as_deref().unwrap_or_default()
                )
            })
            .collect();
        let decision = match after_forward(stop_reason, shared.options.no_rollback, &facts) {
            AfterForward::Finish(decision) => decision,
            AfterForward::RollBack => {
                let mut plan = plan_rollback(runbook, &self.ran());
                if let Some(fleet) = &shared.fleet {
                    fleet.order_rollback(&mut plan.compensate);
                    // A tolerated host's instances were undone already.
                    plan.compensate
                        .retain(|&index| !self.rollouts.compensated(index));
                }
                let complete = run_rollback(
                    &shared,
                    &plan.compensate,
                    &self.context,
                    &self.outcomes(),
                    &mut summaries,
                    signals,
                    &mut needs_a_person,
                )
                .await;
                let verified =
                    complete && verify_rollback(&shared, &self.context, &mut needs_a_person).await;
                let result = RollbackResult {
                    plan: &plan,
                    complete,
                    verified,
                };
                after_rollback(stop_reason, result, &facts)
            }
        };
        let mut decision = decision;
        if self
            .early_compensations
            .iter()
            .any(|report| !report.succeeded)
            && matches!(
                decision.outcome,
                RunOutcome::Succeeded | RunOutcome::RolledBack
            )
        {
            // A tolerated host was not undone: not a success, whatever the others did.
            decision.outcome = RunOutcome::RollbackIncomplete;
            decision.exit_code = crate::errors::EXIT_ROLLBACK_INCOMPLETE;
        }
        self.context.set_run_status(decision.outcome.as_str());
        let (hooks, moment) = if decision.outcome == RunOutcome::Succeeded {
            (&runbook.hooks.on_success, "on_success")
        } else {
            (&runbook.hooks.on_failure, "on_failure")
        };
        let mut stopped_by = run_hooks(&shared, hooks, moment, &self.context, signals).await;
        if stopped_by.is_none() {
            stopped_by = run_hooks(
                &shared,
                &runbook.hooks.always,
                "always",
                &self.context,
                signals,
            )
            .await;
        }
        // A signal while the hooks ran is honoured: the run exits with its code.
        if let Some(signal) = stopped_by {
            decision.exit_code = super::outcome::signal_exit(signal);
        }
        let summary = render_summary(&shared, &self.context);
        finish_run(
            &shared,
            decision,
            needs_a_person,
            summaries,
            self.stop_reason,
            summary,
            started,
        )
    }

    /// Names, once the forward phase is over, the steps the run stopped before they started,
    /// so that the journal (`show`, `resume`) knows every step of the run.
    fn journal_not_started(&self) {
        if self.stop_reason.is_none() {
            return;
        }
        let steps: Vec<String> = self
            .shared
            .runbook
            .steps
            .iter()
            .filter(|step| self.statuses[step.index] == StepStatus::Pending)
            .map(|step| step.id.to_string())
            .collect();
        if steps.is_empty() {
            return;
        }
        self.shared.emitter.emit(Event::StepsNotStarted {
            steps,
            reason: "the run stopped before it started".into(),
        });
    }

    /// `runbook rollback RUN`, or `resume` finishing a rollback: compensates `set`, in
    /// reverse DAG order, then `rollback_verify`. No forward step runs and no hook.
    async fn rollback_only(
        self,
        set: &[usize],
        requested: bool,
        signals: &mut Signals,
        started: Instant,
    ) -> RunResult {
        let shared = &self.shared;
        let mut summaries = self.summaries();
        let mut needs_a_person = Vec::new();
        let mut set = set.to_vec();
        if let Some(fleet) = &shared.fleet {
            fleet.order_rollback(&mut set);
        }
        let complete = run_rollback(
            shared,
            &set,
            &self.context,
            &self.resumed_outcomes,
            &mut summaries,
            signals,
            &mut needs_a_person,
        )
        .await;
        let verified =
            complete && verify_rollback(shared, &self.context, &mut needs_a_person).await;
        let decision = after_rollback_only(requested, complete, verified);
        finish_run(
            shared,
            decision,
            needs_a_person,
            summaries,
            None,
            None,
            started,
        )
    }
}

/// The report of a step skipped before it started.
pub(super) fn skipped_report(index: usize) -> StepReport {
    StepReport {
        index,
        status: StepStatus::Skipped,
        attempts: 0,
        duration: Duration::ZERO,
        message: None,
        outputs: Vec::new(),
        tail: Vec::new(),
        outcome: StepOutcome::Failed,
        undecided: false,
        not_started: false,
    }
}

/// Reports the end of the run (what needs a person masked) and builds its result: the lines
/// the rollback reported, then those of the decision.
fn finish_run(
    shared: &RunShared,
    mut decision: Decision,
    mut needs_a_person: Vec<String>,
    steps: Vec<StepSummary>,
    stop_reason: Option<CancelReason>,
    summary: Option<String>,
    started: Instant,
) -> RunResult {
    needs_a_person.append(&mut decision.needs_a_person);
    // One behaviour whenever the journal failed, in any phase: nothing more was done, and a
    // later `rollback RUN` finishes from what the journal holds; no compensation is blamed.
    let decision = match shared.emitter.journal_failure() {
        Some(cause) => {
            let decision = super::outcome::after_journal_failure(&cause, &shared.info.id);
            needs_a_person = decision.needs_a_person.clone();
            decision
        }
        None => decision,
    };
    let needs_a_person: Vec<String> = needs_a_person
        .iter()
        .map(|line| shared.emitter.mask(line))
        .collect();
    shared.emitter.emit(Event::RunFinished {
        outcome: decision.outcome,
        exit_code: decision.exit_code,
        duration: DurationMs(started.elapsed()),
        needs_a_person: needs_a_person.clone(),
        summary: summary.clone(),
    });
    RunResult {
        outcome: decision.outcome,
        exit_code: decision.exit_code,
        steps,
        needs_a_person,
        stop_reason,
        summary,
    }
}

/// The runbook's `summary`, rendered with everything the run knows (masked); a template that
/// cannot be rendered (it reads an output a skipped step never wrote) is reported, and the
/// run has no summary.
fn render_summary(shared: &RunShared, context: &Context) -> Option<String> {
    let template = shared.runbook.summary.as_ref()?;
    let rendered = Renderer::new(shared, context).and_then(|renderer| renderer.render(template));
    match rendered {
        Ok(text) => Some(shared.emitter.mask(text.trim_end())),
        Err(message) => {
            shared.emitter.emit(Event::Notice {
                message: format!(
                    "{message}: the run has no summary\n  help: `default` gives a value to what may be missing: {{{{default steps.x.outputs.y \"none\"}}}}"
                ),
            });
            None
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::executor::{Emitter, RunOptions};
    use crate::secrets::Masker;
    use crate::source::Source;
    use crate::state::RunInfo;
    use crate::template::TemplateEngine;

    /// `a`, `b` needing `a`, `c` independent, `d` allowed to fail; concurrency 2.
    const RUNBOOK: &str = "version: 1\nname: t\nconcurrency: 2\nsteps:\n  - id: a\n    run: \"true\"\n    rollback: \"true\"\n  - id: b\n    needs: [a]\n    run: \"true\"\n  - id: c\n    run: \"true\"\n  - id: d\n    run: \"true\"\n    allow_failure: true\n";

    /// A dispatcher over `RUNBOOK` whose events land in the returned list, by name.
    fn dispatcher() -> (Dispatcher, Arc<Mutex<Vec<String>>>) {
        dispatcher_with(RunOptions::default())
    }

    /// The same, with these run options.
    fn dispatcher_with(options: RunOptions) -> (Dispatcher, Arc<Mutex<Vec<String>>>) {
        let source = Source::new("t.yaml".into(), "t.yaml".into(), RUNBOOK.into());
        let runbook = crate::validate::validate(&source)
            .runbook
            .expect("a valid runbook");
        let info = RunInfo {
            id: "run".into(),
            started_at: String::new(),
            timestamp: String::new(),
            directory: std::env::temp_dir(),
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let sink = Box::new(move |event: &Event| {
            let value = serde_json::to_value(event).expect("an event serializes");
            let name = value["event"].as_str().unwrap_or_default().to_string();
            seen.lock().expect("not poisoned").push(name);
        });
        let context = Context::for_run(&runbook, &info);
        let shared = Arc::new(RunShared {
            runbook: Arc::new(runbook),
            engine: TemplateEngine::new(),
            emitter: Emitter::new(Masker::new(Vec::new()), sink, None),
            info,
            options,
            base_env: Vec::new(),
            approval_lock: tokio::sync::Mutex::new(()),
            fleet: None,
        });
        (Dispatcher::new(shared, context), events)
    }

    fn report(index: usize, status: StepStatus) -> StepReport {
        StepReport {
            index,
            status,
            attempts: 1,
            duration: Duration::ZERO,
            message: None,
            outputs: Vec::new(),
            tail: Vec::new(),
            outcome: StepOutcome::Failed,
            undecided: false,
            not_started: false,
        }
    }

    fn count(events: &Mutex<Vec<String>>, name: &str) -> usize {
        events
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|event| *event == name)
            .count()
    }

    #[test]
    fn ready_steps_follow_needs_file_order_and_room() {
        let (mut dispatcher, _) = dispatcher();
        assert_eq!(dispatcher.ready(1), vec![0]);
        assert_eq!(dispatcher.ready(10), vec![0, 2, 3]);
        dispatcher.statuses[0] = StepStatus::Running;
        assert_eq!(dispatcher.ready(10), vec![2, 3]);
        dispatcher.finish_step(report(0, StepStatus::Succeeded));
        assert_eq!(dispatcher.ready(10), vec![1, 2, 3]);
        assert_eq!(dispatcher.finished_order[0], 1);
    }

    #[test]
    fn a_failed_step_stops_the_run_once_and_cancels_the_others() {
        let (mut dispatcher, events) = dispatcher();
        dispatcher.statuses = vec![StepStatus::Running; 4];
        dispatcher.finish_step(report(0, StepStatus::Failed));
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::StepFailed { step: "a".into() })
        );
        assert_eq!(*dispatcher.cancel.borrow(), CancelLevel::Graceful);
        assert!(
            dispatcher.ready(10).is_empty(),
            "nothing starts once stopping"
        );
        // The steps cancelled by the stop do not replace its reason.
        dispatcher.finish_step(report(2, StepStatus::Cancelled));
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::StepFailed { step: "a".into() })
        );
        assert_eq!(count(&events, "stopping"), 1);
        assert_eq!(count(&events, "step_finished"), 2);
    }

    #[test]
    fn a_rehearsal_fails_its_step_after_it_succeeded_and_only_that_step() {
        let (mut dispatcher, events) = dispatcher_with(RunOptions {
            fail_at: Some(2),
            ..RunOptions::default()
        });
        dispatcher.finish_step(report(0, StepStatus::Succeeded));
        assert_eq!(dispatcher.statuses[0], StepStatus::Succeeded);
        assert_eq!(dispatcher.stop_reason, None);
        let mut succeeded = report(2, StepStatus::Succeeded);
        succeeded.outcome = StepOutcome::Succeeded;
        dispatcher.finish_step(succeeded);
        assert_eq!(dispatcher.statuses[2], StepStatus::Failed);
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::StepFailed { step: "c".into() })
        );
        let report = dispatcher.reports[2].as_ref().expect("a report");
        assert_eq!(report.outcome, StepOutcome::Failed);
        assert_eq!(report.message.as_deref(), Some(REHEARSED_FAILURE));
        assert_eq!(count(&events, "stopping"), 1);
    }

    #[test]
    fn a_step_allowed_to_fail_does_not_stop_the_run() {
        let (mut dispatcher, events) = dispatcher();
        dispatcher.statuses[3] = StepStatus::Running;
        dispatcher.finish_step(report(3, StepStatus::Failed));
        assert_eq!(dispatcher.statuses[3], StepStatus::FailedAllowed);
        assert_eq!(dispatcher.stop_reason, None);
        assert_eq!(*dispatcher.cancel.borrow(), CancelLevel::None);
        assert_eq!(count(&events, "stopping"), 0);
    }

    #[test]
    fn a_second_signal_kills_running_steps_at_once() {
        let (mut dispatcher, events) = dispatcher();
        dispatcher.finish_step(report(0, StepStatus::Failed));
        // A signal after a failure still decides the exit code (130 for SIGINT).
        dispatcher.handle_signal("SIGINT");
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::Signal {
                signal: "SIGINT".into()
            })
        );
        assert_eq!(*dispatcher.cancel.borrow(), CancelLevel::Graceful);
        dispatcher.handle_signal("SIGTERM");
        assert_eq!(*dispatcher.cancel.borrow(), CancelLevel::Immediate);
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::Signal {
                signal: "SIGINT".into()
            })
        );
        assert_eq!(count(&events, "stopping"), 2);
        assert_eq!(count(&events, "notice"), 1);
    }

    #[test]
    fn the_deadline_stops_a_run_that_is_not_already_stopping() {
        let (mut running, _) = dispatcher();
        running.handle_deadline();
        assert_eq!(running.stop_reason, Some(CancelReason::RunTimeout));
        let (mut dispatcher, events) = dispatcher();
        dispatcher.finish_step(report(0, StepStatus::Failed));
        dispatcher.handle_deadline();
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::StepFailed { step: "a".into() })
        );
        assert_eq!(count(&events, "stopping"), 1);
    }

    #[test]
    fn a_journal_failure_stops_the_run_before_anything_else_starts() {
        let (mut dispatcher, _) = dispatcher();
        dispatcher.handle_journal_failure("disk full".into());
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::JournalFailed {
                message: "disk full".into()
            })
        );
        assert!(dispatcher.ready(10).is_empty());
    }

    #[tokio::test]
    async fn a_panicking_task_fails_its_own_step_not_the_first_running_one() {
        let (mut dispatcher, events) = dispatcher();
        dispatcher.statuses[0] = StepStatus::Running;
        dispatcher.statuses[2] = StepStatus::Running;
        let mut tasks: JoinSet<StepReport> = JoinSet::new();
        let task = tasks.spawn(async { panic!("a bug in the step task") });
        dispatcher.tasks.insert(task.id(), 2);
        let joined = tasks.join_next_with_id().await.expect("one task");
        assert!(joined.is_err());
        dispatcher.handle_step(joined);
        assert_eq!(dispatcher.statuses[2], StepStatus::Failed);
        assert_eq!(dispatcher.statuses[0], StepStatus::Running);
        assert_eq!(
            dispatcher.stop_reason,
            Some(CancelReason::StepFailed { step: "c".into() })
        );
        assert!(dispatcher.tasks.is_empty());
        assert_eq!(count(&events, "notice"), 1);
    }
}
