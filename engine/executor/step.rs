//! One forward step from start to end: its condition, approval gate, attempts with retry,
//! outputs, and verification probes. A failure is an outcome, never an `Err`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::approval::{Gate, approve};
use super::command::{CancelLevel, CommandEnd, OutputLabel, run_command};
use super::outputs::{MAX_OUTPUT_KEYS, parse_outputs};
use super::remote_command::run_remote_command;
use super::shared::{Renderer, RunShared};
use super::verify::verify;
use crate::events::{DurationMs, Event, Phase, StepOutcome, StepStatus};
use crate::model::{Action, Step};
use crate::plan::Context;
use crate::process::CommandSpec;
use crate::remote::RemoteRequest;
use crate::state::save_secret_outputs;

/// How a forward step ended.
#[derive(Debug, Clone)]
pub(crate) struct StepReport {
    pub index: usize,
    pub status: StepStatus,
    pub attempts: u32,
    pub duration: Duration,
    /// Why it failed (masked).
    pub message: Option<String>,
    /// Outputs written, also by a failed attempt (its compensation may need them).
    pub outputs: Vec<(String, String)>,
    /// Its last output lines (masked).
    pub tail: Vec<String>,
    /// How it ended, for `RUNBOOK_STEP_OUTCOME` of its compensation.
    pub outcome: StepOutcome,
    /// Its `if` could not be decided: a failure `allow_failure` does not cover, since the
    /// steps after it would go on as if a decision had been made.
    pub undecided: bool,
    /// It runs on a host that could not be reached (or could not start it): its script never
    /// ran, so there is nothing to compensate.
    pub not_started: bool,
}

/// Truthiness of a rendered `if` (SPEC §6).
fn is_truthy(rendered: &str) -> bool {
    crate::template::is_truthy(rendered)
}

/// Runs step `index` with `context` holding the outputs of every step that finished.
pub(crate) async fn run_step(
    shared: Arc<RunShared>,
    index: usize,
    context: Context,
    mut cancel: watch::Receiver<CancelLevel>,
) -> StepReport {
    let started = Instant::now();
    let step = &shared.runbook.steps[index];
    let id = step.id.to_string();
    let mut report = StepReport {
        index,
        status: StepStatus::Failed,
        attempts: 0,
        duration: Duration::ZERO,
        message: None,
        outputs: Vec::new(),
        tail: Vec::new(),
        outcome: StepOutcome::Failed,
        undecided: false,
        not_started: false,
    };
    let renderer = match Renderer::new(&shared, &context) {
        Ok(renderer) => renderer,
        Err(message) => return finish(report, started, Some(message)),
    };
    if let Some(condition) = &step.condition {
        match renderer.render(condition) {
            Ok(rendered) if !is_truthy(&rendered) => {
                report.status = StepStatus::Skipped;
                let reason = format!("`if` is {:?}", rendered.trim());
                shared.emitter.emit(Event::StepSkipped {
                    step: id.clone(),
                    reason: reason.clone(),
                });
                report.message = Some(reason);
                report.duration = started.elapsed();
                return report;
            }
            Ok(_) => {}
            Err(message) => {
                report.undecided = true;
                return finish(report, started, Some(message));
            }
        }
    }
    let name = renderer.step_name(step);
    shared.emitter.emit(Event::StepStarted {
        step: id.clone(),
        name: name.clone(),
        phase: Phase::Forward,
        attempt: 1,
    });
    let mut env = shared.base_env.clone();
    match renderer.render_env(&step.env) {
        Ok(step_env) => env.extend(step_env),
        Err(message) => return finish(report, started, Some(message)),
    }
    env.push(("RUNBOOK_STEP_ID".into(), id.clone()));
    // How a gate was answered: its end status and the line saying who answered.
    let mut gate_end = None;
    match &step.action {
        Action::Approve(question) => {
            report.attempts = 1;
            let question = match renderer.render(question) {
                Ok(question) => question,
                Err(message) => return finish(report, started, Some(message)),
            };
            let timeout = match step
                .timeout
                .as_ref()
                .map(|timeout| renderer.duration(timeout))
            {
                Some(Ok(timeout)) => Some(timeout),
                Some(Err(message)) => return finish(report, started, Some(message)),
                None => None,
            };
            let gate = Gate {
                id: &id,
                question: &question,
                timeout,
                approve_on_timeout: step.approve_on_timeout,
            };
            match approve(&shared, &gate, &mut cancel).await {
                Ok(end) if end.passed => gate_end = Some(end),
                Ok(end) => {
                    report.status = end.status;
                    report.outcome = if end.status == StepStatus::TimedOut {
                        StepOutcome::TimedOut
                    } else {
                        StepOutcome::Failed
                    };
                    return finish(report, started, Some(end.message));
                }
                Err(message) => {
                    if *cancel.borrow() != CancelLevel::None {
                        report.status = StepStatus::Cancelled;
                        report.outcome = StepOutcome::Cancelled;
                    }
                    return finish(report, started, Some(message));
                }
            }
        }
        Action::Run(script) => {
            let argv = match (renderer.render_all(&step.shell), renderer.render(script)) {
                (Ok(mut argv), Ok(script)) => {
                    argv.push(script);
                    argv
                }
                (Err(message), _) | (_, Err(message)) => {
                    return finish(report, started, Some(message));
                }
            };
            let cwd = match renderer.working_directory(step.cwd.as_ref()) {
                Ok(cwd) => cwd,
                Err(message) => return finish(report, started, Some(message)),
            };
            let timing = match Timing::render(step, &renderer) {
                Ok(timing) => timing,
                Err(message) => return finish(report, started, Some(message)),
            };
            let remote_cwd = match step.cwd.as_ref().map(|cwd| renderer.render(cwd)) {
                Some(Ok(cwd)) => Some(cwd),
                Some(Err(message)) => return finish(report, started, Some(message)),
                None => None,
            };
            let command = AttemptCommand {
                name: name.clone(),
                argv,
                env: env.clone(),
                cwd,
                remote_cwd,
                timing,
            };
            if let Err((message, outcome)) =
                attempts(&shared, index, command, &mut report, &mut cancel).await
            {
                report.outcome = outcome;
                if outcome == StepOutcome::Cancelled {
                    report.status = StepStatus::Cancelled;
                }
                return finish(report, started, Some(message));
            }
        }
        Action::Check => report.attempts = 1,
    }
    if !step.verify.is_empty() {
        let mut own = context.clone();
        own.set_step(&id, "running", &report.outputs);
        let renderer = match Renderer::new(&shared, &own) {
            Ok(renderer) => renderer,
            Err(message) => return finish(report, started, Some(message)),
        };
        if let Err(message) = verify(
            &step.verify,
            &id,
            Phase::Forward,
            &renderer,
            &env,
            &shared,
            &mut cancel,
        )
        .await
        .map_err(|error| error.message)
        {
            if *cancel.borrow() != CancelLevel::None {
                report.status = StepStatus::Cancelled;
                report.outcome = StepOutcome::Cancelled;
            }
            return finish(report, started, Some(message));
        }
    }
    report.outcome = StepOutcome::Succeeded;
    match gate_end {
        Some(end) => {
            report.status = end.status;
            finish(report, started, Some(end.message))
        }
        None => {
            report.status = StepStatus::Succeeded;
            finish(report, started, None)
        }
    }
}

/// A step's durations, rendered when it starts (they may be templates).
struct Timing {
    timeout: Option<Duration>,
    grace: Duration,
    delay: Duration,
}

impl Timing {
    fn render(step: &Step, renderer: &Renderer<'_>) -> Result<Timing, String> {
        Ok(Timing {
            timeout: step
                .timeout
                .as_ref()
                .map(|timeout| renderer.duration(timeout))
                .transpose()?,
            grace: renderer.duration(&step.grace)?,
            delay: renderer.duration(&step.retry.delay)?,
        })
    }
}

/// What every attempt of a `run` runs, and with which limits.
struct AttemptCommand {
    /// The step's name as rendered, for the events of later attempts.
    name: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: std::path::PathBuf,
    /// On a host, the `cwd` as rendered (relative to the login directory); `None`: that.
    remote_cwd: Option<String>,
    timing: Timing,
}

/// The outputs an attempt wrote: secret ones join the run's masker at once and are kept
/// outside the journal for a later `rollback RUN`.
fn read_outputs(
    shared: &RunShared,
    step: &Step,
    output_file: &std::path::Path,
) -> Result<Vec<(String, String)>, String> {
    let outputs = bounded_outputs(shared, step, output_file)?;
    let secret: Vec<(String, String)> = outputs
        .iter()
        .filter(|(key, _)| step.is_secret_output(key))
        .cloned()
        .collect();
    if !secret.is_empty() {
        shared
            .emitter
            .add_secrets(secret.iter().map(|(_, value)| value.clone()).collect());
        save_secret_outputs(&shared.info.directory, step.id.as_str(), &secret).map_err(
            |error| {
                format!(
                    "cannot keep the secret outputs of step `{}` in the run directory: {error}",
                    step.id
                )
            },
        )?;
    }
    Ok(outputs)
}

/// The most a step may write to `$RUNBOOK_OUTPUT`: values for later templates, not data.
const MAX_OUTPUT_BYTES: u64 = 1 << 20;

/// Reads and parses `$RUNBOOK_OUTPUT` within its bounds (size, keys; a regular file, not a
/// link), warning about lines that are neither form. Beyond a bound the step fails.
fn bounded_outputs(
    shared: &RunShared,
    step: &Step,
    output_file: &std::path::Path,
) -> Result<Vec<(String, String)>, String> {
    use crate::bounded_read::{BoundedReadError, read_bounded_no_symlink, size};
    let read = read_bounded_no_symlink(output_file, MAX_OUTPUT_BYTES);
    // The values now live in memory (and, masked, in the journal); a file left behind
    // could keep a secret at rest. A file that is not there (most steps) needs no unlink.
    if !matches!(&read, Err(BoundedReadError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound)
    {
        let _ = std::fs::remove_file(output_file);
    }
    let id = &step.id;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(BoundedReadError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(BoundedReadError::TooLarge { limit }) => {
            return Err(format!(
                "step `{id}` wrote more than {} to `$RUNBOOK_OUTPUT`, the limit: outputs are values for later steps, not data (write data to a file and output its path)",
                size(limit)
            ));
        }
        Err(error) => {
            return Err(format!(
                "cannot read the `$RUNBOOK_OUTPUT` of step `{id}`: {error}"
            ));
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let parsed = parse_outputs(&text);
    if parsed.pairs.len() > MAX_OUTPUT_KEYS {
        return Err(format!(
            "step `{id}` wrote {} output keys to `$RUNBOOK_OUTPUT`, more than the limit of {MAX_OUTPUT_KEYS}",
            parsed.pairs.len()
        ));
    }
    if let Some(first) = parsed.malformed.first() {
        let lines = match parsed.malformed.len() {
            1 => format!("line {first} is"),
            count => format!("{count} lines (the first: line {first}) are"),
        };
        shared.emitter.emit(crate::events::Event::Notice {
            message: format!(
                "step `{id}`: {lines} of `$RUNBOOK_OUTPUT` neither `key=value` nor `key<<DELIMITER` ... `DELIMITER`: ignored"
            ),
        });
    }
    Ok(parsed.pairs)
}

/// The promised outputs an attempt did not write, as an error message.
fn missing_outputs(step: &Step, outputs: &[(String, String)]) -> Option<String> {
    let missing: Vec<String> = step
        .outputs
        .iter()
        .flatten()
        .filter(|promised| !outputs.iter().any(|(written, _)| *written == promised.name))
        .map(|promised| format!("`{}`", promised.name))
        .collect();
    match missing.as_slice() {
        [] => None,
        [one] => Some(format!(
            "step `{}` did not write promised output {one}",
            step.id
        )),
        many => Some(format!(
            "step `{}` did not write promised outputs {}",
            step.id,
            many.join(", ")
        )),
    }
}

/// The attempts of a `run`: retried on failure or timeout, never after a cancel.
async fn attempts(
    shared: &RunShared,
    index: usize,
    command: AttemptCommand,
    report: &mut StepReport,
    cancel: &mut watch::Receiver<CancelLevel>,
) -> Result<(), (String, StepOutcome)> {
    let AttemptCommand {
        name,
        argv,
        env,
        cwd,
        remote_cwd,
        timing,
    } = command;
    let remote = shared
        .fleet
        .as_ref()
        .and_then(|fleet| Some((fleet, fleet.host_of(index)?)));
    let step = &shared.runbook.steps[index];
    let id = step.id.to_string();
    let label = OutputLabel {
        step: id.clone(),
        phase: Phase::Forward,
        emit_lines: true,
    };
    let outputs_directory = shared.info.directory.join("outputs");
    for attempt in 1..=step.retry.attempts {
        report.attempts = attempt;
        if attempt > 1 {
            shared.emitter.emit(Event::StepStarted {
                step: id.clone(),
                name: name.clone(),
                phase: Phase::Forward,
                attempt,
            });
        }
        // Not created in advance: `>> "$RUNBOOK_OUTPUT"` creates it, and a step that writes no
        // outputs costs no file.
        let output_file = outputs_directory.join(format!("{id}.{attempt}"));
        let durable = match shared.emitter.durable().await {
            Ok(durable) => durable,
            Err(message) => return Err((format!("not started: {message}"), StepOutcome::Failed)),
        };
        let result = match remote {
            Some((fleet, host)) => {
                let request =
                    RemoteRequest::from_argv(&argv, env.clone(), remote_cwd.clone(), timing.grace);
                let remote = run_remote_command(
                    fleet,
                    host,
                    &request,
                    &label,
                    timing.timeout,
                    durable,
                    cancel,
                )
                .await;
                if remote.error.is_some() {
                    report.tail = remote.result.tail.clone();
                    report.not_started = remote.never_started();
                    let message = shared.emitter.mask(&remote.describe());
                    return Err((message, StepOutcome::Failed));
                }
                if !remote.output.is_empty()
                    && let Err(error) = write_output_file(&output_file, &remote.output)
                {
                    return Err((
                        format!(
                            "cannot keep the `$RUNBOOK_OUTPUT` of step `{id}` in the run directory: {error}"
                        ),
                        StepOutcome::Failed,
                    ));
                }
                remote.result
            }
            None => {
                let mut attempt_env = env.clone();
                attempt_env.push(("RUNBOOK_OUTPUT".into(), output_file.display().to_string()));
                let spec = CommandSpec {
                    argv: argv.clone(),
                    env: attempt_env,
                    cwd: cwd.clone(),
                };
                run_command(
                    &spec,
                    &label,
                    timing.timeout,
                    timing.grace,
                    durable,
                    cancel,
                    None,
                )
                .await
            }
        };
        report.tail = result.tail;
        report.outputs = match read_outputs(shared, step, &output_file) {
            Ok(outputs) => outputs,
            Err(message) => return Err((message, StepOutcome::Failed)),
        };
        let outcome = match &result.end {
            CommandEnd::Cancelled => return Err(("cancelled".into(), StepOutcome::Cancelled)),
            CommandEnd::TimedOut(_) => StepOutcome::TimedOut,
            _ => StepOutcome::Failed,
        };
        if result.end.succeeded() {
            return match missing_outputs(step, &report.outputs) {
                Some(message) => Err((message, StepOutcome::Failed)),
                None => Ok(()),
            };
        }
        let message = result.end.describe();
        if attempt == step.retry.attempts {
            let tries = if attempt > 1 {
                format!(" (after {attempt} attempts)")
            } else {
                String::new()
            };
            return Err((format!("{message}{tries}"), outcome));
        }
        let delay = step.retry.delay_after(timing.delay, attempt);
        shared.emitter.emit(Event::AttemptFailed {
            step: id.clone(),
            phase: Phase::Forward,
            attempt,
            message: message.clone(),
            retry_in: Some(DurationMs(delay)),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = cancel.wait_for(|level| *level != CancelLevel::None) => return Err(("cancelled".into(), StepOutcome::Cancelled)),
        }
    }
    Ok(())
}

/// Writes what a script wrote to `$RUNBOOK_OUTPUT` on its host where a local step's lands,
/// private to the user, so that outputs are read by one rule.
fn write_output_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

fn finish(mut report: StepReport, started: Instant, message: Option<String>) -> StepReport {
    report.duration = started.elapsed();
    if message.is_some() {
        report.message = message;
    }
    report
}
