//! One instance running as a job of its host's agent (`AgentJob`): what `RemoteSession` does
//! with a session of its own, done with records on the agent's shared session. The end is the
//! agent's report (the script's own status) or the end of the agent's session (a dropped
//! connection, as for a session of its own).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::agent::{Agent, JobEvent, StartedJob};
use super::agent_records::JobControl;
use super::connection;
use super::stop_deadlines::{StopDeadlines, StopSignal, StoppableScript};
use super::{RemoteError, RemoteExit};

/// After the end report, how long the job's output is still handed over at most (only a
/// slow receiver delays it: the agent sent all of it before the report).
const OUTPUT_AFTER_END: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct AgentJob {
    agent: Arc<Agent>,
    id: u64,
    /// How many lines the master had printed when the job began.
    master_lines_before: usize,
    events: mpsc::UnboundedReceiver<JobEvent>,
    /// Hands the output to the caller's channel; ends after the end report.
    forward: Option<JoinHandle<()>>,
    remote_pid: Option<u32>,
    result: Option<Result<RemoteExit, RemoteError>>,
    stopping: StopDeadlines,
}

impl AgentJob {
    pub fn new(agent: Arc<Agent>, started: StartedJob) -> AgentJob {
        let StartedJob {
            id,
            events,
            forward,
        } = started;
        let master_lines_before = connection::lock(&agent.recent).total();
        AgentJob {
            agent,
            id,
            master_lines_before,
            events,
            forward: Some(forward),
            remote_pid: None,
            result: None,
            stopping: StopDeadlines::default(),
        }
    }

    pub fn remote_pid(&mut self) -> Option<u32> {
        while self.result.is_none()
            && let Ok(event) = self.events.try_recv()
        {
            self.record(event);
        }
        self.remote_pid
    }

    pub async fn wait(&mut self) -> Result<RemoteExit, RemoteError> {
        let result = loop {
            if let Some(result) = &self.result {
                break result.clone();
            }
            let event = self.events.recv().await.unwrap_or(JobEvent::Lost);
            self.record(event);
        };
        if let Some(forward) = self.forward.as_mut() {
            // Cancel-safe: an interrupted wait takes up the same handle again.
            let _ = tokio::time::timeout(OUTPUT_AFTER_END, forward).await;
            if let Some(forward) = self.forward.take() {
                forward.abort();
            }
        }
        result
    }

    fn record(&mut self, event: JobEvent) {
        match event {
            JobEvent::Started(pid) => self.remote_pid = Some(pid),
            JobEvent::Failed(message) => {
                self.result = Some(Err(RemoteError::host(self.agent.target(), message)));
            }
            JobEvent::Exited(exit) => self.result = Some(Ok(exit)),
            JobEvent::Lost => self.result = Some(Err(self.dropped())),
        }
    }

    /// The connection ended before the end report: why, as the master or the agent said it.
    fn dropped(&self) -> RemoteError {
        let master_said = connection::lock(&self.agent.recent).since(self.master_lines_before);
        let cause = master_said
            .into_iter()
            .map(|line| line.trim().trim_end_matches('.').to_string())
            .rfind(|line| !line.is_empty())
            .or_else(|| self.agent.complaint());
        RemoteError::dropped(self.agent.target(), self.remote_pid.is_some(), cause)
    }
}

impl StoppableScript for AgentJob {
    type End = Result<RemoteExit, RemoteError>;

    fn deadlines(&mut self) -> &mut StopDeadlines {
        &mut self.stopping
    }

    fn signal(&mut self, signal: StopSignal) {
        let control = match signal {
            StopSignal::Terminate => JobControl::Terminate,
            StopSignal::Kill => JobControl::Kill,
        };
        self.agent.control(self.id, control);
    }

    fn wait_end(&mut self) -> impl Future<Output = Self::End> {
        self.wait()
    }

    fn give_up(&mut self) {
        if self.result.is_none() {
            self.agent.abandon(self.id);
            self.result = Some(Err(self.dropped()));
        }
    }
}

impl Drop for AgentJob {
    fn drop(&mut self) {
        if self.result.is_none() {
            // Nobody waits for it any more: the agent stops it, its grace timed on the host.
            self.agent.abandon(self.id);
        }
        if let Some(forward) = self.forward.take() {
            forward.abort();
        }
    }
}
