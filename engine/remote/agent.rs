//! The host agent, engine side (`Agents`, `Agent`): one long-lived session per host per run,
//! through the host's control master, runs the perl program of `agent.pl`, which runs every
//! step the engine sends it as a job of its own (several at once), so a step costs the host
//! one fork and one exec instead of a new ssh session, a login shell and the wrapper. Started
//! on the host's first step (the first steps wait for the same start), shared by the host's
//! instances, closed at the end of the run before the masters. A host without perl, or where
//! the agent does not start, runs its steps in sessions of their own (`StepSession`) instead.
//!
//! A reader task takes the agent's records apart and hands each job its output and reports;
//! when the agent's session ends, every job still running fails as a dropped connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;

use super::agent_records::{JobControl, Record, RecordReader, control_record, run_record};
use super::closing::close_each;
use super::connection::{Connection, RecentLines};
use super::{RemoteExit, RemoteRequest, SshTarget};
use crate::process::{self, OutputChunk, OutputStream};

/// The agent's program, sent on the session's stdin at its start.
const PROGRAM: &str = include_str!("agent.pl");

/// How long the engine waits for an agent to say it runs before the host's steps go in
/// sessions of their own.
const START_TIME: Duration = Duration::from_secs(30);

/// How long `close_all` waits for an agent to leave once its stdin ended.
const CLOSE_TIME: Duration = Duration::from_secs(5);

/// How many chunks of a job's output (up to 64 KiB each) wait for its receiver at most.
const JOB_BACKLOG: usize = 256;

/// How much of the agent's stderr (perl's complaints) is kept to say why it died.
const STDERR_LIMIT: usize = 4096;

/// Set to `off`, every step runs in a session of its own (the transport before the agent):
/// for a host where the agent misbehaves, and to measure one against the other.
pub const AGENT_SWITCH: &str = "RUNBOOK_REMOTE_AGENT";

/// The sh program that starts the agent: the session's command is `exec sh -s`, so this is
/// read by `sh` from stdin. Perl reads the agent from a here-document (fd 3), so `sh` may
/// read ahead on stdin freely: nothing more comes until the agent says it is ready.
fn bootstrap() -> String {
    format!(
        "command -v perl >/dev/null 2>&1 || {{ printf 'RUNBOOK-AGENT none\\n'; exit 0; }}\n\
         exec perl /dev/fd/3 3<<'RUNBOOK_AGENT_END'\n{PROGRAM}\nRUNBOOK_AGENT_END\n"
    )
}

/// The agents of one run, by host name.
#[derive(Debug)]
pub(super) struct Agents {
    enabled: bool,
    slots: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    NotStarted,
    Running(Arc<Agent>),
    /// The host has no perl, or the agent would not start: sessions of their own.
    Unavailable,
}

impl Agents {
    pub fn new() -> Agents {
        Agents {
            enabled: std::env::var(AGENT_SWITCH).map_or(true, |value| value != "off"),
            slots: Mutex::default(),
        }
    }

    pub fn disabled() -> Agents {
        Agents {
            enabled: false,
            slots: Mutex::default(),
        }
    }

    /// The running agent of `target`, started now through `connection` unless one runs;
    /// `None` when the host's steps go in sessions of their own.
    pub async fn agent(
        &self,
        target: &SshTarget,
        connection: impl AsyncFnOnce() -> Result<Connection, super::RemoteError>,
    ) -> Result<Option<Arc<Agent>>, super::RemoteError> {
        if !self.enabled {
            return Ok(None);
        }
        let slot = self
            .lock_slots()
            .entry(target.name.clone())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Slot::Unavailable = &*slot {
            return Ok(None);
        }
        // The master first: one that died since (its agent's session with it, though the
        // agent's reader may not know yet) is opened again, and a new agent goes with it.
        let connection = connection().await?;
        if let Slot::Running(agent) = &*slot
            && agent.alive()
            && agent.target == *target
            && Arc::ptr_eq(&agent.recent, &connection.recent)
        {
            return Ok(Some(Arc::clone(agent)));
        }
        if let Slot::Running(agent) = std::mem::take(&mut *slot) {
            agent.close().await;
        }
        match Agent::start(target, &connection).await {
            Start::Running(agent) => {
                let agent = Arc::from(agent);
                *slot = Slot::Running(Arc::clone(&agent));
                Ok(Some(agent))
            }
            Start::Unavailable => {
                *slot = Slot::Unavailable;
                Ok(None)
            }
            Start::Failed => Ok(None),
        }
    }

    /// The pid of the local `ssh` of host `name`'s running agent.
    pub async fn pid(&self, name: &str) -> Option<u32> {
        let slot = self.lock_slots().get(name).cloned()?;
        let slot = slot.lock().await;
        match &*slot {
            Slot::Running(agent) if agent.alive() => Some(agent.pid),
            _ => None,
        }
    }

    /// Ends every agent (the end of its stdin: it stops what still runs, then exits) and
    /// waits for them to leave; kills the `ssh` of one that does not.
    pub async fn close_all(&self) {
        let slots: Vec<_> = self.lock_slots().values().cloned().collect();
        close_each(slots, |slot| match std::mem::take(slot) {
            Slot::Running(agent) => Some(async move { agent.close().await }),
            _ => None,
        })
        .await;
    }

    fn lock_slots(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<tokio::sync::Mutex<Slot>>>> {
        // A map of handles: still consistent after a panic elsewhere.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Start {
    Running(Box<Agent>),
    /// Never for this host in this run.
    Unavailable,
    /// Not now (the connection ended while it started): the next step tries again.
    Failed,
}

/// An agent running on a host.
#[derive(Debug)]
pub(super) struct Agent {
    target: SshTarget,
    /// The local `ssh` of its session.
    pid: u32,
    child: Mutex<Option<Child>>,
    /// To the writer task; `None` once closed (the end of the agent's stdin).
    commands: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    jobs: Arc<Mutex<Jobs>>,
    next_id: AtomicU64,
    /// The master's lines, to say why a connection ended.
    pub(super) recent: RecentLines,
    /// What the agent printed on stderr: why it died, when it did.
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// The jobs the reader hands records to.
#[derive(Debug, Default)]
struct Jobs {
    sinks: HashMap<u64, Sink>,
    /// The agent's session ended: no job can start any more.
    ended: bool,
}

#[derive(Debug)]
struct Sink {
    /// Bounded (`JOB_BACKLOG`): a job whose output is not read fast enough holds up the
    /// reader, as a full pipe would, rather than filling the engine's memory.
    output: mpsc::Sender<OutputChunk>,
    events: mpsc::UnboundedSender<JobEvent>,
}

/// The agent's session ended before the job could be sent.
/// What the reader hands a job besides its output.
#[derive(Debug)]
pub(super) enum JobEvent {
    /// The job's shell runs as this process (and group) on the host.
    Started(u32),
    /// The host could not start it.
    Failed(String),
    Exited(RemoteExit),
    /// The agent's session ended first.
    Lost,
}

/// A job the agent was asked to run: its id, what the reader hands it, and the task that
/// hands its output to the caller (see `AgentJob`).
#[derive(Debug)]
pub(super) struct StartedJob {
    pub id: u64,
    pub events: mpsc::UnboundedReceiver<JobEvent>,
    pub forward: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
pub(super) struct AgentGone;

impl Agent {
    async fn start(target: &SshTarget, connection: &Connection) -> Start {
        let mut command = connection.session(target);
        let Ok(mut child) = command.spawn() else {
            return Start::Failed;
        };
        let Some(pid) = child.id() else {
            return Start::Failed;
        };
        // A killed engine leaves no agent session behind: the watchdog stops its group. Until
        // the agent runs, the registration is undone should this start be dropped (an
        // opening ahead stopped by `close_all`; the child is killed then, `kill_on_drop`).
        process::register(pid);
        let registration = Registration(pid);
        let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Start::Failed;
        };
        let said = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(keep_stderr(stderr, Arc::clone(&said)));
        let mut reader = RecordReader::default();
        let greeting = async {
            stdin.write_all(bootstrap().as_bytes()).await.ok()?;
            stdin.flush().await.ok()?;
            let mut buffer = vec![0; 4096];
            loop {
                let length = stdout.read(&mut buffer).await.ok()?;
                if length == 0 {
                    return None;
                }
                let mut records = Vec::new();
                let read = reader.push(&buffer[..length], &mut records);
                if let Some(record) = records.into_iter().next() {
                    return Some(record);
                }
                read.ok()?;
            }
        };
        let greeting = tokio::time::timeout(START_TIME, greeting).await;
        match greeting {
            Ok(Some(Record::Ready)) => {}
            other => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let complained = !lock(&said).is_empty();
                return match other {
                    // No perl, or a perl that cannot run the agent (it said why on
                    // stderr), or a host that never answered: sessions of their own.
                    Ok(Some(Record::NoAgent)) | Err(_) => Start::Unavailable,
                    _ if complained => Start::Unavailable,
                    _ => Start::Failed,
                };
            }
        }
        // From here the agent's own `Drop` unregisters it.
        std::mem::forget(registration);
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_commands(stdin, receiver));
        let jobs = Arc::new(Mutex::new(Jobs::default()));
        tokio::spawn(read_records(stdout, reader, Arc::clone(&jobs)));
        Start::Running(Box::new(Agent {
            target: target.clone(),
            pid,
            child: Mutex::new(Some(child)),
            commands: Mutex::new(Some(commands)),
            jobs,
            next_id: AtomicU64::new(1),
            recent: connection.recent.clone(),
            stderr: said,
        }))
    }

    fn alive(&self) -> bool {
        !lock(&self.jobs).ended && lock(&self.commands).is_some()
    }

    /// Sends `request` to run as a new job; its output goes to `output`.
    pub fn start_job(
        self: &Arc<Self>,
        request: &RemoteRequest,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<StartedJob, AgentGone> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (chunks, mut chunk_receiver) = mpsc::channel(JOB_BACKLOG);
        let (events, event_receiver) = mpsc::unbounded_channel();
        {
            let mut jobs = lock(&self.jobs);
            if jobs.ended {
                return Err(AgentGone);
            }
            jobs.sinks.insert(
                id,
                Sink {
                    output: chunks,
                    events,
                },
            );
        }
        if !self.send(run_record(id, request, &self.target.name)) {
            lock(&self.jobs).sinks.remove(&id);
            return Err(AgentGone);
        }
        // The reader waits for a job's receiver only once `JOB_BACKLOG` chunks wait (a slow
        // one holds up the host's other jobs then); this task waits for it, as a pipe would.
        let forward = tokio::spawn(async move {
            let mut receiving = true;
            while let Some(chunk) = chunk_receiver.recv().await {
                if receiving && output.send(chunk).await.is_err() {
                    // Nobody reads the output any more; the reports still matter.
                    receiving = false;
                }
            }
        });
        Ok(StartedJob {
            id,
            events: event_receiver,
            forward,
        })
    }

    /// Asks something of job `id`; false when the agent's session has ended.
    pub fn control(&self, id: u64, control: JobControl) -> bool {
        self.send(control_record(id, control))
    }

    /// The engine no longer waits for job `id`: the agent stops it (SIGTERM, its grace,
    /// SIGKILL) if it still runs, and its reports are dropped.
    pub fn abandon(&self, id: u64) {
        let gone = lock(&self.jobs).sinks.remove(&id).is_some();
        if gone {
            self.control(id, JobControl::Abandon);
        }
    }

    fn send(&self, record: Vec<u8>) -> bool {
        lock(&self.commands)
            .as_ref()
            .is_some_and(|commands| commands.send(record).is_ok())
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The last line the agent printed on stderr, if any: why it died.
    pub fn complaint(&self) -> Option<String> {
        String::from_utf8_lossy(&lock(&self.stderr))
            .lines()
            .map(|line| line.trim().to_string())
            .rfind(|line| !line.is_empty())
    }

    /// The end of the agent's stdin: it stops what still runs (each job's grace), then
    /// exits. Waits for its `ssh` to leave, kills it if it does not.
    async fn close(&self) {
        lock(&self.commands).take();
        let child = lock(&self.child).take();
        if let Some(mut child) = child
            && tokio::time::timeout(CLOSE_TIME, child.wait())
                .await
                .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        process::unregister(self.pid);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Dropping the child kills the local `ssh` (`kill_on_drop`): the agent sees its
        // stdin end and stops its jobs.
        process::unregister(self.pid);
    }
}

/// A local `ssh` registered with the watchdog, unregistered when dropped.
struct Registration(u32);

impl Drop for Registration {
    fn drop(&mut self) {
        process::unregister(self.0);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: still consistent after a panic elsewhere.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes the commands to the agent's stdin; when they end (the agent is closed), so does
/// its stdin.
async fn write_commands(mut stdin: ChildStdin, mut commands: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(record) = commands.recv().await {
        if stdin.write_all(&record).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Reads the agent's records and hands them to their jobs (the output first: a job's end
/// comes after all of it); when the session ends (or the stream is not the agent's any
/// more), every job still there is lost.
async fn read_records(mut stdout: ChildStdout, mut reader: RecordReader, jobs: Arc<Mutex<Jobs>>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let length = match stdout.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(length) => length,
        };
        let mut records = Vec::new();
        let read = reader.push(&buffer[..length], &mut records);
        for record in records {
            if let Record::Output { id, stderr, bytes } = record {
                let sender = lock(&jobs).sinks.get(&id).map(|sink| sink.output.clone());
                if let Some(sender) = sender {
                    let stream = if stderr {
                        OutputStream::Stderr
                    } else {
                        OutputStream::Stdout
                    };
                    // An error: nobody waits for that job any more.
                    let _ = sender.send(OutputChunk { stream, bytes }).await;
                }
            } else {
                dispatch(&mut lock(&jobs), record);
            }
        }
        if read.is_err() {
            break;
        }
    }
    let mut jobs = lock(&jobs);
    jobs.ended = true;
    for (_, sink) in jobs.sinks.drain() {
        let _ = sink.events.send(JobEvent::Lost);
    }
}

fn dispatch(jobs: &mut Jobs, record: Record) {
    match record {
        Record::Ready | Record::NoAgent => {}
        Record::Started { id, pid } => {
            if let Some(sink) = jobs.sinks.get(&id) {
                let _ = sink.events.send(JobEvent::Started(pid));
            }
        }
        // Sent by the reader itself, which may wait for the job's receiver.
        Record::Output { .. } => {}
        Record::Failed { id, message } => {
            if let Some(sink) = jobs.sinks.remove(&id) {
                let _ = sink.events.send(JobEvent::Failed(message));
            }
        }
        Record::Exited {
            id,
            code,
            stopped,
            killed,
            output,
        } => {
            if let Some(sink) = jobs.sinks.remove(&id) {
                let _ = sink.events.send(JobEvent::Exited(RemoteExit {
                    code,
                    stopped,
                    killed,
                    output,
                }));
            }
        }
    }
}

/// Keeps the start of the agent's stderr (read to its end, so the pipe never fills).
async fn keep_stderr(mut stderr: tokio::process::ChildStderr, said: Arc<Mutex<Vec<u8>>>) {
    let mut buffer = vec![0; 4096];
    while let Ok(length) = stderr.read(&mut buffer).await {
        if length == 0 {
            return;
        }
        let mut said = lock(&said);
        if said.len() < STDERR_LIMIT {
            said.extend_from_slice(&buffer[..length]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_reads_the_agent_from_a_here_document_it_cannot_end_early() {
        let bootstrap = bootstrap();
        assert!(bootstrap.starts_with("command -v perl "));
        assert_eq!(bootstrap.matches("\nRUNBOOK_AGENT_END\n").count(), 1);
        assert!(bootstrap.ends_with("\nRUNBOOK_AGENT_END\n"));
    }
}
