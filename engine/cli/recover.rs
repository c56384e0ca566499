//! `runbook rollback RUN` and `runbook resume RUN`: rebuild a run's state from its journal
//! and hand it to the same executor. `rollback` compensates what ran (later, or what a run
//! left uncompensated); `resume` continues a run whose engine died, re-running in-doubt
//! steps only when they are idempotent or the operator decided.

use std::path::PathBuf;

use super::args::{GlobalArgs, ResumeArgs, RollbackArgs, SecretVarArgs};
use super::run::digest;
use super::session::{SessionInput, finish_session, lock_runbook, runtime, start_session};
use crate::errors::{EXIT_INVALID, EXIT_NEEDS_DECISION, EXIT_SUCCESS};
use crate::events::{RunOutcome, StepOutcome, StepStatus};
use crate::executor::{RunOptions, RunRecorder, Start};
use crate::model::Runbook;
use crate::plan::{VarInputs, vars_file_values};
use crate::rollback::{RanStep, plan_rollback};
use crate::source::Source;
use crate::state::RunInfo;
use crate::state::{
    JOURNAL_FILE, JournalWriter, LogFiles, Record, RecordedPhase, Resumed, RunMode, RunRecord,
    find_run, for_each_record, state_directory,
};
use crate::validate::validate;

/// A recorded run with its runbook loaded again.
struct Recovered {
    record: RunRecord,
    directory: PathBuf,
    runbook: Runbook,
}

fn recover(run: &str, allow_changed: bool, global: &GlobalArgs) -> Result<Recovered, i32> {
    let state = state_directory(global.state_dir.as_deref());
    let fail = |message: String| {
        errln!("error: {message}");
        EXIT_INVALID
    };
    let directory = find_run(&state, run).map_err(fail)?;
    let record = RunRecord::load(&directory)
        .map_err(|error| fail(format!("run `{run}`: {error}: nothing was done")))?;
    let source = Source::read(std::path::Path::new(&record.file))
        .map_err(|error| fail(format!("{error} (the runbook of run {})", record.run_id)))?;
    let now = digest(source.text());
    if now != record.digest && !allow_changed {
        return Err(fail(format!(
            "the runbook `{}` changed since run {} ({} then, {now} now): nothing was done\n  help: pass `--allow-changed` to use the file as it is now",
            record.file, record.run_id, record.digest
        )));
    }
    let validation = validate(&source);
    let Some(runbook) = validation.runbook else {
        return Err(fail(format!(
            "the runbook `{}` is no longer valid (`runbook validate {}`): nothing was done",
            record.file, record.file
        )));
    };
    if now != record.digest
        && let Some(message) = super::lost_compensations::refusal(&record, &runbook)
    {
        return Err(fail(message));
    }
    Ok(Recovered {
        record,
        directory,
        runbook,
    })
}

/// The recorded state of each step of the runbook, in its order.
struct Recorded {
    statuses: Vec<StepStatus>,
    /// 1 for the first step that finished, by the journal's `seq`; 0 for one that did not.
    finished_order: Vec<usize>,
    outcomes: Vec<StepOutcome>,
    compensated: Vec<bool>,
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
    let (recorded_steps, secret_outputs) = crate::state::restore_secret_outputs(
        &recovered.directory,
        &recovered.runbook,
        recovered.record.steps.clone(),
    );
    let input = SessionInput {
        runbook: recovered.runbook,
        info,
        inputs: &inputs,
        recorder,
        options,
    };
    let session = start_session(input, global, |emitter, _| {
        emitter.record(&Record::Resumed(Resumed {
            mode,
            pid: std::process::id(),
        }))
    });
    let mut session = match session {
        Ok(session) => session,
        Err(code) => return code,
    };
    session.shared.emitter.add_secrets(secret_outputs);
    // Compensations and later steps read the outputs the steps recorded then, not new ones.
    for step in &recorded_steps {
        session
            .context
            .set_step(&step.id, step.forward.status.name(), &step.outputs);
    }
    finish_session(session, start, global).await
}

pub fn rollback(args: &RollbackArgs, global: &GlobalArgs) -> i32 {
    let recovered = match recover(&args.run, args.allow_changed, global) {
        Ok(recovered) => recovered,
        Err(code) => return code,
    };
    let recorded_now = recorded(&recovered);
    let set = compensation_set(&recovered, &recorded_now);
    if set.is_empty() {
        outln!("run {}: nothing to compensate", recovered.record.run_id);
        return EXIT_SUCCESS;
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
    let recovered = match recover(&args.run, args.allow_changed, global) {
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
    };
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
    runtime.block_on(drive(
        recovered,
        RunMode::Resume,
        options,
        |recorded| Start::Resume {
            statuses,
            finished_order: recorded.finished_order.clone(),
            outcomes: recorded.outcomes.clone(),
            failed,
        },
        inputs,
        global,
    ))
}
