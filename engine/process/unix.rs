//! Unix process control: a new process group per child, signals to a whole group, and noticing
//! that the main process exited without reaping it, so its id cannot be reused while the rest of
//! its group is killed.

use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use super::ExitOutcome;

pub(super) fn own_process_group(command: &mut tokio::process::Command) {
    // Group id 0 makes the child the leader of a new group named after its pid, so one signal
    // reaches all it starts, except what detaches into a session of its own.
    command.process_group(0);
}

/// Sends `signal` to the group; a group already gone is not an error.
pub(super) fn signal_group(group: Pid, signal: Signal) -> io::Result<()> {
    match killpg(group, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Notifications of child exits; created before the child, so its exit cannot slip by.
pub(super) fn child_exits() -> io::Result<tokio::signal::unix::Signal> {
    signal(SignalKind::child())
}

/// Whether the child `pid` has exited, asked without reaping it, or `None` when that cannot be
/// asked: no `waitid` here, or the status was already collected.
#[cfg(any(
    target_os = "android",
    target_os = "freebsd",
    all(target_os = "linux", not(target_env = "uclibc")),
))]
pub(super) fn exited_unreaped(pid: Pid) -> Option<bool> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};

    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) => return Some(false),
            Ok(_) => return Some(true),
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

#[cfg(not(any(
    target_os = "android",
    target_os = "freebsd",
    all(target_os = "linux", not(target_env = "uclibc")),
)))]
pub(super) fn exited_unreaped(_pid: Pid) -> Option<bool> {
    None
}

pub(super) fn outcome(status: ExitStatus) -> ExitOutcome {
    match status.code() {
        Some(code) => ExitOutcome::Exited(code),
        // A wait without `WUNTRACED` reports only exits and deaths by a signal.
        None => ExitOutcome::Signaled(status.signal().unwrap_or_default()),
    }
}
