//! One compensation: the step's `rollback` rendered with the outputs the step recorded, run
//! with its own timeout and retry, then its probes. Not cancelled by the signal that started
//! the rollback.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::command::{CancelLevel, CommandEnd, CommandResult, OutputLabel, run_command};
use super::remote_command::run_remote_command;
use super::shared::{Renderer, RunShared};
use super::verify::verify;
use crate::events::{DurationMs, Event, Phase, StepOutcome, StepStatus};
use crate::plan::Context;
use crate::process::CommandSpec;
use crate::remote::RemoteRequest;

/// A compensation without its own timeout gets this, so a hung undo cannot hang the run.
const DEFAULT_COMPENSATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How a compensation ended.
#[derive(Debug, Clone)]
pub(crate) struct CompensationReport {
    pub index: usize,
    pub succeeded: bool,
    pub attempts: u32,
    pub duration: Duration,
    pub message: Option<String>,
}

/// A compensation's durations, rendered before it starts.
struct Timing {
    timeout: Duration,
    grace: Duration,
    delay: Duration,
}

/// Compensates step `index`, whose forward run ended as `outcome`.
pub(crate) async fn compensate(
    shared: Arc<RunShared>,
    index: usize,
    context: Context,
    outcome: StepOutcome,
    mut cancel: watch::Receiver<CancelLevel>,
) -> CompensationReport {
    let started = Instant::now();
    let step = &shared.runbook.steps[index];
    let id = step.id.to_string();
    let mut context = context;
    if let Some(fleet) = &shared.fleet {
        fleet.instance_context(&shared.runbook, index, &mut context);
    }
    let mut report = CompensationReport {
        index,
        succeeded: false,
        attempts: 0,
        duration: Duration::ZERO,
        message: None,
    };
    let Some(compensation) = &step.rollback else {
        report.succeeded = true;
        return report;
    };
    let name = Renderer::new(&shared, &context)
        .map_or_else(|_| step.name.clone(), |renderer| renderer.step_name(step));
    shared.emitter.emit(Event::StepStarted {
        step: id.clone(),
        name,
        phase: Phase::Compensation,
        attempt: 1,
    });
    let prepared = Renderer::new(&shared, &context).and_then(|renderer| {
        let (argv, env, cwd, timing) = prepare(&renderer, &shared, index, outcome)?;
        Ok((renderer, argv, env, cwd, timing))
    });
    let (renderer, argv, env, cwd, timing) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => return finished(&shared, report, started, Some(message)),
    };
    let label = OutputLabel {
        step: id.clone(),
        phase: Phase::Compensation,
        emit_lines: true,
    };
    let remote = shared
        .fleet
        .as_ref()
        .and_then(|fleet| Some((fleet, fleet.host_of(index)?)));
    let remote_cwd = match compensation.cwd.as_ref().map(|cwd| renderer.render(cwd)) {
        Some(Ok(cwd)) => Some(cwd),
        Some(Err(message)) => return finished(&shared, report, started, Some(message)),
        None => None,
    };
    let spec = CommandSpec {
        argv,
        env: env.clone(),
        cwd,
    };
    for attempt in 1..=compensation.retry.attempts {
        report.attempts = attempt;
        let (result, message) = match (shared.emitter.durable().await, remote) {
            (Err(message), _) => {
                let result = CommandResult {
                    end: CommandEnd::SpawnFailed(message),
                    tail: Vec::new(),
                };
                let message = result.end.describe();
                (result, message)
            }
            (Ok(durable), Some((fleet, host))) => {
                let request = RemoteRequest::from_argv(
                    &spec.argv,
                    env.clone(),
                    remote_cwd.clone(),
                    timing.grace,
                );
                let remote = run_remote_command(
                    fleet,
                    host,
                    &request,
                    &label,
                    Some(timing.timeout),
                    durable,
                    &mut cancel,
                )
                .await;
                let message = shared.emitter.mask(&remote.describe());
                (remote.result, message)
            }
            (Ok(durable), None) => {
                let result = run_command(
                    &spec,
                    &label,
                    Some(timing.timeout),
                    timing.grace,
                    durable,
                    &mut cancel,
                    None,
                )
                .await;
                let message = result.end.describe();
                (result, message)
            }
        };
        if result.end.succeeded() {
            break;
        }
        if attempt == compensation.retry.attempts {
            let tries = if attempt > 1 {
                format!(" (after {attempt} attempts)")
            } else {
                String::new()
            };
            let tail = result
                .tail
                .last()
                .map(|line| format!("; last output: {line}"))
                .unwrap_or_default();
            return finished(
                &shared,
                report,
                started,
                Some(format!("{message}{tries}{tail}")),
            );
        }
        let delay = compensation.retry.delay_after(timing.delay, attempt);
        shared.emitter.emit(Event::AttemptFailed {
            step: id.clone(),
            phase: Phase::Compensation,
            attempt,
            message,
            retry_in: Some(DurationMs(delay)),
        });
        tokio::time::sleep(delay).await;
    }
    if let Err(message) = verify(
        &compensation.verify,
        &id,
        Phase::Compensation,
        &renderer,
        &env,
        &shared,
        &mut cancel,
    )
    .await
    .map_err(|error| error.message)
    {
        return finished(&shared, report, started, Some(message));
    }
    report.succeeded = true;
    finished(&shared, report, started, None)
}

/// A compensation rendered: argv, environment, working directory, timing.
type Prepared = (Vec<String>, Vec<(String, String)>, PathBuf, Timing);

/// What a compensation runs, rendered: argv, environment (the run's, then the step's, the
/// compensation's and `RUNBOOK_*`), working directory and timing. One function for the
/// rollback and its preview, so `rollback --dry-run` shows what would run.
fn prepare(
    renderer: &Renderer<'_>,
    shared: &RunShared,
    index: usize,
    outcome: StepOutcome,
) -> Result<Prepared, String> {
    let step = &shared.runbook.steps[index];
    let Some(compensation) = &step.rollback else {
        return Err(format!("step `{}` has no rollback", step.id));
    };
    let mut argv = renderer.render_all(&compensation.shell)?;
    argv.push(renderer.render(&compensation.run)?);
    let mut env = shared.base_env.clone();
    env.extend(renderer.render_env(&step.env)?);
    env.extend(renderer.render_env(&compensation.env)?);
    env.push(("RUNBOOK_STEP_ID".into(), step.id.to_string()));
    env.push(("RUNBOOK_STEP_OUTCOME".into(), outcome.as_str().into()));
    let cwd = renderer.working_directory(compensation.cwd.as_ref())?;
    let timeout = match &compensation.timeout {
        Some(timeout) => renderer.duration(timeout)?,
        None => DEFAULT_COMPENSATION_TIMEOUT,
    };
    let timing = Timing {
        timeout,
        grace: renderer.duration(&step.grace)?,
        delay: renderer.duration(&compensation.retry.delay)?,
    };
    Ok((argv, env, cwd, timing))
}

/// A compensation as it would run, rendered with the run's recorded values, every text
/// masked: what `rollback RUN --dry-run` prints.
#[derive(Debug, Clone)]
pub struct CompensationPreview {
    pub step: String,
    /// How the step's forward run ended (`RUNBOOK_STEP_OUTCOME`).
    pub outcome: StepOutcome,
    /// The script (the last word of the argv).
    pub script: String,
    /// The interpreter before it.
    pub shell: Vec<String>,
    /// The step's and the compensation's own environment and `RUNBOOK_STEP_*`, not the
    /// runbook `env` every process gets.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    pub attempts: u32,
    /// The names of the probes that then verify it.
    pub verify: Vec<String>,
}

/// Renders the compensation of step `index` without running it (`rollback --dry-run`).
pub fn preview_compensation(
    shared: &RunShared,
    index: usize,
    context: &Context,
    outcome: StepOutcome,
) -> Result<CompensationPreview, String> {
    let renderer = Renderer::new(shared, context)?;
    let (mut argv, env, cwd, timing) = prepare(&renderer, shared, index, outcome)?;
    let mask = |text: &str| shared.emitter.mask(text);
    let step = &shared.runbook.steps[index];
    let script = argv.pop().unwrap_or_default();
    let verify = step
        .rollback
        .iter()
        .flat_map(|compensation| &compensation.verify)
        .map(|probe| mask(&probe.name))
        .collect();
    Ok(CompensationPreview {
        step: step.id.to_string(),
        outcome,
        script: mask(&script),
        shell: argv.iter().map(|word| mask(word)).collect(),
        env: env[shared.base_env.len()..]
            .iter()
            .map(|(name, value)| (name.clone(), mask(value)))
            .collect(),
        cwd,
        timeout: timing.timeout,
        attempts: step
            .rollback
            .as_ref()
            .map_or(1, |compensation| compensation.retry.attempts),
        verify,
    })
}

fn finished(
    shared: &RunShared,
    mut report: CompensationReport,
    started: Instant,
    message: Option<String>,
) -> CompensationReport {
    report.duration = started.elapsed();
    report.message = message;
    let status = if report.succeeded {
        StepStatus::Compensated
    } else {
        StepStatus::CompensationFailed
    };
    shared.emitter.emit(Event::StepFinished {
        step: shared.runbook.steps[report.index].id.to_string(),
        phase: Phase::Compensation,
        status,
        attempts: report.attempts,
        duration: DurationMs(report.duration),
        message: report.message.clone(),
        outputs: Vec::new(),
        outcome: None,
    });
    report
}

/// Compensates `set` one at a time, in its order (a tolerated host's instances, newest
/// first), stopping at the first that fails.
pub(crate) async fn undo_in_order(
    shared: Arc<RunShared>,
    set: Vec<usize>,
    context: Context,
    outcomes: Vec<StepOutcome>,
) -> Vec<CompensationReport> {
    let (_never, cancel) = watch::channel(CancelLevel::None);
    let mut reports = Vec::with_capacity(set.len());
    for index in set {
        let report = compensate(
            shared.clone(),
            index,
            context.clone(),
            outcomes[index],
            cancel.clone(),
        )
        .await;
        let failed = !report.succeeded;
        reports.push(report);
        if failed {
            break;
        }
    }
    reports
}
