//! Unix process control: a new process group per child, signals to a whole group, and noticing
//! that the main process exited without reaping it, so its id cannot be reused while the rest of
//! its group is killed.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use super::ExitOutcome;

pub(super) fn own_process_group(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;

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

/// Notifications of child exits (SIGCHLD), where a pidfd cannot be had.
pub(super) fn child_exits() -> io::Result<tokio::signal::unix::Signal> {
    signal(SignalKind::child())
}

/// A descriptor that becomes readable when process `pid` (our unreaped child) exits: an event
/// for exactly this process, with no signal handler and no timer. Linux 5.3 or later; `Err`
/// elsewhere, and the caller falls back to SIGCHLD.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn exit_descriptor(pid: u32) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    use std::os::fd::FromRawFd as _;

    let pid = nix::libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; it touches
    // no memory of ours.
    let raw = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = i32::try_from(raw).map_err(io::Error::other)?;
    // SAFETY: the descriptor was just created and is owned by nothing else.
    let descriptor = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an `OwnedFd` keeps its descriptor open and unchanged until it is dropped with
    // the `AsyncFd`.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(descriptor, tokio::io::Interest::READABLE)
    }
    .map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn exit_descriptor(_pid: u32) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
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

/// Collects the exit status of our child `pid` if it has exited (`waitpid` with `WNOHANG`):
/// `Ok(None)` while it runs, `Err` (ECHILD) when it is not ours to wait for, or was reaped
/// already. The raw status is kept as std keeps it: nix's `WaitStatus` refuses a death by a
/// signal it has no name for (a real-time one).
pub(super) fn try_reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    wait_for(pid, nix::libc::WNOHANG)
}

/// Waits until our child `pid` exits and collects its status.
pub(super) fn reap_blocking(pid: Pid) -> io::Result<ExitStatus> {
    wait_for(pid, 0)?.ok_or_else(|| io::Error::other("waitpid returned no child"))
}

fn wait_for(pid: Pid, flags: nix::libc::c_int) -> io::Result<Option<ExitStatus>> {
    let mut status: nix::libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes one int, which `status` is, and touches no other memory.
        let waited = unsafe { nix::libc::waitpid(pid.as_raw(), &raw mut status, flags) };
        match Errno::result(waited) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(ExitStatus::from_raw(status))),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

pub(super) fn outcome(status: ExitStatus) -> ExitOutcome {
    match status.code() {
        Some(code) => ExitOutcome::Exited(code),
        // A wait without `WUNTRACED` reports only exits and deaths by a signal.
        None => ExitOutcome::Signaled(status.signal().unwrap_or_default()),
    }
}

/// The boot clock in the unit of a process's start time (clock ticks since boot, as
/// `/proc/<pid>/stat` counts them in the caller's time namespace), or `None` where it cannot
/// be read or the tick does not divide a second in whole nanoseconds.
pub(super) fn boot_ticks() -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::sync::OnceLock;
        static NANOS_PER_TICK: OnceLock<Option<u64>> = OnceLock::new();
        let nanos_per_tick = (*NANOS_PER_TICK.get_or_init(|| {
            // SAFETY: sysconf reads a constant of the process and touches no memory of ours.
            let hertz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
            let hertz = u64::try_from(hertz).ok().filter(|&hertz| hertz > 0)?;
            (1_000_000_000 % hertz == 0).then(|| 1_000_000_000 / hertz)
        }))?;
        let mut now = nix::libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec, which `now` is, and nothing else.
        if unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_BOOTTIME, &raw mut now) } != 0 {
            return None;
        }
        let nanos =
            u64::try_from(now.tv_sec).ok()? * 1_000_000_000 + u64::try_from(now.tv_nsec).ok()?;
        // The kernel's own conversion (`nsec_to_clock_t`): whole ticks, rounded down.
        Some(nanos / nanos_per_tick)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// The start time of `pid`, a child just started between two readings of `boot_ticks`: the
/// kernel stamped it with the boot clock in between, so when both readings fall in the same
/// tick that tick is its start time, found without opening `/proc` (the usual case: a spawn
/// takes well under a tick). Otherwise it is read from `/proc/<pid>/stat`.
pub(super) fn start_time_between(pid: u32, before: Option<u64>, after: Option<u64>) -> Option<u64> {
    match (before, after) {
        (Some(before), Some(after)) if before == after => Some(before),
        _ => start_time(pid),
    }
}

/// The kernel start time of process `pid` (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`), which tells a process apart from a later one that reuses its id.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = read_stat(pid)?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// `/proc/<pid>/stat` in one read: the file reports no size, so a plain read to the end
/// would probe with five growing reads and one more to see the end. The line is a few hundred
/// bytes and ends with a newline, so one read into one buffer usually gets all of it.
fn read_stat(pid: u32) -> Option<String> {
    use std::io::Read as _;

    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buffer = vec![0; 1024];
    let mut length = 0;
    loop {
        if length == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        match file.read(&mut buffer[length..]) {
            Ok(0) => break,
            Ok(read) => {
                length += read;
                // The one line is complete: no need to read again to see the end.
                if buffer[..length].ends_with(b"\n") {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buffer.truncate(length);
    String::from_utf8(buffer).ok()
}

/// Kills what is left of the process group that `pid` led, if it is still the group the
/// journal recorded: the leader itself when it is the process that started at `start_time`,
/// or, once the leader is gone, the members of group `pid` that started no earlier than it.
/// Returns whether anything was killed.
pub fn kill_surviving_group(pid: u32, start_time: u64) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if start_time_of_live(pid) == Some(start_time) {
        return killpg(Pid::from_raw(raw), Signal::SIGKILL).is_ok();
    }
    let mut killed = false;
    for (member, group, started) in processes() {
        if group == pid
            && started >= start_time
            && member != pid
            && let Ok(member) = i32::try_from(member)
        {
            killed |= nix::sys::signal::kill(Pid::from_raw(member), Signal::SIGKILL).is_ok();
        }
    }
    killed
}

/// Every live process: (pid, process group, start time), from `/proc`.
fn processes() -> Vec<(u32, u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            // fields[0] is the state (field 3), fields[2] the group (field 5), fields[19] the start time (field 22).
            if fields.first() == Some(&"Z") {
                return None;
            }
            Some((
                pid,
                fields.get(2)?.parse().ok()?,
                fields.get(19)?.parse().ok()?,
            ))
        })
        .collect()
}

pub(super) fn start_time_of_live(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // A zombie is dead already.
    if after_name.split_whitespace().next()? == "Z" {
        return None;
    }
    start_time(pid)
}
