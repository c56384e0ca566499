//! One instance running on its host (`RemoteSession`): a job of the host's agent when it has
//! one (`agent.rs`: one shared session per host, a fork and an exec per step), else a session
//! of its own (`step_session.rs`: the wrapper on a new `ssh` session). Either way the output
//! streams as chunks like a local step's, and the end is the script's own exit status or a
//! connection that ended first.

use std::time::Duration;

use tokio::sync::mpsc;

use super::agent_job::AgentJob;
use super::step_session::StepSession;
use super::stop_deadlines::StoppableScript as _;
use super::{ControlMasters, RemoteError, RemoteRequest, SshTarget, wrapper};
use crate::process::OutputChunk;

/// How the script ended on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteExit {
    /// The script's exit status as the host's shell reports it (128 + N after signal N); a
    /// script may exit 255 like any other code.
    pub code: i32,
    /// The script's group got SIGTERM (the step was stopped, or its connection ended).
    pub stopped: bool,
    /// SIGKILL was needed.
    pub killed: bool,
    /// What the script wrote to `$RUNBOOK_OUTPUT`.
    pub output: Vec<u8>,
}

/// A script started on a host. Receive output from the channel given to `start` while
/// waiting (`tokio::select!` over `wait` and `recv`), as for a `RunningProcess`. Dropping it
/// before the end stops the script's group on the host (SIGTERM, the grace, SIGKILL).
#[derive(Debug)]
pub struct RemoteSession {
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    Agent(AgentJob),
    Session(Box<StepSession>),
}

impl RemoteSession {
    /// Connects (through the host's master, opened if needed; the host's agent, started if
    /// needed) and sends the script. Returns once it is under way, not when it started.
    pub async fn start(
        masters: &ControlMasters,
        target: &SshTarget,
        request: &RemoteRequest,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<RemoteSession, RemoteError> {
        wrapper::check(request, &target.name)
            .map_err(|message| RemoteError::request(target, message))?;
        // An agent that ended just now (its connection dropped) is started again once; a
        // host where it cannot run gets sessions of their own.
        for _ in 0..2 {
            let Some(agent) = masters.agent(target).await? else {
                break;
            };
            if let Ok(started) = agent.start_job(request, output.clone()) {
                return Ok(RemoteSession {
                    transport: Transport::Agent(AgentJob::new(agent, started)),
                });
            }
        }
        let session = StepSession::start(masters, target, request, output).await?;
        Ok(RemoteSession {
            transport: Transport::Session(Box::new(session)),
        })
    }

    /// Whether the script runs as a job of the host's agent (rather than in a session of
    /// its own).
    pub fn on_agent(&self) -> bool {
        matches!(self.transport, Transport::Agent(_))
    }

    /// The script's process (and group) id on the host, once the host reported it.
    pub fn remote_pid(&mut self) -> Option<u32> {
        match &mut self.transport {
            Transport::Agent(job) => job.remote_pid(),
            Transport::Session(session) => session.remote_pid(),
        }
    }

    /// Waits for the end and tells how the script ended. Cancel-safe, and once finished it
    /// returns the same result again at once.
    pub async fn wait(&mut self) -> Result<RemoteExit, RemoteError> {
        match &mut self.transport {
            Transport::Agent(job) => job.wait().await,
            Transport::Session(session) => session.wait().await,
        }
    }

    /// Stops the script: SIGTERM to its group; once `grace` has passed without the end,
    /// SIGKILL; then as `wait`. Should the host not report within a few seconds after that,
    /// the connection counts as dropped. Cancel-safe: calling it again continues where it
    /// was (same deadlines), and `kill_now` meanwhile cuts the grace short.
    pub async fn terminate(&mut self, grace: Duration) -> Result<RemoteExit, RemoteError> {
        match &mut self.transport {
            Transport::Agent(job) => job.terminate(grace).await,
            Transport::Session(session) => session.terminate(grace).await,
        }
    }

    /// Kills the script's group at once (a second Ctrl-C), without the grace period; then
    /// `terminate` or `wait` for the end.
    pub fn kill_now(&mut self) {
        match &mut self.transport {
            Transport::Agent(job) => job.kill_now(),
            Transport::Session(session) => session.kill_now(),
        }
    }
}
