//! Runs one command of a step, compensation, hook or probe to its end: output streamed as
//! masked lines, a timeout, and cancellation that terminates the process group.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::emitter::{Durable, Emitter};
use crate::events::{Event, Phase, Stream};
use crate::process::{CommandSpec, ExitOutcome, OutputChunk, OutputStream, RunningProcess};
use crate::secrets::MaskingStream;

/// Lines kept for the failure summary.
pub(crate) const TAIL_LINES: usize = 20;
/// A line longer than this is emitted in pieces, so memory stays bounded.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// How hard to stop running commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CancelLevel {
    None,
    /// SIGTERM, the grace period, then SIGKILL.
    Graceful,
    /// SIGKILL now (a second Ctrl-C).
    Immediate,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
    Cancelled,
    SpawnFailed(String),
}

impl CommandEnd {
    pub fn succeeded(&self) -> bool {
        *self == CommandEnd::Exited(0)
    }

    pub fn describe(&self) -> String {
        match self {
            CommandEnd::Exited(code) => format!("exit code {code}"),
            CommandEnd::Signaled(signal) => format!("killed by signal {signal}"),
            CommandEnd::TimedOut(limit) => {
                format!("timed out after {}", humantime::format_duration(*limit))
            }
            CommandEnd::Cancelled => "cancelled".into(),
            CommandEnd::SpawnFailed(message) => format!("could not start: {message}"),
        }
    }
}

/// A command's end and its last output lines (masked).
#[derive(Debug, Clone)]
pub(crate) struct CommandResult {
    pub end: CommandEnd,
    pub tail: Vec<String>,
}

/// Which step and phase the output belongs to, for events.
#[derive(Debug, Clone)]
pub(crate) struct OutputLabel {
    pub step: String,
    pub phase: Phase,
    /// Probes run commands too, but their output belongs in the probe message, not the log.
    pub emit_lines: bool,
}

/// Splits a masked byte stream into lines for events and the tail.
pub(super) struct LineAssembler {
    masking: Option<MaskingStream>,
    partial: Vec<u8>,
    stream: Stream,
}

impl LineAssembler {
    pub(super) fn new(emitter: &Emitter, stream: Stream) -> LineAssembler {
        LineAssembler {
            masking: Some(emitter.masker().stream()),
            partial: Vec::new(),
            stream,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8], sink: &mut impl FnMut(Stream, String)) {
        let masked = match self.masking.as_mut() {
            Some(masking) => masking.push(bytes),
            None => bytes.to_vec(),
        };
        self.split(&masked, sink);
    }

    fn split(&mut self, bytes: &[u8], sink: &mut impl FnMut(Stream, String)) {
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                sink(self.stream, text(&line));
            } else {
                self.partial.push(byte);
                if self.partial.len() >= MAX_LINE_BYTES {
                    let line = std::mem::take(&mut self.partial);
                    sink(self.stream, text(&line));
                }
            }
        }
    }

    pub(super) fn finish(mut self, sink: &mut impl FnMut(Stream, String)) {
        if let Some(masking) = self.masking.take() {
            let rest = masking.finish();
            self.split(&rest, sink);
        }
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            sink(self.stream, text(&line));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    let line = String::from_utf8_lossy(bytes);
    line.strip_suffix('\r').unwrap_or(&line).to_string()
}

/// Runs `spec` to its end. `timeout` bounds it; a change of `cancel` terminates it.
/// `durable`: what is about to happen is in the journal already.
pub(crate) async fn run_command(
    spec: &CommandSpec,
    label: &OutputLabel,
    timeout: Option<Duration>,
    grace: Duration,
    durable: Durable<'_>,
    cancel: &mut watch::Receiver<CancelLevel>,
    stdout_capture: Option<&mut Vec<u8>>,
) -> CommandResult {
    let emitter = durable.emitter();
    let (sender, mut receiver) = mpsc::channel::<OutputChunk>(64);
    let mut process = match RunningProcess::spawn(spec, sender) {
        Ok(process) => process,
        Err(error) => {
            let mut message = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(inner) = cause {
                message.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            return CommandResult {
                end: CommandEnd::SpawnFailed(emitter.mask(&message)),
                tail: Vec::new(),
            };
        }
    };
    let _running = emitter.command_running();
    if label.emit_lines {
        // Recorded so that `resume` can find and stop a process group that outlived a killed
        // engine; the start time tells it apart from a later process given the same id.
        emitter.emit(Event::ProcessStarted {
            step: label.step.clone(),
            phase: label.phase,
            pid: process.pid(),
            start_time: process.start_time(),
        });
    }
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut stdout = LineAssembler::new(emitter, Stream::Stdout);
    let mut stderr = LineAssembler::new(emitter, Stream::Stderr);
    let mut capture = stdout_capture;
    let mut on_line = |stream: Stream, line: String| {
        if label.emit_lines {
            emitter.emit(Event::StepOutput {
                step: label.step.clone(),
                phase: label.phase,
                stream,
                line: line.clone(),
            });
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let mut handle_chunk = |chunk: OutputChunk, on_line: &mut dyn FnMut(Stream, String)| {
        let mut sink = |stream: Stream, line: String| on_line(stream, line);
        match chunk.stream {
            OutputStream::Stdout => {
                if let Some(capture) = capture.as_deref_mut() {
                    // Probes compare stdout; keep the last 64 KiB of it.
                    capture.extend_from_slice(&chunk.bytes);
                    if capture.len() > 64 * 1024 {
                        let excess = capture.len() - 64 * 1024;
                        capture.drain(..excess);
                    }
                }
                stdout.push(&chunk.bytes, &mut sink);
            }
            OutputStream::Stderr => stderr.push(&chunk.bytes, &mut sink),
        }
    };
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    // Time the engine spends stopped (SIGSTOP, Ctrl-Z) does not count: the deadline moves by it.
    let stopped_at_start = deadline.map(|_| super::stopped_time::stopped_total());
    let sleep_until = tokio::time::sleep_until(
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400)),
    );
    tokio::pin!(sleep_until);
    let mut stop: Option<CommandEnd> = None;
    // The main process had exited when the deadline fired: its exit came first.
    let mut exited_in_time = false;
    // Once both pipes are done the channel is closed: receiving again would only spin.
    let mut output_open = true;
    // Once every sender of the cancel watch is gone, `changed` is ready at once for ever.
    let mut watch_cancel = true;
    let outcome = loop {
        if *cancel.borrow() != CancelLevel::None && stop.is_none() {
            stop = Some(CommandEnd::Cancelled);
            break None;
        }
        tokio::select! {
            outcome = process.wait() => break Some(outcome),
            chunk = receiver.recv(), if output_open => {
                match chunk {
                    Some(chunk) => handle_chunk(chunk, &mut on_line),
                    None => output_open = false,
                }
            }
            () = &mut sleep_until, if deadline.is_some() && !exited_in_time => {
                if process.has_exited() {
                    exited_in_time = true;
                    continue;
                }
                if let (Some(deadline), Some(at_start)) = (deadline, stopped_at_start) {
                    let stopped = super::stopped_time::stopped_total().saturating_sub(at_start);
                    let moved = deadline + stopped;
                    if moved > tokio::time::Instant::now() {
                        sleep_until.as_mut().reset(moved);
                        continue;
                    }
                }
                stop = Some(CommandEnd::TimedOut(timeout.unwrap_or_default()));
                break None;
            }
            changed = cancel.changed(), if watch_cancel => {
                if changed.is_err() {
                    // Nobody can cancel any more: wait for the end alone (blocking here
                    // would stop waiting for the process and its output too).
                    watch_cancel = false;
                }
            }
        }
    };
    let end = match outcome {
        Some(ExitOutcome::Exited(code)) => CommandEnd::Exited(code),
        Some(ExitOutcome::Signaled(signal)) => CommandEnd::Signaled(signal),
        None => {
            let mut kill_now = *cancel.borrow() == CancelLevel::Immediate;
            loop {
                let grace = if kill_now { Duration::ZERO } else { grace };
                let escalate = {
                    let terminate = process.terminate(grace);
                    tokio::pin!(terminate);
                    loop {
                        tokio::select! {
                            _ = &mut terminate => break false,
                            // The output may have ended before the process did (a script
                            // that closed its pipes and ignores SIGTERM): then `recv` is
                            // ready at once for ever and would spin through the grace.
                            chunk = receiver.recv(), if output_open => match chunk {
                                Some(chunk) => handle_chunk(chunk, &mut on_line),
                                None => output_open = false,
                            },
                            changed = cancel.changed(), if !kill_now && watch_cancel => {
                                match changed {
                                    Err(_) => watch_cancel = false,
                                    Ok(()) if *cancel.borrow() == CancelLevel::Immediate => break true,
                                    Ok(()) => {}
                                }
                            }
                        }
                    }
                };
                if !escalate {
                    break;
                }
                // A second Ctrl-C: do not wait out the grace period.
                kill_now = true;
                let _ = process.signal_group(nix::sys::signal::Signal::SIGKILL);
            }
            stop.unwrap_or(CommandEnd::Cancelled)
        }
    };
    while let Some(chunk) = receiver.recv().await {
        handle_chunk(chunk, &mut on_line);
    }
    stdout.finish(&mut on_line);
    stderr.finish(&mut on_line);
    CommandResult {
        end,
        tail: tail.into_iter().collect(),
    }
}
