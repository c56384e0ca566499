//! Plain progress: one timestamped line per event, for CI logs and pipes.

use std::io::Write;

use super::{Reporter, clock};
use crate::events::{Event, Phase, Stream};
use crate::format::{written, written_to_millisecond};

/// Writes one line per event to stdout; `quiet` keeps only the final outcome.
#[derive(Debug, Default)]
pub struct PlainLines {
    pub quiet: bool,
}

fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Forward => "",
        Phase::Compensation => "undo ",
        Phase::Hook => "hook ",
    }
}

fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::RunStarted {
            run_id,
            runbook,
            steps,
            rehearsal,
            ..
        } => {
            let rehearsal = rehearsal
                .as_ref()
                .map(|step| format!(" (a rehearsal: `{step}` will be failed after it runs)"))
                .unwrap_or_default();
            format!("run {run_id} of `{runbook}`: {steps} steps{rehearsal}")
        }
        Event::StepStarted {
            step,
            phase,
            attempt,
            ..
        } if *attempt > 1 => format!("{}{step}: attempt {attempt}", phase_word(*phase)),
        Event::StepStarted { step, phase, .. } => format!("{}{step}: started", phase_word(*phase)),
        Event::StepOutput {
            step, stream, line, ..
        } => {
            let marker = if *stream == Stream::Stderr { "!" } else { "|" };
            format!("  {step} {marker} {line}")
        }
        Event::AttemptFailed {
            step,
            phase,
            attempt,
            message,
            retry_in,
        } => {
            let retry = retry_in
                .map(|delay| format!(", retrying in {}", written(delay.0)))
                .unwrap_or_default();
            format!(
                "{}{step}: attempt {attempt} failed: {message}{retry}",
                phase_word(*phase)
            )
        }
        // A failed probe's message is the step's failure message, shown when it finishes.
        Event::ProbeFinished { passed: false, .. } => return None,
        Event::ProbeFinished {
            step,
            probe,
            message,
            ..
        } => {
            format!("{step}: probe `{probe}` passed: {message}")
        }
        Event::StepSkipped { step, reason } => format!("{step}: skipped ({reason})"),
        // For the journal: the run's end already says why it stopped.
        Event::StepsNotStarted { .. } => return None,
        // A gate's probes say what it found; its times are for `show` and reports.
        Event::GateStarted { .. } | Event::GateFinished { .. } => return None,
        Event::StepFinished {
            step,
            phase,
            status,
            duration,
            message,
            ..
        } => {
            let why = message
                .as_ref()
                .map(|message| format!(": {message}"))
                .unwrap_or_default();
            format!(
                "{}{step}: {} in {}{why}",
                phase_word(*phase),
                status.as_str(),
                written_to_millisecond(duration.0)
            )
        }
        Event::ApprovalRequested {
            step,
            question,
            help,
        } => match help {
            Some(help) => format!("{step}: waiting for approval: {question}\n{help}"),
            None => format!("{step}: waiting for approval: {question}"),
        },
        // The gate's end line says who answered.
        Event::ApprovalAnswered { .. } => return None,
        Event::Stopping { message, .. } => format!("stopping: {message}"),
        Event::Notice { message } => format!("note: {message}"),
        Event::RollbackStarted { steps } if steps.is_empty() => {
            "rollback: nothing to compensate".into()
        }
        Event::RollbackStarted { steps } => format!("rollback: compensating {}", steps.join(", ")),
        Event::CompensationBlocked { step, waiting_on } => {
            format!("undo {step}: blocked (waits for {})", waiting_on.join(", "))
        }
        Event::RollbackFinished { complete } => format!(
            "rollback {}",
            if *complete { "complete" } else { "INCOMPLETE" }
        ),
        Event::RunFinished { .. }
        | Event::ProcessStarted { .. }
        | Event::CompensationRecorded { .. } => return None,
    })
}

impl Reporter for PlainLines {
    fn handle(&mut self, event: &Event) {
        if self.quiet {
            return;
        }
        if let Some(text) = describe(event) {
            // A step's bytes must not drive the operator's terminal.
            let text = super::terminal::for_stdout(&text);
            let mut stdout = std::io::stdout().lock();
            let mut lines = text.lines();
            let _ = writeln!(stdout, "{} {}", clock(), lines.next().unwrap_or_default());
            // Continuation lines of a multi-line message stay visibly part of it.
            for line in lines {
                let _ = writeln!(stdout, "           {line}");
            }
            let _ = stdout.flush();
        }
    }
}
