//! A started step command (`RunningProcess`): waiting for its main process, killing what it left
//! in its process group, draining its output, and terminating it with SIGTERM, grace, SIGKILL.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::command::{CommandSpec, SpawnError};
use super::output::{OutputChunk, OutputStream, pump};
use super::registry;
use super::spawn;
use super::tree::StepTree;
use super::unix;

/// How long output is still read after the main process exited. Output already in the pipes
/// arrives, but a process outside the group that keeps them open (a daemon started with
/// `setsid`) cannot hold the step (RELIABILITY C-11).
pub const OUTPUT_DRAIN: Duration = Duration::from_millis(200);

/// Without a pidfd: checks for the exit even without a SIGCHLD, in case something else in the
/// program changed how that signal is handled.
const EXIT_POLL: Duration = Duration::from_millis(250);

/// How the exit of the main process is noticed.
#[derive(Debug)]
enum ExitWatch {
    /// A pidfd, readable once the process has exited: one event, no timer (Linux).
    Descriptor(AsyncFd<OwnedFd>),
    /// SIGCHLD, with a check every `EXIT_POLL` in case a signal goes astray.
    Signal(tokio::signal::unix::Signal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitOutcome {
    /// The exit code; `-1`, which no process can return, when a `waitpid` elsewhere in the
    /// program took the status first.
    Exited(i32),
    /// Killed by the signal with this number.
    Signaled(i32),
}

impl ExitOutcome {
    pub fn success(self) -> bool {
        self == ExitOutcome::Exited(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminationReport {
    pub outcome: ExitOutcome,
    /// The main process outlived the grace period, so SIGKILL was needed.
    pub killed: bool,
}

/// One step command, started in its own process group; the pid is the group id.
///
/// Started by `spawn::start` (`posix_spawn`, or std's `Command` when std must search `PATH`)
/// rather than by tokio, which would open a pidfd of its own for every child to reap it:
/// `RunningProcess` watches the exit with one pidfd and reaps the process itself with
/// `waitpid` (or, when dropped first, on a thread of its own).
///
/// After the main process exits, the rest of its group is killed with SIGKILL as part of `wait`
/// or `terminate`: a `sleep 100 &` a step leaves behind does not survive it, while a process that
/// detached into its own session (`setsid`) is not in the group and is left alone, since that is
/// how a step starts a service. Where `waitid` exists (Linux, FreeBSD) the group is killed before
/// the main process is reaped, while its zombie still reserves the id; elsewhere just after.
///
/// Output reaches the channel given to `spawn`, which closes once both pipes are done. Receive
/// from it while waiting (`tokio::select!` over `wait` and `recv`), then until it closes: the
/// channel is bounded, and a receiver that stops taking chunks pauses the child once its pipe is
/// full. Dropping a `RunningProcess` whose main process was not reaped kills its group.
#[derive(Debug)]
pub struct RunningProcess {
    pid: u32,
    group: Pid,
    /// The kernel start time of the main process, read once at the start.
    start_time: Option<u64>,
    exit_watch: ExitWatch,
    /// Set when the main process has been reaped; from then on its id names nothing of ours.
    exit: Option<(ExitOutcome, Instant)>,
    /// When the main process was seen to exit while still unreaped: its zombie keeps the
    /// group id reserved, so the group can still be killed safely until it is reaped.
    exited_unreaped_at: Option<Instant>,
    readers: Vec<JoinHandle<()>>,
    stop_readers: watch::Sender<bool>,
    output_leaked: bool,
    terminate_deadline: Option<Instant>,
    killed: bool,
    /// What had left the group with `setpgid` when termination began; stopped with it.
    escaped: Option<StepTree>,
}

impl RunningProcess {
    /// Starts the command; must run inside a tokio runtime with IO and time enabled.
    pub fn spawn(
        spec: &CommandSpec,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<RunningProcess, SpawnError> {
        let Some((program, arguments)) = spec.argv.split_first() else {
            return Err(SpawnError::EmptyCommand);
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SpawnError::NoRuntime {
                program: program.clone(),
            });
        }
        let before = unix::boot_ticks();
        let started = spawn::start(spec, program, arguments)
            .map_err(|source| SpawnError::from_spawn(&spec.cwd, program, source))?;
        let after = unix::boot_ticks();
        let pid = started.pid;
        // Before anything can fail: from now on the group is stopped should the engine die.
        let start_time = unix::start_time_between(pid, before, after);
        registry::register_started(pid, start_time);
        let group = Pid::from_raw(pid.cast_signed());
        let exit_watch = match unix::exit_descriptor(pid) {
            Ok(descriptor) => ExitWatch::Descriptor(descriptor),
            // Created after the child, which is fine: `main_exit` checks for the exit after
            // this exists and before it waits, so an earlier SIGCHLD is not needed.
            Err(_) => match unix::child_exits() {
                Ok(signal) => ExitWatch::Signal(signal),
                Err(source) => {
                    // Killed while its zombie still reserves the id, then reaped.
                    let _ = unix::signal_group(group, Signal::SIGKILL);
                    registry::unregister(pid);
                    reap_in_background(group);
                    return Err(SpawnError::ExitWatch {
                        program: program.clone(),
                        source,
                    });
                }
            },
        };
        let (stop_readers, stop) = watch::channel(false);
        let mut process = RunningProcess {
            pid,
            group,
            start_time,
            exit_watch,
            exit: None,
            exited_unreaped_at: None,
            readers: Vec::with_capacity(2),
            stop_readers,
            output_leaked: false,
            terminate_deadline: None,
            killed: false,
            escaped: None,
        };
        // An error from here on drops `process`, which kills the group and reaps it.
        let failed = |source: io::Error| SpawnError::Program {
            program: program.clone(),
            source,
        };
        let stdout = pipe::Receiver::from_owned_fd_unchecked(started.stdout).map_err(failed)?;
        let reader = pump(stdout, OutputStream::Stdout, output.clone(), stop.clone());
        process.readers.push(tokio::spawn(reader));
        let stderr = pipe::Receiver::from_owned_fd_unchecked(started.stderr).map_err(failed)?;
        let reader = pump(stderr, OutputStream::Stderr, output, stop);
        process.readers.push(tokio::spawn(reader));
        Ok(process)
    }

    /// The main process's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The main process's kernel start time (see `unix::start_time`), read when it started.
    pub fn start_time(&self) -> Option<u64> {
        self.start_time
    }

    /// Waits for the main process to exit, reads output for at most `OUTPUT_DRAIN` more, then
    /// kills what is left of its group if something there still holds the output pipes (or
    /// the process is being terminated). Members that closed the pipes are left alone on a
    /// normal exit: a service started with `setsid cmd > log &` may not have detached yet at
    /// the moment the step's shell exits, and killing the group then would kill it. Cancel-safe,
    /// and once finished it returns the same outcome again at once.
    pub async fn wait(&mut self) -> ExitOutcome {
        let exited_at = self.main_exit().await;
        self.drain_output(exited_at + OUTPUT_DRAIN).await;
        self.reap_after_exit()
    }

    /// Kills the group's leftovers where needed, then collects the exit status.
    fn reap_after_exit(&mut self) -> ExitOutcome {
        if let Some((outcome, _)) = self.exit {
            return outcome;
        }
        if self.output_leaked || self.terminate_deadline.is_some() {
            // The zombie still holds the id, so the kill cannot reach a recycled group.
            self.kill_group_leftovers();
        }
        let outcome = self.reap().unwrap_or(ExitOutcome::Exited(-1));
        registry::unregister(self.pid);
        self.exit = Some((
            outcome,
            self.exited_unreaped_at.unwrap_or_else(Instant::now),
        ));
        outcome
    }

    /// Sends `signal` to the whole process group. Once the main process has been reaped the
    /// group has been killed already and its id may name another one, so nothing is sent.
    pub fn signal_group(&self, signal: Signal) -> io::Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        unix::signal_group(self.group, signal)
    }

    /// SIGTERM to the group; SIGKILL to the group once the main process has exited or `grace`
    /// has passed, whichever comes first; then as `wait`. Calling it again, after a cancelled
    /// call or after the exit, continues with the same deadline and sends no second SIGTERM.
    pub async fn terminate(&mut self, grace: Duration) -> TerminationReport {
        if self.exit.is_none() {
            let deadline = match self.terminate_deadline {
                Some(deadline) => deadline,
                None => {
                    // Found before the signal: once their parent exits, they are orphans that
                    // no search can tell from any other process.
                    let escaped = unix::start_time(self.pid)
                        .map(|start_time| StepTree::of_groups([(self.pid, start_time)]));
                    // Should SIGTERM fail, the SIGKILL after the grace still ends the group.
                    let _ = self.signal_group(Signal::SIGTERM);
                    if let Some(escaped) = &escaped {
                        escaped.signal_escaped(Signal::SIGTERM);
                    }
                    self.escaped = escaped;
                    let now = Instant::now();
                    let deadline = now.checked_add(grace).unwrap_or_else(|| far_future(now));
                    self.terminate_deadline = Some(deadline);
                    deadline
                }
            };
            if tokio::time::timeout_at(deadline, self.main_exit())
                .await
                .is_err()
            {
                self.killed = true;
                if let Some(escaped) = &mut self.escaped {
                    escaped.refresh();
                }
                let _ = self.signal_group(Signal::SIGKILL);
            }
        }
        let outcome = self.wait().await;
        TerminationReport {
            outcome,
            killed: self.killed,
        }
    }

    /// Whether a pipe was still open when `OUTPUT_DRAIN` ran out: something outside the group
    /// kept it (or the receiver was too slow to take the rest in time), and later output from
    /// it is not read. Meaningful once `wait` or `terminate` has returned.
    pub fn output_leaked(&self) -> bool {
        self.output_leaked
    }

    /// Whether the main process has exited, without waiting or reaping it: a deadline that
    /// fires together with the exit (the engine was stopped, SIGSTOP or Ctrl-Z, past it) must
    /// not turn a step that finished into one that timed out.
    pub fn has_exited(&self) -> bool {
        self.exit.is_some()
            || self.exited_unreaped_at.is_some()
            || unix::exited_unreaped(self.group) == Some(true)
    }

    /// Cancel-safe: the only state changes, noticing or collecting the exit, happen without an
    /// await. Returns when the main process exited.
    async fn main_exit(&mut self) -> Instant {
        loop {
            if let Some((_, at)) = self.exit {
                return at;
            }
            if let Some(at) = self.exited_unreaped_at {
                return at;
            }
            match unix::exited_unreaped(self.group) {
                Some(true) => {
                    let now = Instant::now();
                    self.exited_unreaped_at = Some(now);
                    return now;
                }
                Some(false) => {}
                None => {
                    // No `waitid`: reap first, as nothing else is possible here; while any
                    // member lives the id stays reserved, and a group with no members left
                    // needs no kill.
                    if let Some(outcome) = self.reap() {
                        self.kill_group_leftovers();
                        registry::unregister(self.pid);
                        let now = Instant::now();
                        self.exit = Some((outcome, now));
                        return now;
                    }
                }
            }
            match &mut self.exit_watch {
                ExitWatch::Descriptor(descriptor) => match descriptor.readable().await {
                    // Readable stays set once the process has exited; the check above is
                    // what ends the loop.
                    Ok(mut ready) => {
                        if unix::exited_unreaped(self.group) == Some(false) {
                            ready.clear_ready();
                        }
                    }
                    Err(_) => {
                        // The descriptor cannot be watched: check every `EXIT_POLL` instead.
                        tokio::time::sleep(EXIT_POLL).await;
                    }
                },
                ExitWatch::Signal(child_exits) => {
                    tokio::select! {
                        Some(()) = child_exits.recv() => {}
                        () = tokio::time::sleep(EXIT_POLL) => {}
                    }
                }
            }
        }
    }

    /// Collects the exit status if the main process has exited. Called at most once after it
    /// returned `Some`: the caller records the outcome in `exit`.
    fn reap(&mut self) -> Option<ExitOutcome> {
        match unix::try_reap(self.group) {
            Ok(Some(status)) => Some(unix::outcome(status)),
            Ok(None) => None,
            // Only a `waitpid(-1)` elsewhere in the program can take our child's status: the
            // process is gone, and an exit code no process can return says so.
            Err(_) => Some(ExitOutcome::Exited(-1)),
        }
    }

    fn kill_group_leftovers(&self) {
        // Failing here means a member we may not signal (a setuid program): nothing more to do.
        let _ = unix::signal_group(self.group, Signal::SIGKILL);
        if let Some(escaped) = &self.escaped {
            escaped.signal_escaped(Signal::SIGKILL);
        }
    }

    async fn drain_output(&mut self, deadline: Instant) {
        while let Some(reader) = self.readers.last_mut() {
            if tokio::time::timeout_at(deadline, reader).await.is_err() {
                self.output_leaked = true;
                break;
            }
            self.readers.pop();
        }
        // Readers still running stop once their pipe has nothing more at once; chunks already
        // read still reach the channel.
        self.stop_readers.send_replace(true);
        self.readers.clear();
    }
}

impl Drop for RunningProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // Not reaped yet, so the id still names this group; the zombie is reaped after.
            self.kill_group_leftovers();
            registry::unregister(self.pid);
            reap_in_background(self.group);
        }
    }
}

/// Waits for `pid`, our unreaped child (already sent SIGKILL), on a thread of its own, so that
/// it leaves no zombie; should no thread be had, the zombie stays until the engine exits.
fn reap_in_background(pid: Pid) {
    // Gone already, or someone else took its status: nothing to wait for.
    if !matches!(unix::try_reap(pid), Ok(None)) {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("reap".into())
        .spawn(move || {
            let _ = unix::reap_blocking(pid);
        });
}

fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(100 * 365 * 24 * 60 * 60)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use nix::errno::Errno;

    use super::*;

    fn bash(script: &str) -> CommandSpec {
        let mut argv: Vec<String> = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
            .map(String::from)
            .to_vec();
        argv.push(script.to_string());
        CommandSpec {
            argv,
            env: Vec::new(),
            cwd: std::env::temp_dir(),
        }
    }

    #[derive(Debug, Default)]
    struct Collected {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    }

    impl Collected {
        fn add(&mut self, chunk: OutputChunk) {
            match chunk.stream {
                OutputStream::Stdout => self.stdout.extend(chunk.bytes),
                OutputStream::Stderr => self.stderr.extend(chunk.bytes),
            }
        }

        fn stdout_text(&self) -> String {
            String::from_utf8_lossy(&self.stdout).into_owned()
        }
    }

    /// Waits the way the executor does: receiving while waiting, then until the channel closes.
    async fn finish(
        process: &mut RunningProcess,
        chunks: &mut mpsc::Receiver<OutputChunk>,
        collected: &mut Collected,
    ) -> ExitOutcome {
        let outcome = loop {
            tokio::select! {
                Some(chunk) = chunks.recv() => collected.add(chunk),
                outcome = process.wait() => break outcome,
            }
        };
        while let Some(chunk) = chunks.recv().await {
            collected.add(chunk);
        }
        outcome
    }

    async fn run(spec: CommandSpec) -> (ExitOutcome, Collected) {
        let (output, mut chunks) = mpsc::channel(16);
        let mut process = RunningProcess::spawn(&spec, output).expect("spawn the command");
        let mut collected = Collected::default();
        let outcome = finish(&mut process, &mut chunks, &mut collected).await;
        (outcome, collected)
    }

    /// Receives until stdout holds `lines` full lines, and returns them.
    async fn read_lines(
        chunks: &mut mpsc::Receiver<OutputChunk>,
        collected: &mut Collected,
        lines: usize,
    ) -> Vec<String> {
        while collected
            .stdout
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            < lines
        {
            let chunk = chunks
                .recv()
                .await
                .expect("the process writes the expected lines");
            collected.add(chunk);
        }
        collected.stdout_text().lines().map(String::from).collect()
    }

    fn pid_of(line: &str) -> Pid {
        Pid::from_raw(line.trim().parse().expect("the script echoes a pid"))
    }

    /// Alive and not a zombie: a killed process reparented to an init that is slow to reap it
    /// still answers `kill -0`.
    fn is_alive(pid: Pid) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    }

    /// Death after SIGKILL is asynchronous, so poll for it, with a bound.
    async fn assert_dies(pid: Pid) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while is_alive(pid) {
            assert!(Instant::now() < give_up, "process {pid} survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn kill_stray(pid: Pid) {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }

    #[tokio::test]
    async fn reports_exit_code_and_both_streams() {
        let (outcome, collected) = run(bash("printf out; printf err >&2; exit 3")).await;
        assert_eq!(outcome, ExitOutcome::Exited(3));
        assert!(!outcome.success());
        assert_eq!(collected.stdout, b"out");
        assert_eq!(collected.stderr, b"err");
    }

    #[tokio::test]
    async fn reports_death_by_signal() {
        let (outcome, _) = run(bash("kill -KILL $$")).await;
        assert_eq!(outcome, ExitOutcome::Signaled(Signal::SIGKILL as i32));
    }

    #[tokio::test]
    async fn env_is_added_to_the_inherited_environment() {
        let mut spec = bash(r#"printf '%s|%s' "$RUNBOOK_TEST_VALUE" "$PATH""#);
        spec.env.push((
            "RUNBOOK_TEST_VALUE".to_string(),
            "a value with spaces".to_string(),
        ));
        let (outcome, collected) = run(spec).await;
        assert!(outcome.success());
        let path = std::env::var("PATH").expect("tests run with a PATH");
        assert_eq!(
            collected.stdout_text(),
            format!("a value with spaces|{path}")
        );
    }

    #[tokio::test]
    async fn runs_in_cwd_with_stdin_from_dev_null() {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let mut spec = bash("pwd; cat; readlink /proc/$$/fd/0");
        spec.cwd = directory.path().to_path_buf();
        let (outcome, collected) = run(spec).await;
        assert!(outcome.success());
        let expected = directory
            .path()
            .canonicalize()
            .expect("canonical temporary directory");
        assert_eq!(
            collected.stdout_text(),
            format!("{}\n/dev/null\n", expected.display())
        );
    }

    #[tokio::test]
    async fn starts_in_its_own_process_group() {
        let (output, mut chunks) = mpsc::channel(16);
        let script = r#"read -r _ _ _ _ group _ < /proc/$$/stat; echo "$group""#;
        let mut process = RunningProcess::spawn(&bash(script), output).expect("spawn");
        let mut collected = Collected::default();
        assert!(
            finish(&mut process, &mut chunks, &mut collected)
                .await
                .success()
        );
        let group = pid_of(&collected.stdout_text());
        assert_eq!(group.as_raw().cast_unsigned(), process.pid());
        assert_ne!(group, nix::unistd::getpgrp());
    }

    #[tokio::test]
    async fn megabyte_on_stderr_before_stdout_does_not_deadlock() {
        let (outcome, collected) = run(bash("head -c 1048576 /dev/zero >&2; echo done")).await;
        assert!(outcome.success());
        assert_eq!(collected.stderr.len(), 1 << 20);
        assert_eq!(collected.stdout, b"done\n");
    }

    #[tokio::test]
    async fn bytes_pass_through_unchanged() {
        let (outcome, collected) = run(bash(r"printf 'a\377\000b\r\nno newline'")).await;
        assert!(outcome.success());
        assert_eq!(collected.stdout, b"a\xff\x00b\r\nno newline");
    }

    #[tokio::test]
    async fn slow_receiver_pauses_the_child_without_losing_output() {
        let (output, mut chunks) = mpsc::channel(1);
        let mut process =
            RunningProcess::spawn(&bash("head -c 4194304 /dev/zero; echo end"), output)
                .expect("spawn");
        // Nobody receives: the channel and the pipe fill up and the child blocks on its write.
        let waited = tokio::time::timeout(Duration::from_millis(500), process.wait()).await;
        assert!(
            waited.is_err(),
            "the child finished although nobody read its output"
        );
        let mut collected = Collected::default();
        assert!(
            finish(&mut process, &mut chunks, &mut collected)
                .await
                .success()
        );
        assert_eq!(collected.stdout.len(), (4 << 20) + 4);
        assert!(collected.stdout.ends_with(b"end\n"));
    }

    #[tokio::test]
    async fn main_exit_ends_the_wait_and_kills_a_background_child_holding_stdout() {
        let started = Instant::now();
        let (output, mut chunks) = mpsc::channel(16);
        let mut process =
            RunningProcess::spawn(&bash("sleep 30 & echo $!; exit 0"), output).expect("spawn");
        let mut collected = Collected::default();
        let outcome = finish(&mut process, &mut chunks, &mut collected).await;
        assert_eq!(outcome, ExitOutcome::Exited(0));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the background child"
        );
        assert_dies(pid_of(&collected.stdout_text())).await;
    }

    #[tokio::test]
    async fn detached_session_is_left_alone_and_does_not_hold_the_step() {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let marker = directory.path().join("detached");
        // The marker tells the main process that the child has left the group before it exits;
        // the child keeps stdout open, as a daemon that forgot to close it would.
        let mut spec = bash(
            r#"setsid bash -c 'echo yes > "$MARKER"; exec sleep 30' &
               until [ -s "$MARKER" ]; do sleep 0.01; done
               echo $!"#,
        );
        spec.env
            .push(("MARKER".to_string(), marker.display().to_string()));
        let started = Instant::now();
        let (output, mut chunks) = mpsc::channel(16);
        let mut process = RunningProcess::spawn(&spec, output).expect("spawn");
        let mut collected = Collected::default();
        let outcome = finish(&mut process, &mut chunks, &mut collected).await;
        let daemon = pid_of(&collected.stdout_text());
        let alive = is_alive(daemon);
        kill_stray(daemon);
        assert_eq!(outcome, ExitOutcome::Exited(0));
        assert!(alive, "the detached process was killed");
        assert!(process.output_leaked());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the detached process"
        );
    }

    #[tokio::test]
    async fn terminate_kills_the_whole_tree() {
        let (output, mut chunks) = mpsc::channel(16);
        let script = "sleep 100 & echo $!; sleep 100 & echo $!; wait";
        let mut process = RunningProcess::spawn(&bash(script), output).expect("spawn");
        let mut collected = Collected::default();
        let pids: Vec<Pid> = read_lines(&mut chunks, &mut collected, 2)
            .await
            .iter()
            .map(|line| pid_of(line))
            .collect();
        let report = process.terminate(Duration::from_secs(10)).await;
        assert_eq!(
            report,
            TerminationReport {
                outcome: ExitOutcome::Signaled(Signal::SIGTERM as i32),
                killed: false
            }
        );
        for pid in pids {
            assert_dies(pid).await;
        }
    }

    #[tokio::test]
    async fn terminate_lets_a_trapping_script_finish() {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let out = directory.path().join("out");
        let mut spec =
            bash(r#"trap 'echo bye > "$OUT"; exit 0' TERM; sleep 100 & echo ready; wait"#);
        spec.env
            .push(("OUT".to_string(), out.display().to_string()));
        let (output, mut chunks) = mpsc::channel(16);
        let mut process = RunningProcess::spawn(&spec, output).expect("spawn");
        read_lines(&mut chunks, &mut Collected::default(), 1).await;
        let report = process.terminate(Duration::from_secs(10)).await;
        assert_eq!(
            report,
            TerminationReport {
                outcome: ExitOutcome::Exited(0),
                killed: false
            }
        );
        assert_eq!(
            std::fs::read_to_string(&out).expect("the trap wrote its file"),
            "bye\n"
        );
    }

    #[tokio::test]
    async fn terminate_kills_a_script_ignoring_term_after_the_grace() {
        let (output, mut chunks) = mpsc::channel(16);
        let mut process =
            RunningProcess::spawn(&bash("trap '' TERM; sleep 100 & echo $!; wait"), output)
                .expect("spawn");
        let mut collected = Collected::default();
        let sleeper = pid_of(&read_lines(&mut chunks, &mut collected, 1).await[0]);
        let grace = Duration::from_millis(300);
        let started = Instant::now();
        let report = process.terminate(grace).await;
        assert!(started.elapsed() >= grace);
        assert_eq!(
            report,
            TerminationReport {
                outcome: ExitOutcome::Signaled(Signal::SIGKILL as i32),
                killed: true
            }
        );
        assert_dies(sleeper).await;
        // Asking again gives the same answer.
        assert_eq!(process.terminate(grace).await, report);
    }

    #[tokio::test]
    async fn signal_group_reaches_the_script() {
        let (output, mut chunks) = mpsc::channel(16);
        let mut process = RunningProcess::spawn(
            &bash("trap 'exit 3' USR1; echo ready; sleep 100 & wait"),
            output,
        )
        .expect("spawn");
        let mut collected = Collected::default();
        read_lines(&mut chunks, &mut collected, 1).await;
        process
            .signal_group(Signal::SIGUSR1)
            .expect("signal the group");
        assert_eq!(
            finish(&mut process, &mut chunks, &mut collected).await,
            ExitOutcome::Exited(3)
        );
        // The group is gone and its id may be reused: nothing is sent any more.
        process
            .signal_group(Signal::SIGKILL)
            .expect("no-op after the exit");
    }

    #[tokio::test]
    async fn wait_is_cancel_safe_and_repeatable() {
        let (output, mut chunks) = mpsc::channel(16);
        let mut process = RunningProcess::spawn(&bash("sleep 0.3; exit 7"), output).expect("spawn");
        let mut cancelled = 0;
        let outcome = loop {
            tokio::select! {
                outcome = process.wait() => break outcome,
                () = tokio::time::sleep(Duration::from_millis(5)) => cancelled += 1,
            }
        };
        assert!(cancelled > 0);
        assert_eq!(outcome, ExitOutcome::Exited(7));
        assert_eq!(process.wait().await, outcome);
        let report = process.terminate(Duration::ZERO).await;
        assert_eq!(
            report,
            TerminationReport {
                outcome,
                killed: false
            }
        );
        assert!(chunks.recv().await.is_none());
    }

    #[tokio::test]
    async fn the_start_time_is_the_one_the_kernel_reports() {
        // Told from the boot clock around the spawn when it can be (see
        // `unix::start_time_between`): it must be exactly what `/proc` says.
        for _ in 0..30 {
            let (output, mut chunks) = mpsc::channel(16);
            let mut process = RunningProcess::spawn(&bash("exit 0"), output).expect("spawn");
            // Before the reap: a zombie still has its `/proc/<pid>/stat`.
            let from_proc = unix::start_time(process.pid());
            assert!(from_proc.is_some());
            assert_eq!(process.start_time(), from_proc);
            finish(&mut process, &mut chunks, &mut Collected::default()).await;
        }
    }

    #[tokio::test]
    async fn dropping_the_process_kills_its_group() {
        let (output, mut chunks) = mpsc::channel(16);
        let process =
            RunningProcess::spawn(&bash("sleep 100 & echo $!; wait"), output).expect("spawn");
        let mut collected = Collected::default();
        let sleeper = pid_of(&read_lines(&mut chunks, &mut collected, 1).await[0]);
        let leader = Pid::from_raw(process.pid().cast_signed());
        drop(process);
        assert_dies(sleeper).await;
        // Reaped by then or soon after: no zombie is left behind.
        let give_up = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(format!("/proc/{leader}")).is_ok() {
            assert!(
                Instant::now() < give_up,
                "the main process {leader} was not reaped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn spawn_error(argv: &[&str], cwd: &Path) -> SpawnError {
        let spec = CommandSpec {
            argv: argv.iter().map(|argument| argument.to_string()).collect(),
            env: Vec::new(),
            cwd: cwd.to_path_buf(),
        };
        let (output, _chunks) = mpsc::channel(1);
        RunningProcess::spawn(&spec, output).expect_err("the command must not start")
    }

    fn assert_style(message: &str) {
        assert!(
            message.starts_with(|first: char| first.is_lowercase()),
            "{message}"
        );
        assert!(!message.ends_with('.'), "{message}");
    }

    #[tokio::test]
    async fn spawn_failures_name_the_program_or_directory() {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let missing: PathBuf = directory.path().join("missing");

        let error = spawn_error(&["bash", "-c", "true"], &missing);
        assert!(
            matches!(error, SpawnError::WorkingDirectory { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("working directory `{}` cannot be used", missing.display())
        );
        assert_eq!(error.raw_os_error(), Some(Errno::ENOENT as i32));

        let file = directory.path().join("file");
        std::fs::write(&file, "not a directory").expect("write a file");
        let error = spawn_error(&["bash", "-c", "true"], &file);
        assert!(
            matches!(error, SpawnError::WorkingDirectory { .. }),
            "{error:?}"
        );

        let error = spawn_error(&["runbook-no-such-program", "x"], directory.path());
        assert_eq!(error.to_string(), "cannot start `runbook-no-such-program`");
        assert_eq!(error.raw_os_error(), Some(Errno::ENOENT as i32));

        let error = spawn_error(&[&file.display().to_string()], directory.path());
        assert_eq!(error.raw_os_error(), Some(Errno::EACCES as i32));

        let error = spawn_error(&[], directory.path());
        assert!(matches!(error, SpawnError::EmptyCommand));

        for error in [
            spawn_error(&["runbook-no-such-program"], directory.path()),
            spawn_error(&["bash"], &missing),
            spawn_error(&[], &missing),
        ] {
            assert_style(&error.to_string());
        }
    }

    fn command(argv: &[&str], env: &[(&str, &str)]) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|argument| argument.to_string()).collect(),
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            cwd: std::env::temp_dir(),
        }
    }

    /// What std's `Command` gives the same program with the same additions: the environment
    /// steps saw before they were started with `posix_spawn`.
    fn env_from_std(env: &[(&str, &str)]) -> Vec<u8> {
        let output = std::process::Command::new("env")
            .arg("-0")
            .envs(env.iter().copied())
            .output()
            .expect("run env");
        assert!(output.status.success());
        output.stdout
    }

    fn names(env_output: &[u8]) -> Vec<String> {
        env_output
            .split(|&byte| byte == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let equals = entry[1..].find('=').map_or(entry.len(), |at| at + 1);
                entry[..equals].to_string()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_step_sees_the_engine_environment_plus_its_own_sorted_as_std_gives_it() {
        let engine: BTreeMap<String, String> = std::env::vars().collect();
        let overridden = if engine.contains_key("HOME") {
            "HOME"
        } else {
            engine
                .keys()
                .find(|name| *name != "PATH")
                .expect("tests run with an environment")
        };
        let env = [
            ("RUNBOOK_TEST_LATER", "first"),
            ("RUNBOOK_TEST_EARLIER", "a"),
            (overridden, "from the step"),
            ("RUNBOOK_TEST_LATER", "second"),
        ];
        let (outcome, collected) = run(command(&["env", "-0"], &env)).await;
        assert!(outcome.success());
        assert_eq!(collected.stdout, env_from_std(&env));
        let text = collected.stdout_text();
        let entries: Vec<&str> = text.split('\0').collect();
        assert!(entries.contains(&"RUNBOOK_TEST_LATER=second"), "{text}");
        assert!(!entries.contains(&"RUNBOOK_TEST_LATER=first"), "{text}");
        assert!(entries.contains(&"RUNBOOK_TEST_EARLIER=a"), "{text}");
        assert!(entries.contains(&format!("{overridden}=from the step").as_str()));
        let names = names(&collected.stdout);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted by name, each once");
        assert_eq!(names.len(), engine.len() + 2);
    }

    #[tokio::test]
    async fn a_step_adding_nothing_sees_the_engine_environment_as_std_gives_it() {
        let (outcome, collected) = run(command(&["env", "-0"], &[])).await;
        assert!(outcome.success());
        assert_eq!(collected.stdout, env_from_std(&[]));
    }

    #[tokio::test]
    async fn a_program_left_to_std_path_search_gets_the_same_environment() {
        // A relative `PATH` entry first: the program is not looked up ahead, std searches.
        let path = format!(
            "runbook-relative-dir:{}",
            std::env::var("PATH").expect("tests run with a PATH")
        );
        let env = [("PATH", path.as_str()), ("RUNBOOK_TEST_VALUE", "x")];
        let (outcome, collected) = run(command(&["env", "-0"], &env)).await;
        assert!(outcome.success());
        assert_eq!(collected.stdout, env_from_std(&env));
    }

    /// `SigBlk` and `SigIgn` of `/proc/<pid>/status`, as masks.
    fn signal_masks(status: &str) -> (u64, u64) {
        let mask = |field: &str| {
            let line = status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .expect("the field is in the status");
            u64::from_str_radix(line.trim(), 16).expect("a hexadecimal mask")
        };
        (mask("SigBlk:"), mask("SigIgn:"))
    }

    #[tokio::test]
    async fn a_step_starts_with_no_blocked_signal_and_sigpipe_at_its_default() {
        use nix::sys::signal::SigSet;

        let sigpipe = 1u64 << (Signal::SIGPIPE as i32 - 1);
        let engine = std::fs::read_to_string("/proc/self/status").expect("read own status");
        assert_ne!(
            signal_masks(&engine).1 & sigpipe,
            0,
            "the Rust runtime ignores SIGPIPE in the engine"
        );
        // Blocked in the thread that spawns: the step must not inherit it.
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGUSR2);
        blocked.thread_block().expect("block SIGUSR2");
        let (output, mut chunks) = mpsc::channel(16);
        let spawned = RunningProcess::spawn(&command(&["cat", "/proc/self/status"], &[]), output);
        blocked.thread_unblock().expect("unblock SIGUSR2");
        let mut process = spawned.expect("spawn");
        let mut collected = Collected::default();
        assert!(
            finish(&mut process, &mut chunks, &mut collected)
                .await
                .success()
        );
        let (blocked, ignored) = signal_masks(&collected.stdout_text());
        assert_eq!(blocked, 0, "no signal is blocked in the step");
        assert_eq!(
            ignored & sigpipe,
            0,
            "SIGPIPE is at its default in the step"
        );
    }

    #[tokio::test]
    async fn a_program_found_on_the_path_that_cannot_be_executed_fails_as_with_std() {
        use std::os::unix::fs::PermissionsExt as _;

        let directory = tempfile::tempdir().expect("create a temporary directory");
        let program = directory.path().join("runbook-test-not-a-program");
        std::fs::write(&program, "neither an ELF file nor a script\n").expect("test setup");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("test setup");
        let path = format!(
            "{}:{}",
            directory.path().display(),
            std::env::var("PATH").expect("tests run with a PATH")
        );
        let spec = CommandSpec {
            argv: vec!["runbook-test-not-a-program".to_string()],
            env: vec![("PATH".to_string(), path)],
            cwd: directory.path().to_path_buf(),
        };
        let (output, _chunks) = mpsc::channel(1);
        let error = RunningProcess::spawn(&spec, output).expect_err("cannot be executed");
        let from_std = std::process::Command::new(&program)
            .spawn()
            .expect_err("std cannot execute it either");
        assert!(matches!(error, SpawnError::Program { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "cannot start `runbook-test-not-a-program`"
        );
        assert_eq!(error.raw_os_error(), from_std.raw_os_error());
        assert_eq!(error.raw_os_error(), Some(Errno::ENOEXEC as i32));
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error() {
        let (output, _chunks) = mpsc::channel(1);
        let error = RunningProcess::spawn(&bash("true"), output).expect_err("no runtime");
        assert_eq!(
            error.to_string(),
            "cannot start `bash` outside a tokio runtime"
        );
    }
}
