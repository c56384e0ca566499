//! Runs one command of an instance (its script or its compensation) on the instance's host
//! through the run's control master: output streamed as masked lines like a local command's,
//! a timeout and cancellation that stop the script's process group on the host (SIGTERM,
//! grace, SIGKILL; at once on a second signal), and `RUNBOOK_OUTPUT` handed back.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::command::{CancelLevel, CommandEnd, CommandResult, LineAssembler, OutputLabel};
use super::emitter::Durable;
use super::fleet::Fleet;
use crate::events::{Event, Stream};
use crate::process::{OutputChunk, OutputStream};
use crate::remote::{RemoteError, RemoteRequest, RemoteSession};

/// How a remote command ended: as a local one would, what it wrote to `$RUNBOOK_OUTPUT`, and
/// the transport's failure, if that is how it ended.
#[derive(Debug)]
pub(crate) struct RemoteResult {
    pub result: CommandResult,
    pub output: Vec<u8>,
    pub error: Option<RemoteError>,
}

impl RemoteResult {
    /// Why it failed, in words: the transport's failure names host, address and cause.
    pub fn describe(&self) -> String {
        match &self.error {
            Some(error) => error.to_string(),
            None => self.result.end.describe(),
        }
    }

    /// The host was never reached or never started the script: nothing to undo.
    pub fn never_started(&self) -> bool {
        self.error
            .as_ref()
            .is_some_and(|error| !error.script_may_have_run())
    }
}

/// Runs `request` on host `host` of `fleet`.
pub(crate) async fn run_remote_command(
    fleet: &Fleet,
    host: usize,
    request: &RemoteRequest,
    label: &OutputLabel,
    timeout: Option<Duration>,
    durable: Durable<'_>,
    cancel: &mut watch::Receiver<CancelLevel>,
) -> RemoteResult {
    let emitter = durable.emitter();
    let ended = |end: CommandEnd, error: Option<RemoteError>| RemoteResult {
        result: CommandResult {
            end,
            tail: Vec::new(),
        },
        output: Vec::new(),
        error,
    };
    if *cancel.borrow() != CancelLevel::None {
        return ended(CommandEnd::Cancelled, None);
    }
    fleet.open_masters_ahead();
    let target = &fleet.targets[host];
    let (sender, mut receiver) = mpsc::channel::<OutputChunk>(64);
    let mut session = match RemoteSession::start(&fleet.masters, target, request, sender).await {
        Ok(session) => session,
        Err(error) => {
            let message = emitter.mask(&error.to_string());
            return ended(CommandEnd::SpawnFailed(message), Some(error));
        }
    };
    let mut tail: VecDeque<String> = VecDeque::with_capacity(super::command::TAIL_LINES);
    let mut stdout = LineAssembler::new(emitter, Stream::Stdout);
    let mut stderr = LineAssembler::new(emitter, Stream::Stderr);
    let mut on_line = |stream: Stream, line: String| {
        if label.emit_lines {
            emitter.emit(Event::StepOutput {
                step: label.step.clone(),
                phase: label.phase,
                stream,
                line: line.clone(),
            });
        }
        if tail.len() == super::command::TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let mut handle = |chunk: OutputChunk, on_line: &mut dyn FnMut(Stream, String)| {
        let mut sink = |stream: Stream, line: String| on_line(stream, line);
        match chunk.stream {
            OutputStream::Stdout => stdout.push(&chunk.bytes, &mut sink),
            OutputStream::Stderr => stderr.push(&chunk.bytes, &mut sink),
        }
    };
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    // Time the engine spends stopped (SIGSTOP, Ctrl-Z) does not count, as for a local
    // command: the deadline moves by it (the script on the host went on meanwhile).
    let stopped_at_start = super::stopped_time::stopped_total();
    let expired = tokio::time::sleep_until(
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400)),
    );
    tokio::pin!(expired);
    let mut stop: Option<CommandEnd> = None;
    let mut finished = None;
    let mut output_open = true;
    let mut watch_cancel = true;
    while finished.is_none() && stop.is_none() {
        if *cancel.borrow() != CancelLevel::None {
            stop = Some(CommandEnd::Cancelled);
            break;
        }
        tokio::select! {
            result = session.wait() => finished = Some(result),
            // Once the output ended (ssh closed its pipes), `recv` is ready at once for ever:
            // left in, it would spin until the exit of ssh is seen.
            chunk = receiver.recv(), if output_open => match chunk {
                Some(chunk) => handle(chunk, &mut on_line),
                None => output_open = false,
            },
            () = &mut expired, if deadline.is_some() => {
                let stopped = super::stopped_time::stopped_total().saturating_sub(stopped_at_start);
                match deadline.map(|deadline| deadline + stopped) {
                    Some(moved) if moved > tokio::time::Instant::now() => {
                        expired.as_mut().reset(moved);
                    }
                    _ => stop = Some(CommandEnd::TimedOut(timeout.unwrap_or_default())),
                }
            }
            changed = cancel.changed(), if watch_cancel => {
                if changed.is_err() {
                    // Nobody can cancel any more: wait for the end alone.
                    watch_cancel = false;
                }
            }
        }
    }
    let result = match finished {
        Some(result) => result,
        None => {
            // SIGTERM, the grace, SIGKILL; a second Ctrl-C (now or during the grace) sends
            // SIGKILL at once.
            if *cancel.borrow() == CancelLevel::Immediate {
                session.kill_now();
                watch_cancel = false;
            }
            loop {
                tokio::select! {
                    result = session.terminate(request.grace) => break result,
                    chunk = receiver.recv(), if output_open => match chunk {
                        Some(chunk) => handle(chunk, &mut on_line),
                        None => output_open = false,
                    },
                    changed = cancel.changed(), if watch_cancel => {
                        if changed.is_err() {
                            watch_cancel = false;
                        } else if *cancel.borrow() == CancelLevel::Immediate {
                            session.kill_now();
                            watch_cancel = false;
                        }
                    }
                }
            }
        }
    };
    drop(session);
    while let Some(chunk) = receiver.recv().await {
        handle(chunk, &mut on_line);
    }
    stdout.finish(&mut on_line);
    stderr.finish(&mut on_line);
    let (end, output, error) = match (result, stop) {
        (Ok(exit), Some(stop)) => (stop, exit.output, None),
        (Ok(exit), None) => (CommandEnd::Exited(exit.code), exit.output, None),
        (Err(_), Some(stop)) => (stop, Vec::new(), None),
        (Err(error), None) => {
            let end = CommandEnd::SpawnFailed(emitter.mask(&error.to_string()));
            (end, Vec::new(), Some(error))
        }
    };
    RemoteResult {
        result: CommandResult {
            end,
            tail: tail.into_iter().collect(),
        },
        output,
        error,
    }
}
