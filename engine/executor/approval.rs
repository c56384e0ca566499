//! Approval gates (SPEC §7): approved by `--yes` or `--approve ID`, asked on a terminal, and
//! failed, never waited on, when there is no terminal to ask.

use std::io::{BufRead, IsTerminal, Write};

use tokio::sync::watch;

use super::command::CancelLevel;
use super::shared::RunShared;
use crate::events::Event;

/// Resolves the gate of step `id`; `Err` says why it was not approved.
pub(crate) async fn approve(
    shared: &RunShared,
    id: &str,
    question: &str,
    cancel: &mut watch::Receiver<CancelLevel>,
) -> Result<(), String> {
    if shared.options.approve_all || shared.options.approve.iter().any(|approved| approved == id) {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(format!(
            "approval gate `{id}` needs an answer, but there is no terminal to ask: pass `--yes` or `--approve {id}`"
        ));
    }
    let _turn = shared.approval_lock.lock().await;
    shared.emitter.emit(Event::ApprovalRequested {
        step: id.to_string(),
        question: shared.emitter.mask(question),
    });
    let prompt = shared.emitter.mask(question);
    let answer = tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\n? {prompt} [y/N] ");
        let _ = stderr.flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        answer = answer => match answer {
            Ok(Ok(line)) if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") => Ok(()),
            Ok(Ok(_)) => Err(format!("approval gate `{id}` was denied")),
            _ => Err(format!("approval gate `{id}`: could not read the answer")),
        },
        _ = cancel.wait_for(|level| *level != CancelLevel::None) => Err("cancelled".into()),
    }
}
