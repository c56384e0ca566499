//! Live progress on a terminal: an overall count and one spinner line per running step with
//! its elapsed time and last output line; finished steps become permanent lines printed
//! through the bars, so output never tears. Rollback shows as its own phase.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Reporter;
use crate::events::{Event, Phase, StepStatus};
use crate::format::tenths;

/// The terminal progress display.
#[derive(Debug)]
pub struct LiveProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    running: HashMap<(String, bool), ProgressBar>,
    /// An approval prompt is on the terminal.
    prompting: bool,
}

impl Default for LiveProgress {
    fn default() -> Self {
        LiveProgress::new()
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg:.dim}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl LiveProgress {
    pub fn new() -> LiveProgress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} steps {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.set_prefix("run");
        LiveProgress {
            multi,
            overall,
            running: HashMap::new(),
            prompting: false,
        }
    }

    /// Every line goes to the terminal: step text in it is neutralised.
    fn println(&self, line: String) {
        let _ = self.multi.println(super::terminal::neutralise(&line));
    }

    fn finish_bar(&mut self, step: &str, compensation: bool) {
        if let Some(bar) = self.running.remove(&(step.to_string(), compensation)) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Reporter for LiveProgress {
    fn handle(&mut self, event: &Event) {
        if self.prompting
            && !matches!(
                event,
                Event::StepOutput { .. }
                    | Event::ApprovalRequested { .. }
                    | Event::ApprovalAnswered { .. }
            )
        {
            self.prompting = false;
            self.multi.set_draw_target(ProgressDrawTarget::stderr());
        }
        match event {
            Event::RunStarted {
                run_id,
                runbook,
                steps,
                rehearsal,
                ..
            } => {
                self.overall.set_length(*steps as u64);
                let rehearsal = rehearsal
                    .as_ref()
                    .map(|step| format!(" (a rehearsal: `{step}` will be failed after it runs)"))
                    .unwrap_or_default();
                self.println(format!("run {run_id} of `{runbook}`{rehearsal}"));
            }
            Event::StepStarted {
                step,
                phase,
                attempt,
                ..
            } => {
                let compensation = *phase == Phase::Compensation;
                let key = (step.clone(), compensation);
                if let Some(bar) = self.running.get(&key) {
                    bar.set_message(format!("attempt {attempt}"));
                    return;
                }
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(if compensation {
                    format!("undo {step}")
                } else {
                    step.clone()
                });
                bar.enable_steady_tick(Duration::from_millis(120));
                self.running.insert(key, bar);
            }
            Event::StepOutput {
                step, phase, line, ..
            } => {
                if let Some(bar) = self
                    .running
                    .get(&(step.clone(), *phase == Phase::Compensation))
                {
                    bar.set_message(super::terminal::neutralise(line).into_owned());
                }
            }
            Event::AttemptFailed {
                step,
                attempt,
                message,
                ..
            } => {
                self.println(format!("  {step}: attempt {attempt} failed: {message}"));
            }
            // A failed probe's message is the step's failure message, shown when it finishes.
            Event::ProbeFinished { .. }
            | Event::ProcessStarted { .. }
            | Event::CompensationRecorded { .. } => {}
            Event::StepSkipped { step, reason } => {
                self.overall.inc(1);
                self.println(format!("- {step} skipped ({reason})"));
            }
            // For the journal: the run's end already says why it stopped.
            Event::StepsNotStarted { .. } => {}
            // A gate's probes say what it found; its times are for `show` and reports.
            Event::GateStarted { .. } | Event::GateFinished { .. } => {}
            Event::StepFinished {
                step,
                phase,
                status,
                duration,
                message,
                ..
            } => {
                let compensation = *phase == Phase::Compensation;
                self.finish_bar(step, compensation);
                if *phase == Phase::Forward {
                    self.overall.inc(1);
                }
                let mark = match status {
                    StepStatus::Succeeded | StepStatus::Compensated | StepStatus::Approved => "✔",
                    StepStatus::FailedAllowed | StepStatus::FailedTolerated => "!",
                    _ => "✖",
                };
                let name = if compensation {
                    format!("undo {step}")
                } else {
                    step.clone()
                };
                let why = message
                    .as_ref()
                    .map(|message| format!(": {message}"))
                    .unwrap_or_default();
                self.println(format!(
                    "{mark} {name} {} in {}{why}",
                    status.as_str(),
                    tenths(duration.0)
                ));
            }
            Event::ApprovalRequested { step, help, .. } => {
                if let Some(help) = help {
                    self.println(format!("{step}: {help}"));
                }
                // The prompt is written to the terminal: stop drawing until it is answered,
                // or the bars would overwrite the question.
                self.finish_bar(step, false);
                self.multi.set_draw_target(ProgressDrawTarget::hidden());
                self.prompting = true;
            }
            Event::ApprovalAnswered { .. } => {}
            Event::Stopping { message, .. } => self.println(format!("stopping: {message}")),
            Event::Notice { message } => self.println(format!("note: {message}")),
            Event::RollbackStarted { steps } => {
                self.overall.set_message("(rolling back)");
                self.println(format!(
                    "rollback: compensating {}",
                    if steps.is_empty() {
                        "nothing".to_string()
                    } else {
                        steps.join(", ")
                    }
                ));
            }
            Event::CompensationBlocked { step, waiting_on } => {
                self.println(format!(
                    "✖ undo {step} blocked (waits for {})",
                    waiting_on.join(", ")
                ));
            }
            Event::RollbackFinished { complete } => {
                self.println(format!(
                    "rollback {}",
                    if *complete { "complete" } else { "INCOMPLETE" }
                ));
            }
            Event::RunFinished { .. } => {
                for (_, bar) in self.running.drain() {
                    bar.finish_and_clear();
                }
                self.overall.finish_and_clear();
                let _ = self.multi.clear();
            }
        }
    }
}
