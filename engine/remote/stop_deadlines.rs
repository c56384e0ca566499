//! The deadlines of a script being stopped on its host (`StopDeadlines`): when its group gets
//! SIGKILL (the grace is over, or at once after a second Ctrl-C), and when the engine gives up
//! on the host's report of the end and counts the connection as dropped.

use std::time::Duration;

use tokio::time::Instant;

/// Once SIGKILL was asked for, how long the engine waits for the host to report the end
/// before it gives up on it.
const TERMINATE_SLACK: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(super) struct StopDeadlines {
    /// Once stopped: when SIGKILL is due.
    kill_at: Option<Instant>,
    /// Once SIGKILL was asked for: when the engine gives up on the host's report.
    give_up_at: Option<Instant>,
}

impl StopDeadlines {
    /// Starts the grace, once: true the first time, when SIGTERM is to be sent.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        if self.kill_at.is_some() {
            return false;
        }
        self.kill_at = Some(Instant::now() + grace);
        true
    }

    /// Ends the grace now, once: true the first time, when SIGKILL is to be sent.
    pub fn kill_now(&mut self) -> bool {
        if self.give_up_at.is_some() {
            return false;
        }
        let now = Instant::now();
        self.kill_at = Some(now);
        self.give_up_at = Some(now + TERMINATE_SLACK);
        true
    }

    /// When SIGKILL is due (now, before `terminate`).
    pub fn kill_at(&self) -> Instant {
        self.kill_at.unwrap_or_else(Instant::now)
    }

    /// When the engine gives up on the host's report, once SIGKILL was asked for.
    pub fn give_up_at(&self) -> Option<Instant> {
        self.give_up_at
    }
}

/// What a stopped script's group is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopSignal {
    Terminate,
    Kill,
}

/// A script on its host that can be stopped (an agent's job, a session of its own).
pub(super) trait StoppableScript: Sized {
    type End;
    fn deadlines(&mut self) -> &mut StopDeadlines;
    /// Has the host send `signal` to the script's group.
    fn signal(&mut self, signal: StopSignal);
    /// Waits for the host's report of the end (cancel-safe).
    fn wait_end(&mut self) -> impl Future<Output = Self::End>;
    /// The host did not report in time: count the connection as dropped.
    fn give_up(&mut self);

    /// Stops the script: SIGTERM to its group; once `grace` has passed without the end,
    /// SIGKILL; then waits for the end. Should the host not report within the slack after
    /// that, the engine gives up on it and the connection counts as dropped. Cancel-safe:
    /// called again, it continues where it was (same deadlines), and `kill_now` meanwhile
    /// cuts the grace short.
    async fn terminate(&mut self, grace: Duration) -> Self::End {
        if self.deadlines().terminate(grace) {
            self.signal(StopSignal::Terminate);
        }
        loop {
            if let Some(give_up_at) = self.deadlines().give_up_at() {
                if let Ok(end) = tokio::time::timeout_at(give_up_at, self.wait_end()).await {
                    return end;
                }
                self.give_up();
                return self.wait_end().await;
            }
            let kill_at = self.deadlines().kill_at();
            if let Ok(end) = tokio::time::timeout_at(kill_at, self.wait_end()).await {
                return end;
            }
            self.kill_now();
        }
    }

    /// Kills the script's group at once (a second Ctrl-C), without the grace; then
    /// `terminate` or `wait` for the end.
    fn kill_now(&mut self) {
        if self.deadlines().kill_now() {
            self.signal(StopSignal::Kill);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_is_asked_for_once_and_a_kill_cuts_the_grace() {
        let mut stopping = StopDeadlines::default();
        let before = Instant::now();
        assert!(stopping.give_up_at().is_none());
        assert!(stopping.terminate(Duration::from_secs(3600)));
        assert!(!stopping.terminate(Duration::ZERO), "the grace starts once");
        assert!(stopping.kill_at() >= before + Duration::from_secs(3600));
        assert!(stopping.kill_now());
        assert!(!stopping.kill_now(), "SIGKILL is asked for once");
        let kill_at = stopping.kill_at();
        assert!(
            kill_at < before + Duration::from_secs(3600),
            "the grace is cut"
        );
        assert_eq!(stopping.give_up_at(), Some(kill_at + TERMINATE_SLACK));
    }
}
