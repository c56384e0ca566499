//! `runbook rollback RUN` and `runbook resume RUN`: rebuild a run's state from its journal
//! and hand it to the same executor. `rollback` compensates what ran (later, or what a run
//! left uncompensated); `resume` continues a run whose engine died, re-running in-doubt
//! steps only when they are idempotent or the operator decided.

use std::path::PathBuf;

use super::args::{GlobalArgs, ResumeArgs, RollbackArgs, SecretVarArgs};
use super::recorded_runbook::{RunbookChoice, recorded_runbook};
use super::rollback_preview::preview;
use super::session::{Session, SessionInput, finish_session, lock_runbook, runtime, start_session};
use crate::errors::{EXIT_INVALID, EXIT_NEEDS_DECISION, EXIT_SUCCESS};
use crate::events::{RunOutcome, StepOutcome, StepStatus};
use crate::executor::{RunOptions, RunRecorder, Start};
use crate::model::Runbook;
use crate::plan::{VarInputs, vars_file_values};
use crate::rollback::{RanStep, plan_rollback};
use crate::state::RunInfo;
use crate::state::{
    JOURNAL_FILE, JournalWriter, LogFiles, Record, RecordedPhase, Resumed, RunMode, RunRecord,
    UnfinishedIndex, find_run, for_each_record, state_directory,
};
use crate::validate::HostInputs;

/// A recorded run with its runbook loaded again.
pub(super) struct Recovered {
    pub record: RunRecord,
    pub directory: PathBuf,
    pub runbook: Runbook,
    /// Where its instances run, when a step has `on` (`runbook` is then the instance runbook).
    pub layout: Option<crate::executor::FleetLayout>,
}

fn recover(run: &str, choice: RunbookChoice, global: &GlobalArgs) -> Result<Recovered, i32> {
    let state = state_directory(global.state_dir.as_deref());
    let fail = |message: String| {
        errln!("error: {message}");
        EXIT_INVALID
    };
    let directory = find_run(&state, run).map_err(fail)?;
    let record = RunRecord::load(&directory)
        .map_err(|error| fail(format!("run `{run}`: {error}: nothing was done")))?;
    let hosts = HostInputs {
        inventories: record
            .options
            .inventories
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    let (source, validation, changed) =
        recorded_runbook(&record, &directory, choice, &hosts).map_err(fail)?;
    let Some(runbook) = validation.runbook else {
        return Err(fail(format!(
            "the runbook `{}` of run {} is no longer valid (`runbook validate {}`): nothing was done",
            source.name(),
            record.run_id,
            source.path().display()
        )));
    };
    let (runbook, layout) = crate::executor::instance_runbook(runbook, &record.options.limit)
        .map_err(|message| {
            fail(format!(
                "run {}: {message}: nothing was done",
                record.run_id
            ))
        })?;
    if changed && let Some(message) = super::lost_compensations::refusal(&record, &runbook) {
        return Err(fail(message));
    }
    Ok(Recovered {
        record,
        directory,
        runbook,
        layout,
    })
}

/// Whether the journal alone shows that a rollback would have nothing left to do: the run
/// was rolled back, or every step that recorded a compensation had it run, and no step is in
/// doubt. Decided before the runbook is read, so an edited file never hides it.
fn nothing_left(record: &RunRecord) -> bool {
    if record
        .end
        .as_ref()
        .is_some_and(|end| end.outcome == RunOutcome::RolledBack)
    {
        return true;
    }
    record.end.is_some()
        && record.steps.iter().all(|step| {
            // A gate's row the engine died in has nothing to undo.
            (step.forward.status != StepStatus::Running || crate::events::is_gate_row(&step.id))
                && (step.compensation_command.is_none()
                    || step
                        .compensation
                        .as_ref()
                        .is_some_and(|phase| phase.status == StepStatus::Compensated))
        })
}

/// Says that run `record` has nothing left to compensate.
fn say_nothing_left(record: &RunRecord) -> i32 {
    let when = record
        .end
        .as_ref()
        .filter(|end| end.outcome == RunOutcome::RolledBack)
        .map(|end| format!(" (rolled back at {})", end.time))
        .unwrap_or_default();
    outln!("run {}: nothing left to compensate{when}", record.run_id);
    EXIT_SUCCESS
}

/// The recorded state of each step of the runbook, in its order.
pub(super) struct Recorded {
    pub statuses: Vec<StepStatus>,
    /// 1 for the first step that finished, by the journal's `seq`; 0 for one that did not.
    pub finished_order: Vec<usize>,
    pub outcomes: Vec<StepOutcome>,
    pub compensated: Vec<bool>,
}

fn recorded(recovered: &Recovered) -> Recorded {
    let runbook = &recovered.runbook;
    let record = &recovered.record;
    let forward = |id: &str| record.step(id).map(|recorded| &recorded.forward);
    let statuses: Vec<StepStatus> = runbook
        .steps
        .iter()
        .map(|step| forward(step.id.as_str()).map_or(StepStatus::Pending, |phase| phase.status))
        .collect();
    let mut finished_order = vec![0; runbook.steps.len()];
    let finished = record
        .finished_in_order()
        .into_iter()
        .filter_map(|recorded| runbook.step(&recorded.id));
    for (order, step) in finished.enumerate() {
        finished_order[step.index] = order + 1;
    }
    let outcomes = runbook
        .steps
        .iter()
        .map(|step| {
            forward(step.id.as_str()).map_or(StepOutcome::Failed, RecordedPhase::forward_outcome)
        })
        .collect();
    let compensated = runbook
        .steps
        .iter()
        .map(|step| {
            record
                .step(step.id.as_str())
                .and_then(|recorded| recorded.compensation.as_ref())
                .is_some_and(|phase| phase.status == StepStatus::Compensated)
        })
        .collect();
    Recorded {
        statuses,
        finished_order,
        outcomes,
        compensated,
    }
}

/// Steps to compensate: what ran and is not compensated yet (in-doubt steps count as failed).
fn compensation_set(recovered: &Recovered, recorded: &Recorded) -> Vec<usize> {
    let ran: Vec<RanStep> = recorded
        .statuses
        .iter()
        .zip(&recorded.finished_order)
        .map(|(&status, &finished_order)| RanStep {
            status: if status == StepStatus::Running {
                StepStatus::Failed
            } else {
                status
            },
            finished_order,
        })
        .collect();
    plan_rollback(&recovered.runbook, &ran)
        .compensate
        .into_iter()
        .filter(|&index| !recorded.compensated[index])
        .collect()
}

/// Reopens the run's journal (cutting a torn tail) and its logs, and records why.
fn reopen_recorder(directory: &std::path::Path) -> Result<RunRecorder, String> {
    let path = directory.join(JOURNAL_FILE);
    let read = for_each_record(&path, |_| {}).map_err(|error| error.to_string())?;
    if let Some(offset) = read.torn_at {
        errln!(
            "note: ignored a torn record at byte {offset} of the journal (the engine died while writing it)"
        );
    }
    let journal = JournalWriter::reopen(&path, &read).map_err(|error| error.to_string())?;
    let logs = LogFiles::new(directory).ok();
    Ok(RunRecorder::new(journal, logs))
}

fn run_info(recovered: &Recovered) -> RunInfo {
    let record = &recovered.record;
    let timestamp = record.options.timestamp.clone();
    RunInfo {
        id: record.run_id.clone(),
        started_at: record.started_at.clone(),
        timestamp,
        directory: recovered.directory.clone(),
    }
}

/// The recorded values of the run's variables; secrets are resolved again from their sources,
/// or taken from `given` (`--var`, `--vars-file`): the only values the journal cannot hold.
/// A value given for a variable the journal recorded, or a secret the run was given on its
/// command line and is not given again, is refused naming it.
fn recorded_inputs(record: &RunRecord, given: &SecretVarArgs) -> Result<VarInputs, String> {
    let mut values: Vec<(String, String)> = record
        .vars
        .iter()
        .filter(|var| !var.secret)
        .filter_map(|var| Some((var.name.clone(), var.value.clone()?)))
        .collect();
    let mut secrets = match &given.vars_file {
        Some(path) => vars_file_values(path).map_err(|error| error.to_string())?,
        None => Vec::new(),
    };
    secrets.extend(given.vars.iter().cloned());
    let run = &record.run_id;
    for (name, value) in secrets {
        match record.vars.iter().find(|var| var.name == name) {
            Some(var) if var.secret => values.push((name, value)),
            Some(_) => {
                return Err(format!(
                    "`--var {name}`: run {run} recorded the value of `{name}` and a rollback or resume uses it: nothing was done\n  help: only secrets, which the journal does not record, are given again"
                ));
            }
            None => {
                return Err(format!(
                    "`--var {name}`: run {run} has no variable `{name}`: nothing was done"
                ));
            }
        }
    }
    for var in record.vars.iter().filter(|var| var.secret) {
        let given_again = values.iter().any(|(name, _)| *name == var.name);
        if !given_again && matches!(var.source.as_str(), "--var" | "--vars-file") {
            return Err(format!(
                "secret `{}` of run {run} was given by `{}` and the journal does not record secrets: nothing was done\n  help: give it again: `--var {}=...` (or `--vars-file FILE`)",
                var.name, var.source, var.name
            ));
        }
    }
    Ok(VarInputs { values, file: None })
}

/// `recorded_inputs`, its refusal printed (exit 2, nothing done).
fn given_inputs(record: &RunRecord, given: &SecretVarArgs) -> Result<VarInputs, i32> {
    recorded_inputs(record, given).map_err(|message| {
        errln!("error: {message}");
        EXIT_INVALID
    })
}

/// Stops process groups of steps that were still running when the engine died, before
/// anything is decided: a step must not run twice at once. A group is killed only if its
/// leader is still the process the journal recorded (same id and start time).
fn stop_survivors(record: &RunRecord) {
    for process in &record.processes {
        let Some(start_time) = process.start_time else {
            continue;
        };
        if crate::process::kill_surviving_group(process.pid, start_time) {
            errln!(
                "note: terminated the surviving process group {} of `{}` ({}), left running when the engine stopped",
                process.pid,
                process.step,
                process.phase.name()
            );
        }
    }
}

/// Builds the session and dispatches `start`; `mode` names the action in the journal.
async fn drive(
    recovered: Recovered,
    mode: RunMode,
    options: RunOptions,
    start: impl FnOnce(&Recorded) -> Start,
    inputs: VarInputs,
    global: &GlobalArgs,
) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    let info = run_info(&recovered);
    let _lock = match lock_runbook(&state, &recovered.runbook, &info, mode.as_str()) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let recorder = match reopen_recorder(&recovered.directory) {
        Ok(recorder) => recorder,
        Err(message) => {
            errln!("error: {message}: nothing was done");
            return EXIT_INVALID;
        }
    };
    stop_survivors(&recovered.record);
    let recorded = recorded(&recovered);
    let start = start(&recorded);
    match recovered_session(recovered, Some(recorder), mode, options, inputs, global) {
        Ok(session) => finish_session(session, start, global).await,
        Err(code) => code,
    }
}

/// The session of a recovered run: its variables resolved again (secrets from their
/// sources), the outputs its steps recorded in the context, its kept secret outputs masked.
/// With a recorder, the journal notes that `mode` continues the run.
pub(super) fn recovered_session(
    recovered: Recovered,
    recorder: Option<RunRecorder>,
    mode: RunMode,
    options: RunOptions,
    inputs: VarInputs,
    global: &GlobalArgs,
) -> Result<Session, i32> {
    let info = run_info(&recovered);
    let (recorded_steps, secret_outputs) = crate::state::restore_secret_outputs(
        &recovered.directory,
        &recovered.runbook,
        recovered.record.steps.clone(),
    );
    let journaled = recorder.is_some();
    let input = SessionInput {
        runbook: recovered.runbook,
        info,
        inputs: &inputs,
        recorder,
        options,
        layout: recovered.layout,
    };
    let mut session = start_session(input, global, |emitter, _| {
        if journaled {
            emitter.record(&Record::Resumed(Resumed::new(mode)))
        } else {
            Ok(())
        }
    })?;
    session.shared.emitter.add_secrets(secret_outputs);
    // Compensations and later steps read the outputs the steps recorded then, not new ones.
    for step in &recorded_steps {
        session
            .context
            .set_step(&step.id, step.forward.status.name(), &step.outputs);
    }
    Ok(session)
}

pub fn rollback(args: &RollbackArgs, global: &GlobalArgs) -> i32 {
    let choice = RunbookChoice {
        use_current: args.use_current,
        allow_changed: args.allow_changed,
    };
    let state = state_directory(global.state_dir.as_deref());
    if let Ok(directory) = find_run(&state, &args.run)
        && let Ok(record) = RunRecord::load(&directory)
        && nothing_left(&record)
    {
        return say_nothing_left(&record);
    }
    let recovered = match recover(&args.run, choice, global) {
        Ok(recovered) => recovered,
        Err(code) => return code,
    };
    let recorded_now = recorded(&recovered);
    let set = compensation_set(&recovered, &recorded_now);
    if set.is_empty() {
        return say_nothing_left(&recovered.record);
    }
    let inputs = match given_inputs(&recovered.record, &args.secrets) {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    let options = RunOptions {
        concurrency: args.jobs.map(|jobs| jobs as usize),
        ..RunOptions::default()
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    if args.dry_run {
        let run_id = recovered.record.run_id.clone();
        let session = match recovered_session(
            recovered,
            None,
            RunMode::Rollback,
            RunOptions::default(),
            inputs,
            global,
        ) {
            Ok(session) => session,
            Err(code) => return code,
        };
        return preview(session, &run_id, set, &recorded_now.outcomes);
    }
    runtime.block_on(drive(
        recovered,
        RunMode::Rollback,
        options,
        |recorded| Start::Rollback {
            set,
            statuses: recorded.statuses.clone(),
            outcomes: recorded.outcomes.clone(),
            requested: true,
        },
        inputs,
        global,
    ))
}

pub fn resume(args: &ResumeArgs, global: &GlobalArgs) -> i32 {
    let choice = RunbookChoice {
        use_current: args.use_current,
        allow_changed: args.allow_changed,
    };
    let recovered = match recover(&args.run, choice, global) {
        Ok(recovered) => recovered,
        Err(code) => return code,
    };
    if let Err(code) = super::step_ids::check_step_ids(
        &recovered.runbook,
        &args.approve,
        &args.assume_succeeded,
        &args.assume_failed,
    ) {
        return code;
    }
    let record = &recovered.record;
    let recorded_now = recorded(&recovered);
    let options = RunOptions {
        concurrency: args.jobs.map(|jobs| jobs as usize),
        approve_all: args.yes,
        approve: args.approve.clone(),
        no_rollback: false,
        // A rehearsal resumed still fails where it was asked to.
        fail_at: record
            .options
            .fail_at
            .as_deref()
            .and_then(|id| recovered.runbook.step(id))
            .map(|step| step.index),
    };
    if args.retry_failed {
        let inputs = match given_inputs(&recovered.record, &args.secrets) {
            Ok(inputs) => inputs,
            Err(code) => return code,
        };
        return retry_failed(recovered, recorded_now, options, inputs, global);
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // A run that ended with compensations left to do, or that died while compensating or
    // after a failure: finish its rollback.
    let rolling_back = record
        .end
        .as_ref()
        .is_some_and(|end| end.outcome == RunOutcome::RollbackIncomplete)
        || (record.end.is_none() && (record.rollback.is_some() || record.stopping.is_some()));
    if let Some(end) = &record.end
        && !rolling_back
    {
        outln!(
            "run {} already finished: {} (exit {}); nothing to resume",
            record.run_id,
            end.outcome.name(),
            end.exit_code
        );
        return EXIT_SUCCESS;
    }
    let inputs = match given_inputs(record, &args.secrets) {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    if rolling_back {
        let set = compensation_set(&recovered, &recorded_now);
        let requested = record.mode == RunMode::Rollback;
        return runtime.block_on(drive(
            recovered,
            RunMode::Resume,
            options,
            |recorded| Start::Rollback {
                set,
                statuses: recorded.statuses.clone(),
                outcomes: recorded.outcomes.clone(),
                // Finishing what `runbook rollback RUN` started succeeds like it (exit 0);
                // finishing a failed run's rollback is a failed, rolled back run (exit 1).
                requested,
            },
            inputs,
            global,
        ));
    }
    let runbook = &recovered.runbook;
    let mut statuses = recorded_now.statuses.clone();
    let mut finished_order = recorded_now.finished_order.clone();
    if record.mode == RunMode::Retry {
        // A `--retry-failed` whose engine died: what it had not run again yet still has its
        // old end (failed, or undone) in the journal, and runs again.
        pend_for_retry(
            runbook,
            &mut statuses,
            &mut finished_order,
            &recorded_now.compensated,
        );
    }
    let mut failed = None;
    let mut undecided = Vec::new();
    for step in &runbook.steps {
        if statuses[step.index] != StepStatus::Running {
            continue;
        }
        let id = step.id.as_str();
        if args.assume_succeeded.iter().any(|named| named == id) {
            statuses[step.index] = StepStatus::Succeeded;
        } else if args.assume_failed.iter().any(|named| named == id) {
            statuses[step.index] = StepStatus::Failed;
            failed = Some(step.index);
        } else if step.idempotent {
            // In doubt, and safe to run again.
            statuses[step.index] = StepStatus::Pending;
        } else {
            undecided.push(id.to_string());
        }
    }
    if !undecided.is_empty() {
        errln!(
            "error: run {} stopped while these steps ran, and they are not idempotent: {}",
            record.run_id,
            undecided
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        errln!(
            "  help: check what they did, then resume with `--assume-succeeded ID` (it finished) or `--assume-failed ID` (roll back)"
        );
        return EXIT_NEEDS_DECISION;
    }
    // A retry resumed stays a retry, so that a second death is resumed the same way.
    let mode = if record.mode == RunMode::Retry {
        RunMode::Retry
    } else {
        RunMode::Resume
    };
    runtime.block_on(drive(
        recovered,
        mode,
        options,
        |recorded| Start::Resume {
            statuses,
            finished_order,
            outcomes: recorded.outcomes.clone(),
            failed,
        },
        inputs,
        global,
    ))
}

/// `resume RUN --retry-failed`: a run that stopped with work left forward (`failed after
/// pivot`, or failed with `--no-rollback`) goes on once a person fixed the cause. The steps
/// that failed or were cancelled, and those whose work the rollback undid, run again, then
/// what follows them; the steps that succeeded (and were not undone) do not.
fn retry_failed(
    recovered: Recovered,
    recorded_now: Recorded,
    mut options: RunOptions,
    inputs: VarInputs,
    global: &GlobalArgs,
) -> i32 {
    let record = &recovered.record;
    let stopped_forward = record.end.as_ref().map(|end| end.outcome);
    if !matches!(
        stopped_forward,
        Some(RunOutcome::FailedAfterPivot | RunOutcome::FailedNotRolledBack)
    ) {
        let now = record.end.as_ref().map_or(
            "unfinished: use `runbook resume RUN` without `--retry-failed`",
            |end| end.outcome.as_str(),
        );
        errln!(
            "error: run {} did not stop with work left forward ({now}): nothing to retry",
            record.run_id
        );
        errln!(
            "  help: `--retry-failed` continues a run that ended `failed after pivot` or failed with `--no-rollback` (exit 4)"
        );
        return EXIT_INVALID;
    }
    // A run started with `--no-rollback` keeps that choice for what fails again.
    options.no_rollback = record.options.no_rollback;
    let runbook = &recovered.runbook;
    let mut statuses = recorded_now.statuses.clone();
    let mut finished_order = recorded_now.finished_order.clone();
    let again = pend_for_retry(
        runbook,
        &mut statuses,
        &mut finished_order,
        &recorded_now.compensated,
    );
    outln!(
        "run {}: running again {}, then what follows",
        record.run_id,
        if again.is_empty() {
            "nothing".to_string()
        } else {
            again.join(", ")
        }
    );
    // The run is unfinished again until this ends: a new run of the runbook must see it.
    if let Some((index, run_id)) = UnfinishedIndex::of_run_directory(&recovered.directory)
        && let Err(error) = index.mark_started(&run_id, &runbook.name)
    {
        errln!("error: cannot write the run index: {error}: nothing was run");
        return EXIT_INVALID;
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(drive(
        recovered,
        RunMode::Retry,
        options,
        |recorded| Start::Resume {
            statuses,
            finished_order,
            outcomes: recorded.outcomes.clone(),
            failed: None,
        },
        inputs,
        global,
    ))
}

/// Makes pending again, for `--retry-failed`, the steps that stopped the run (failed,
/// cancelled, a gate that denied) and those whose work the rollback undid; returns their ids.
/// A step still running is left to the in-doubt rules of `resume`.
fn pend_for_retry(
    runbook: &Runbook,
    statuses: &mut [StepStatus],
    finished_order: &mut [usize],
    compensated: &[bool],
) -> Vec<String> {
    let mut again = Vec::new();
    for step in &runbook.steps {
        let index = step.index;
        let stopped = match statuses[index] {
            StepStatus::Failed | StepStatus::Cancelled => true,
            // A gate that stopped the run, not one whose answer let the run go on.
            StepStatus::Denied => !step.allow_failure,
            StepStatus::TimedOut => !(step.allow_failure || step.approve_on_timeout),
            _ => false,
        };
        if stopped || compensated[index] {
            statuses[index] = StepStatus::Pending;
            finished_order[index] = 0;
            again.push(format!("`{}`", step.id));
        }
    }
    again
}
