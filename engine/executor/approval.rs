//! Approval gates (SPEC §7): approved by `--yes` or `--approve ID`, asked on a terminal,
//! answered from another terminal (`runbook approve|deny RUN GATE`, picked up from the run
//! directory), or answered by `on_timeout` when nobody did within the gate's `timeout`. A
//! gate that nobody could ever answer fails at once: a run never waits on a prompt no one
//! can see.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use super::command::CancelLevel;
use super::shared::RunShared;
use super::terminal_lines::TerminalLines;
use crate::events::{AnswerSource, Event, StepStatus};
use crate::state::{current_user, take_gate_answer};

/// How often a waiting gate looks for an answer left by `runbook approve|deny`.
const ANSWER_POLL: Duration = Duration::from_millis(200);

/// How a gate was answered: its status (`approved`, `denied`, `timed_out`), whether its
/// dependents may go on, and the line that says who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GateEnd {
    pub status: StepStatus,
    pub passed: bool,
    pub message: String,
}

/// What a gate needs to know of its step.
pub(crate) struct Gate<'a> {
    pub id: &'a str,
    pub question: &'a str,
    /// How long it waits before `on_timeout` answers; none: until someone answers.
    pub timeout: Option<Duration>,
    pub approve_on_timeout: bool,
}

/// Resolves the gate; `Err` says why it could not be answered at all.
pub(crate) async fn approve(
    shared: &RunShared,
    gate: &Gate<'_>,
    cancel: &mut watch::Receiver<CancelLevel>,
) -> Result<GateEnd, String> {
    let id = gate.id;
    if shared.options.approve_all || shared.options.approve.iter().any(|approved| approved == id) {
        return Ok(answered(
            shared,
            id,
            true,
            Some(current_user()),
            AnswerSource::Flag,
            None,
        ));
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !terminal && gate.timeout.is_none() {
        return Err(format!(
            "approval gate `{id}` needs an answer, but there is no terminal to ask: pass `--yes` or `--approve {id}`, or give the gate a `timeout` and answer it with `runbook approve RUN {id}`"
        ));
    }
    // An answer already waiting was given to this gate while its engine was down (the
    // command accepts answers only for a gate that waits): it counts.
    let directory = &shared.info.directory;
    let run = &shared.info.id;
    let mut help = format!(
        "answer from any terminal: `runbook approve {run} {id}` or `runbook deny {run} {id} --reason TEXT`"
    );
    if let Some(timeout) = gate.timeout {
        let answer = if gate.approve_on_timeout {
            "approve"
        } else {
            "deny"
        };
        help.push_str(&format!(
            "; with no answer within {}, `on_timeout` will {answer}",
            crate::format::written(timeout)
        ));
    }
    let _turn = if terminal {
        Some(shared.approval_lock.lock().await)
    } else {
        None
    };
    shared.emitter.emit(Event::ApprovalRequested {
        step: id.to_string(),
        question: shared.emitter.mask(gate.question),
        help: Some(help),
    });
    // Without a terminal no line comes: the wait ends by a command, the timeout or a cancel.
    let mut lines = if terminal {
        let mut lines = terminal_lines().lock().await;
        // A line read before this question was for an earlier one (answered elsewhere).
        lines.asking();
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\n? {} [y/N] ", shared.emitter.mask(gate.question));
        let _ = stderr.flush();
        Some(lines)
    } else {
        None
    };
    let deadline = async {
        match gate.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(ANSWER_POLL);
    loop {
        tokio::select! {
            line = next_line(lines.as_deref_mut()) => {
                return match line {
                    Ok(line) => {
                        let _ = take_gate_answer(directory, id);
                        let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
                        Ok(answered(shared, id, yes, Some(current_user()), AnswerSource::Terminal, None))
                    }
                    Err(error) => Err(format!("approval gate `{id}`: could not read the answer: {error}")),
                };
            }
            _ = poll.tick() => {
                if let Some(answer) = take_gate_answer(directory, id)? {
                    let reason = answer.reason.map(|reason| shared.emitter.mask(&reason));
                    return Ok(answered(shared, id, answer.approved, Some(answer.by), AnswerSource::Command, reason));
                }
            }
            () = &mut deadline => {
                // An answer that comes as the time runs out is too late, and must not answer
                // a later wait of this gate (`resume --retry-failed`).
                let _ = take_gate_answer(directory, id);
                return Ok(answered(shared, id, gate.approve_on_timeout, None, AnswerSource::Timeout, None));
            }
            _ = cancel.wait_for(|level| *level != CancelLevel::None) => return Err("cancelled".into()),
        }
    }
}

/// The lines typed on the engine's terminal (its stdin).
fn terminal_lines() -> &'static Mutex<TerminalLines> {
    static LINES: OnceLock<Mutex<TerminalLines>> = OnceLock::new();
    LINES.get_or_init(|| {
        Mutex::new(TerminalLines::new(|line| {
            std::io::stdin().lock().read_line(line)
        }))
    })
}

/// The next line typed, or never when there is no terminal to type on.
async fn next_line(lines: Option<&mut TerminalLines>) -> std::io::Result<String> {
    match lines {
        Some(lines) => lines.next().await,
        None => std::future::pending().await,
    }
}

/// Records who answered and builds the gate's end.
fn answered(
    shared: &RunShared,
    id: &str,
    approved: bool,
    by: Option<String>,
    how: AnswerSource,
    reason: Option<String>,
) -> GateEnd {
    shared.emitter.emit(Event::ApprovalAnswered {
        step: id.to_string(),
        approved,
        by: by.clone(),
        how,
        reason: reason.clone(),
    });
    gate_end(approved, by.as_deref(), how, reason.as_deref())
}

/// The status and the line of a gate answered `approved` (or not) by `by`, `how`.
fn gate_end(approved: bool, by: Option<&str>, how: AnswerSource, reason: Option<&str>) -> GateEnd {
    let word = if approved { "approved" } else { "denied" };
    let mut message = match (how, by) {
        (AnswerSource::Timeout, _) => format!("nobody answered in time: {word} by `on_timeout`"),
        (_, Some(by)) => format!("{word} by {by} ({})", how.as_str()),
        (_, None) => format!("{word} ({})", how.as_str()),
    };
    if let Some(reason) = reason.filter(|reason| !reason.trim().is_empty()) {
        message.push_str(&format!(": {}", reason.trim()));
    }
    let status = match (how, approved) {
        (AnswerSource::Timeout, _) => StepStatus::TimedOut,
        (_, true) => StepStatus::Approved,
        (_, false) => StepStatus::Denied,
    };
    GateEnd {
        status,
        passed: approved,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_says_who_and_how() {
        let end = gate_end(true, Some("alice"), AnswerSource::Command, None);
        assert_eq!(end.status, StepStatus::Approved);
        assert_eq!(end.message, "approved by alice (command)");
        let end = gate_end(
            false,
            Some("bob"),
            AnswerSource::Command,
            Some("too risky "),
        );
        assert_eq!(end.status, StepStatus::Denied);
        assert!(!end.passed);
        assert_eq!(end.message, "denied by bob (command): too risky");
        let end = gate_end(true, None, AnswerSource::Timeout, None);
        assert_eq!(end.status, StepStatus::TimedOut);
        assert!(end.passed);
        assert_eq!(
            end.message,
            "nobody answered in time: approved by `on_timeout`"
        );
    }
}
