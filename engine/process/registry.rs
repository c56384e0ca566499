//! The engine's side of the watchdog: the process groups of running steps, each with its
//! leader's start time, told to one watchdog process over a pipe (started at the first step,
//! started again should it die), and a `bye` on a normal exit so that it stops nothing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::watchdog::{self, Message};

/// `None` until `enable_watchdog`: a library user (a unit test, a benchmark) gets no watchdog,
/// since re-executing a test binary would run its tests.
static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

#[derive(Debug, Default)]
struct Registry {
    /// Group id (the leader's pid) to the leader's kernel start time.
    groups: BTreeMap<u32, u64>,
    link: Option<Link>,
    /// Starting the watchdog failed once: said once, not tried again.
    unavailable: bool,
}

#[derive(Debug)]
struct Link {
    child: Child,
    pipe: ChildStdin,
}

/// Lets this process start a watchdog for its step processes; call it once, early in `main`.
pub fn enable_watchdog() {
    let mut registry = lock();
    if registry.is_none() {
        *registry = Some(Registry::default());
    }
}

/// Tells the watchdog that the engine is exiting normally: it exits and stops nothing. Steps
/// still registered then are left to the engine's own cleanup.
pub fn dismiss_watchdog() {
    let mut registry = lock();
    if let Some(registry) = registry.as_mut()
        && let Some(mut link) = registry.link.take()
    {
        // A watchdog already gone needs no goodbye.
        let _ = link.pipe.write_all(Message::Bye.line().as_bytes());
        drop(link.pipe);
        // It exits at once; waiting for it costs a context switch and leaves no zombie when
        // the engine is not about to exit (a library user).
        let _ = link.child.wait();
    }
}

/// Registers the process group led by `leader`, just started; a no-op unless enabled.
pub(crate) fn register(leader: u32) {
    register_started(leader, super::unix::start_time(leader));
}

/// As `register`, with the leader's kernel start time already read by the caller.
pub(crate) fn register_started(leader: u32, start_time: Option<u64>) {
    let mut guard = lock();
    let Some(registry) = guard.as_mut() else {
        return;
    };
    let Some(start_time) = start_time else {
        return;
    };
    registry.groups.insert(leader, start_time);
    registry.send(&Message::Register {
        group: leader,
        start_time,
    });
}

/// Forgets the group led by `leader`: its leader was reaped, or the group was killed.
pub(crate) fn unregister(leader: u32) {
    let mut guard = lock();
    let Some(registry) = guard.as_mut() else {
        return;
    };
    if registry.groups.remove(&leader).is_some() {
        registry.send(&Message::Unregister { group: leader });
    }
}

fn lock() -> MutexGuard<'static, Option<Registry>> {
    // The state is a map and a pipe: still consistent after a panic elsewhere.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Sends `message`, starting the watchdog first if there is none; one whose pipe broke
    /// (it was killed) is replaced by a new one that learns every registered group.
    fn send(&mut self, message: &Message) {
        if let Some(link) = self.link.as_mut() {
            if link.pipe.write_all(message.line().as_bytes()).is_ok() {
                return;
            }
            if let Some(mut link) = self.link.take() {
                let _ = link.child.kill();
                let _ = link.child.wait();
            }
        }
        if self.unavailable {
            return;
        }
        match start() {
            Ok(mut link) => {
                let replay: String = self
                    .groups
                    .iter()
                    .map(|(&group, &start_time)| Message::Register { group, start_time }.line())
                    .collect();
                if link.pipe.write_all(replay.as_bytes()).is_ok() {
                    self.link = Some(link);
                } else {
                    let _ = link.child.kill();
                    let _ = link.child.wait();
                }
            }
            Err(error) => {
                self.unavailable = true;
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: cannot start the watchdog process: {error}: step processes may outlive the engine if it is killed"
                );
            }
        }
    }
}

/// Starts the watchdog: this very executable with the hidden argument, in a process group of
/// its own (a signal to the engine's group, Ctrl-C included, does not reach it), reading the
/// pipe on stdin, holding no other descriptor of the engine (all are close-on-exec).
fn start() -> std::io::Result<Link> {
    let program = if cfg!(target_os = "linux") {
        // Works even when the file was replaced or removed since the engine started.
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let mut command = Command::new(program);
    std::os::unix::process::CommandExt::arg0(&mut command, "runbook");
    command
        .arg(watchdog::ARGUMENT)
        .arg(std::process::id().to_string())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    // Ignored from its first instruction on (an ignored signal stays ignored across exec), not
    // only once the watchdog's `main` gets there: a Ctrl-C while it loads must not stop it.
    // SAFETY: between fork and exec the child only calls sigaction, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            watchdog::ignore_terminal_signals();
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let Some(pipe) = child.stdin.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other("no pipe to the watchdog"));
    };
    Ok(Link { child, pipe })
}
