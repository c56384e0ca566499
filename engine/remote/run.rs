//! `run_remote`: one instance on its host from start to end, with a timeout and
//! cancellation, for callers that do not drive a `RemoteSession` themselves.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{ControlMasters, RemoteError, RemoteRequest, RemoteSession, SshTarget};
use crate::process::OutputChunk;

/// How a script that ran on its host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteEnd {
    /// It ended by itself with this status (255 included: a script's, not the connection's).
    Exited(i32),
    /// Stopped after running this long.
    TimedOut(Duration),
    /// Stopped because the caller cancelled.
    Cancelled,
}

/// The end, whether SIGKILL was needed, and what the script wrote to `$RUNBOOK_OUTPUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutcome {
    pub end: RemoteEnd,
    pub killed: bool,
    pub output: Vec<u8>,
}

/// Runs `request` on `target` through its master in `masters`. Output arrives on `output`
/// while it runs (receive it concurrently: the channel is bounded). `timeout` bounds the run;
/// `cancel` becoming `true` stops it; either stops the script's group on the host with
/// SIGTERM, the request's grace, then SIGKILL.
pub async fn run_remote(
    masters: &ControlMasters,
    target: &SshTarget,
    request: &RemoteRequest,
    timeout: Option<Duration>,
    output: mpsc::Sender<OutputChunk>,
    cancel: &mut watch::Receiver<bool>,
) -> Result<RemoteOutcome, RemoteError> {
    if *cancel.borrow() {
        // Cancelled before anything started: nothing is contacted.
        return Ok(RemoteOutcome {
            end: RemoteEnd::Cancelled,
            killed: false,
            output: Vec::new(),
        });
    }
    let mut session = RemoteSession::start(masters, target, request, output).await?;
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    let expired = async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let stop = loop {
        if *cancel.borrow() {
            break RemoteEnd::Cancelled;
        }
        tokio::select! {
            result = session.wait() => {
                let exit = result?;
                return Ok(RemoteOutcome {
                    end: RemoteEnd::Exited(exit.code),
                    killed: exit.killed,
                    output: exit.output,
                });
            }
            () = &mut expired => break RemoteEnd::TimedOut(timeout.unwrap_or_default()),
            changed = cancel.changed() => {
                if changed.is_err() {
                    // Nobody can cancel any more: wait for the end alone.
                    let exit = session.wait().await?;
                    return Ok(RemoteOutcome {
                        end: RemoteEnd::Exited(exit.code),
                        killed: exit.killed,
                        output: exit.output,
                    });
                }
            }
        }
    };
    let exit = session.terminate(request.grace).await?;
    // As for a local step: once stopped, the stop is the outcome, even should the script
    // have ended by itself at the same moment.
    Ok(RemoteOutcome {
        end: stop,
        killed: exit.killed,
        output: exit.output,
    })
}
