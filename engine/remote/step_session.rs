//! One instance running on its host in a session of its own (`StepSession`), the transport
//! of a host without the agent (`agent.rs`): an `ssh` session through the host's control master whose command is the fixed bootstrap, the wrapper program and the script on
//! its stdin, output streamed as chunks like a local step's, and the end told from the
//! wrapper's reports: the script's own exit status, or a connection that ended first.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connection::{self, Connection};
use super::frames::{Frame, FrameScanner};
use super::stop_deadlines::{StopDeadlines, StopSignal, StoppableScript};
use super::wrapper::{self, RemoteRequest};
use super::{ControlMasters, RemoteError, RemoteExit, SshTarget};
use crate::process::{OutputChunk, OutputStream, pump};

/// After `ssh` exited, how long the output is still read at most (see `wait`); unlike a
/// local step's `OUTPUT_DRAIN`, no process of the step can hold these pipes.
const READERS_AFTER_EXIT: Duration = Duration::from_secs(10);

/// How much of what a session prints before its script starts is kept to say why it failed.
const EARLY_STDERR_LIMIT: usize = 4096;

/// What the engine asks of the wrapper once the script runs, a line each on its stdin.
#[derive(Debug, Clone, Copy)]
enum Control {
    /// SIGTERM to the group (the engine times the grace).
    Terminate,
    /// SIGKILL to the group now.
    Kill,
}

/// A script started on a host. Receive output from the channel given to `start` while
/// waiting (`tokio::select!` over `wait` and `recv`), as for a `RunningProcess`. Dropping it
/// before the end kills the local `ssh`, which ends the session: the wrapper then stops the
/// script's group on the host (SIGTERM, the grace, SIGKILL).
#[derive(Debug)]
pub(super) struct StepSession {
    target: SshTarget,
    connection: Connection,
    /// How many lines the master had printed when the session began.
    master_lines_before: usize,
    /// What the session printed on stderr before the script started: `ssh`'s own complaint
    /// when the session could not be opened.
    early_stderr: Arc<Mutex<Vec<u8>>>,
    child: Child,
    ssh_exited: bool,
    /// Dropping it closes the session's stdin: the wrapper stops the script.
    controls: Option<mpsc::UnboundedSender<Control>>,
    frames: mpsc::UnboundedReceiver<Frame>,
    readers: Vec<JoinHandle<()>>,
    stop_readers: watch::Sender<bool>,
    remote_pid: Option<u32>,
    finished: Option<super::frames::Finish>,
    host_failure: Option<String>,
    result: Option<Result<RemoteExit, RemoteError>>,
    stopping: StopDeadlines,
    /// A control asked for before the wrapper reported the start, sent then: until it runs,
    /// the host's shell may still be reading its program from stdin, ahead, and would take
    /// the line for its own.
    deferred: Option<Control>,
}

impl StepSession {
    /// Connects (through the host's master, opened if needed), starts the session and sends
    /// the program. Returns once the session is under way, not when the script started.
    pub async fn start(
        masters: &ControlMasters,
        target: &SshTarget,
        request: &RemoteRequest,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<StepSession, RemoteError> {
        let nonce = wrapper::nonce();
        let program = wrapper::program(request, &target.name, &nonce)
            .map_err(|message| RemoteError::request(target, message))?;
        let connection = masters.connect(target).await?;
        let master_lines_before = connection::lock(&connection.recent).total();
        let early_stderr = Arc::default();

        let mut command = connection.session(target);
        let mut child = command
            .spawn()
            .map_err(|error| RemoteError::spawn(target, &error))?;

        let (controls, control_receiver) = mpsc::unbounded_channel();
        let (frame_sender, frames) = mpsc::unbounded_channel();
        let (stop_readers, stop) = watch::channel(false);
        let mut readers = Vec::with_capacity(3);
        if let Some(stdin) = child.stdin.take() {
            // Not a reader, but it ends with the session; never waited for.
            tokio::spawn(feed(stdin, program.into_bytes(), control_receiver));
        }
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(pump(
                stdout,
                OutputStream::Stdout,
                output.clone(),
                stop.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(scan_stderr(
                stderr,
                FrameScanner::new(&nonce),
                output,
                frame_sender,
                Arc::clone(&early_stderr),
                stop,
            )));
        }
        Ok(StepSession {
            target: target.clone(),
            connection,
            master_lines_before,
            early_stderr,
            child,
            ssh_exited: false,
            controls: Some(controls),
            frames,
            readers,
            stop_readers,
            remote_pid: None,
            finished: None,
            host_failure: None,
            result: None,
            stopping: StopDeadlines::default(),
            deferred: None,
        })
    }

    /// The script's process (and group) id on the host, once the wrapper reported it.
    pub fn remote_pid(&mut self) -> Option<u32> {
        while let Ok(frame) = self.frames.try_recv() {
            self.record(frame);
        }
        self.remote_pid
    }

    /// Waits for the session to end and tells how the script ended. Cancel-safe, and once
    /// finished it returns the same result again at once.
    pub async fn wait(&mut self) -> Result<RemoteExit, RemoteError> {
        if let Some(result) = &self.result {
            return result.clone();
        }
        while !self.ssh_exited {
            tokio::select! {
                Some(frame) = self.frames.recv() => self.record(frame),
                _ = self.child.wait() => self.ssh_exited = true,
            }
        }
        // Once ssh has exited nothing holds the pipes any more, so they end soon; only a slow
        // receiver of the output delays that, and the wrapper's report comes last.
        let deadline = Instant::now() + READERS_AFTER_EXIT;
        while let Some(reader) = self.readers.last_mut() {
            if tokio::time::timeout_at(deadline, reader).await.is_err() {
                break;
            }
            self.readers.pop();
        }
        self.stop_readers.send_replace(true);
        self.readers.clear();
        while let Ok(frame) = self.frames.try_recv() {
            self.record(frame);
        }
        let result = if let Some(finish) = self.finished.take() {
            Ok(RemoteExit {
                code: finish.code,
                stopped: finish.stopped,
                killed: finish.killed,
                output: finish.output,
            })
        } else if let Some(message) = self.host_failure.take() {
            Err(RemoteError::host(&self.target, message))
        } else {
            let master_said =
                connection::lock(&self.connection.recent).since(self.master_lines_before);
            let session_said = String::from_utf8_lossy(
                &self
                    .early_stderr
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            )
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>();
            let cause = master_said
                .into_iter()
                .chain(if self.remote_pid.is_none() {
                    session_said
                } else {
                    Vec::new()
                })
                .map(|line| line.trim().trim_end_matches('.').to_string())
                .rfind(|line| !line.is_empty());
            Err(RemoteError::dropped(
                &self.target,
                self.remote_pid.is_some(),
                cause,
            ))
        };
        self.result = Some(result.clone());
        result
    }

    fn send(&mut self, control: Control) {
        if self.remote_pid.is_none() {
            // A kill supersedes a terminate.
            self.deferred = match (self.deferred, control) {
                (Some(Control::Kill), _) | (_, Control::Kill) => Some(Control::Kill),
                _ => Some(Control::Terminate),
            };
            return;
        }
        if let Some(controls) = &self.controls {
            let _ = controls.send(control);
        }
    }

    fn record(&mut self, frame: Frame) {
        match frame {
            Frame::Started(pid) => {
                self.remote_pid = Some(pid);
                if let Some(control) = self.deferred.take() {
                    self.send(control);
                }
            }
            Frame::Failed(message) => self.host_failure = Some(message),
            Frame::Finished(finish) => {
                self.finished = Some(finish);
                // The wrapper stopped reading its stdin before it reported; the end of stdin
                // lets the session close without waiting on the engine's side.
                self.controls = None;
            }
        }
    }
}

/// Writes the program, then waits for controls; the end of the controls closes stdin.
async fn feed(
    mut stdin: ChildStdin,
    program: Vec<u8>,
    mut controls: mpsc::UnboundedReceiver<Control>,
) {
    if stdin.write_all(&program).await.is_err() || stdin.flush().await.is_err() {
        return;
    }
    while let Some(control) = controls.recv().await {
        let line: &[u8] = match control {
            Control::Terminate => b"t\n",
            Control::Kill => b"k\n",
        };
        if stdin.write_all(line).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Reads the session's stderr: the wrapper's frames go to `frames`, the rest to `output`.
async fn scan_stderr(
    mut stderr: tokio::process::ChildStderr,
    mut scanner: FrameScanner,
    output: mpsc::Sender<OutputChunk>,
    frames: mpsc::UnboundedSender<Frame>,
    early_stderr: Arc<Mutex<Vec<u8>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut started = false;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = tokio::select! {
            biased;
            read = stderr.read(&mut buffer) => read,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let length = match read {
            Ok(0) | Err(_) => break,
            Ok(length) => length,
        };
        let mut found = Vec::new();
        let passed = scanner.push(&buffer[..length], &mut found);
        if !started && !passed.is_empty() {
            let mut early = early_stderr.lock().unwrap_or_else(PoisonError::into_inner);
            if early.len() < EARLY_STDERR_LIMIT {
                early.extend_from_slice(&passed);
            }
        }
        for frame in found {
            started |= matches!(frame, Frame::Started(_));
            let _ = frames.send(frame);
        }
        if !passed.is_empty() {
            let chunk = OutputChunk {
                stream: OutputStream::Stderr,
                bytes: passed,
            };
            if output.send(chunk).await.is_err() {
                // Nobody reads the output any more; the frames still matter.
                continue;
            }
        }
    }
    let rest = scanner.finish();
    if !rest.is_empty() {
        let _ = output
            .send(OutputChunk {
                stream: OutputStream::Stderr,
                bytes: rest,
            })
            .await;
    }
}

impl StoppableScript for StepSession {
    type End = Result<RemoteExit, RemoteError>;

    fn deadlines(&mut self) -> &mut StopDeadlines {
        &mut self.stopping
    }

    fn signal(&mut self, signal: StopSignal) {
        self.send(match signal {
            StopSignal::Terminate => Control::Terminate,
            StopSignal::Kill => Control::Kill,
        });
    }

    fn wait_end(&mut self) -> impl Future<Output = Self::End> {
        self.wait()
    }

    /// The local `ssh` is killed: the connection counts as dropped.
    fn give_up(&mut self) {
        let _ = self.child.start_kill();
    }
}
