//! One OpenSSH control master per host per run (`ControlMasters`): opened on first use (or
//! ahead of it, in the background, by `open_ahead`), shared by every session to that host,
//! and closed (`ssh -O exit`) by `close_all` at the end of the run, or killed when dropped,
//! so none outlives the run even when it fails or is interrupted. The sockets live in a short private (0700) directory, since a unix socket path
//! may not exceed 108 bytes.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::agent::{Agent, Agents};
use super::closing::close_each;
use super::connection::{Connection, RecentLines, keep_lines, lines_of};
use super::{RemoteError, SshTarget};
use crate::process;

/// Room left in a socket path for the name OpenSSH binds first (`<path>.` + 16 random
/// characters) under the 108-byte limit (104 on some systems).
const SOCKET_PATH_LIMIT: usize = 104 - 17;

/// How often the opening master is looked at: its socket appears once it is connected and
/// authenticated.
const OPEN_POLL: Duration = Duration::from_millis(5);

/// Allowed for authentication after the connection itself (`ConnectTimeout`).
const AUTHENTICATION_TIME: Duration = Duration::from_secs(30);

/// Without a `connect_timeout`, how long the engine waits for a connection at most.
const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(60);

/// How long `close_all` waits for a master to leave after `ssh -O exit`.
const CLOSE_TIME: Duration = Duration::from_secs(5);

/// How many masters `open_ahead` opens at once: each opening is a key exchange on both
/// sides, and the first batch's hosts come first.
const OPEN_AHEAD: usize = 2;

/// A master's defaults, which the runbook's `ssh.options` may override. Keepalive: how often
/// it asks the host whether it is still there, and how many missed answers end the
/// connection (a dead host fails its instance within about 15 s). `ConnectionAttempts`: a
/// connection refused or timed out is tried once more, a second later (OpenSSH's own retry;
/// a host whose sshd restarts, a blip), before the instance fails.
const MASTER_DEFAULTS: &[(&str, &str)] = &[
    ("ServerAliveInterval", "5"),
    ("ServerAliveCountMax", "3"),
    ("ConnectionAttempts", "2"),
];

/// The control masters of one run, by host name.
#[derive(Debug)]
pub struct ControlMasters {
    directory: PathBuf,
    slots: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    next_socket: AtomicUsize,
    /// Whether `directory` was made here (and is removed when dropped).
    owns_directory: bool,
    /// The openings `open_ahead` started, stopped by `close_all` and when dropped.
    ahead: Mutex<Option<JoinHandle<()>>>,
    /// The hosts' agents, on sessions through the masters: closed first.
    agents: Agents,
}

#[derive(Debug)]
struct Slot {
    socket: PathBuf,
    master: Option<Master>,
    /// The last opening that failed, and when it ended: a `connect` that was waiting for it
    /// (an opening ahead) takes its failure rather than trying again at once.
    failed: Option<(Instant, RemoteError)>,
}

#[derive(Debug)]
struct Master {
    child: Child,
    pid: u32,
    target: SshTarget,
    recent: RecentLines,
    _reader: JoinHandle<()>,
}

impl Drop for Master {
    fn drop(&mut self) {
        // An opening abandoned half-way (`close_all` stopping `open_ahead`) is dropped here;
        // its `ssh` is killed with it (`kill_on_drop`).
        process::unregister(self.pid);
    }
}

impl ControlMasters {
    /// Masters with their sockets in a new private directory under the system's temporary
    /// directory (`/tmp/runbook-ssh-<random>`), short enough for any socket name.
    pub fn new() -> io::Result<ControlMasters> {
        let base = std::env::temp_dir();
        let base = if base.as_os_str().len() < 40 {
            base
        } else {
            PathBuf::from("/tmp")
        };
        for _ in 0..16 {
            let directory = base.join(format!("runbook-ssh-{}", &super::wrapper::nonce()[..10]));
            match private_directory(&directory) {
                Ok(()) => return Ok(ControlMasters::in_directory(directory, true)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(io::Error::other(
            "cannot find a free name for the control socket directory",
        ))
    }

    /// Masters with their sockets in `<run_directory>/ssh` (made 0700) when that path is
    /// short enough for a socket, else as `new`.
    pub fn for_run(run_directory: &Path) -> io::Result<ControlMasters> {
        let directory = run_directory.join("ssh");
        // Socket names are a counter: a few digits.
        if directory.as_os_str().len() + 8 > SOCKET_PATH_LIMIT {
            return ControlMasters::new();
        }
        match private_directory(&directory) {
            Ok(()) => Ok(ControlMasters::in_directory(directory, true)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::set_permissions(
                    &directory,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )?;
                Ok(ControlMasters::in_directory(directory, false))
            }
            Err(error) => Err(error),
        }
    }

    fn in_directory(directory: PathBuf, owns_directory: bool) -> ControlMasters {
        ControlMasters {
            directory,
            slots: Mutex::new(BTreeMap::new()),
            next_socket: AtomicUsize::new(0),
            owns_directory,
            ahead: Mutex::new(None),
            agents: Agents::new(),
        }
    }

    /// The same masters, every step in a session of its own, no agent (what
    /// `RUNBOOK_REMOTE_AGENT=off` does): to compare the two transports.
    pub fn sessions_only(mut self) -> ControlMasters {
        self.agents = Agents::disabled();
        self
    }

    /// Where the sockets are.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The socket of the live master of host `name`, if one is open: for `ssh -S` by hand.
    pub async fn socket(&self, name: &str) -> Option<PathBuf> {
        let slot = self.lock_slots().get(name).cloned()?;
        let mut slot = slot.lock().await;
        let socket = slot.socket.clone();
        let master = slot.master.as_mut()?;
        matches!(master.child.try_wait(), Ok(None)).then_some(socket)
    }

    /// The pid of the live master of host `name`, if one is open.
    pub async fn master_pid(&self, name: &str) -> Option<u32> {
        let slot = self.lock_slots().get(name).cloned()?;
        let mut slot = slot.lock().await;
        let master = slot.master.as_mut()?;
        matches!(master.child.try_wait(), Ok(None)).then_some(master.pid)
    }

    /// The pid of the local `ssh` of host `name`'s running agent, if one runs.
    pub async fn agent_pid(&self, name: &str) -> Option<u32> {
        self.agents.pid(name).await
    }

    /// The running agent of `target`, started now (through its master, opened if needed)
    /// unless one runs; `None` when the host's steps go in sessions of their own.
    pub(super) async fn agent(
        &self,
        target: &SshTarget,
    ) -> Result<Option<Arc<Agent>>, RemoteError> {
        self.agents
            .agent(target, async || self.connect(target).await)
            .await
    }

    /// Starts opening the masters of `targets` in the background, in that order, at most
    /// `OPEN_AHEAD` at once, so that a host's first session finds its master open (a
    /// connection costs a key exchange: hundreds of milliseconds) and its agent running. A failure is not reported
    /// here: the first session to the host gets it, or tries again when it comes later.
    /// Stopped by `close_all` and when the masters are dropped. Call it within a tokio
    /// runtime.
    pub fn open_ahead(self: &Arc<Self>, targets: Vec<SshTarget>) {
        let masters = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut opening = tokio::task::JoinSet::new();
            for target in targets {
                while opening.len() >= OPEN_AHEAD {
                    opening.join_next().await;
                }
                let masters = Arc::clone(&masters);
                opening.spawn(async move {
                    // The master, then the host's agent through it (none when agents are
                    // off, or the host has no perl: the master is still wanted).
                    if masters.connect(&target).await.is_ok() {
                        let _ = masters.agent(&target).await;
                    }
                });
            }
            while opening.join_next().await.is_some() {}
        });
        let previous = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task);
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Stops the openings `open_ahead` started; a master already open stays.
    async fn stop_opening_ahead(&self) {
        let task = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// The master of `target`, opened now unless one is open and alive. Sessions to the same
    /// host wait here for one opening instead of each opening its own.
    pub(super) async fn connect(&self, target: &SshTarget) -> Result<Connection, RemoteError> {
        let asked = Instant::now();
        let slot = {
            let mut slots = self.lock_slots();
            slots
                .entry(target.name.clone())
                .or_insert_with(|| {
                    let number = self.next_socket.fetch_add(1, Ordering::Relaxed);
                    Arc::new(tokio::sync::Mutex::new(Slot {
                        socket: self.directory.join(number.to_string()),
                        master: None,
                        failed: None,
                    }))
                })
                .clone()
        };
        let mut slot = slot.lock().await;
        let socket = slot.socket.clone();
        if let Some(master) = slot.master.as_mut() {
            let alive = matches!(master.child.try_wait(), Ok(None));
            if alive && master.target == *target {
                return Ok(Connection {
                    socket,
                    recent: master.recent.clone(),
                });
            }
            if let Some(master) = slot.master.take() {
                stop(master, &socket).await;
            }
        }
        if let Some((ended, error)) = &slot.failed
            && *ended >= asked
        {
            // An opening this call waited for failed just now: trying again at once would
            // double the wait for a host that does not answer.
            return Err(error.clone());
        }
        let master = match open(target, &slot.socket).await {
            Ok(master) => master,
            Err(error) => {
                slot.failed = Some((Instant::now(), error.clone()));
                return Err(error);
            }
        };
        slot.failed = None;
        let connection = Connection {
            socket: slot.socket.clone(),
            recent: master.recent.clone(),
        };
        slot.master = Some(master);
        Ok(connection)
    }

    /// Closes every agent, then every master (`ssh -O exit`, then a kill for one that does
    /// not leave) and waits for them to be gone. Masters may be opened again afterwards.
    pub async fn close_all(&self) {
        self.stop_opening_ahead().await;
        // Before the masters their sessions go through: each agent stops what still runs.
        self.agents.close_all().await;
        let slots: Vec<_> = self.lock_slots().values().cloned().collect();
        close_each(slots, |slot| {
            let master = slot.master.take()?;
            let socket = slot.socket.clone();
            Some(async move { stop(master, &socket).await })
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

impl Drop for ControlMasters {
    fn drop(&mut self) {
        if let Some(task) = self
            .ahead
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            // Its openings' `ssh` are killed as their futures are dropped (`kill_on_drop`).
            task.abort();
        }
        let slots = std::mem::take(&mut *self.lock_slots());
        for slot in slots.into_values() {
            // Nothing else holds a slot once the masters are being dropped: `connect` and
            // `close_all` borrow them.
            let Ok(mut slot) = slot.try_lock() else {
                continue;
            };
            if let Some(master) = slot.master.take() {
                process::unregister(master.pid);
                // Dropping the child kills it (`kill_on_drop`).
                drop(master);
            }
            let _ = std::fs::remove_file(&slot.socket);
        }
        if self.owns_directory {
            let _ = std::fs::remove_dir_all(&self.directory);
        }
    }
}

fn private_directory(directory: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(directory)
}

/// Starts `ssh -M -N` for `target` and waits until its socket is there (connected and
/// authenticated) or it gave up.
async fn open(target: &SshTarget, socket: &Path) -> Result<Master, RemoteError> {
    // A socket left by a master that died would make the new one run without listening.
    let _ = std::fs::remove_file(socket);
    let forced = [
        ("BatchMode", "yes".to_string()),
        ("ControlMaster", "yes".to_string()),
        ("ControlPersist", "no".to_string()),
        ("ClearAllForwardings", "yes".to_string()),
    ];
    let defaults: Vec<(&str, String)> = MASTER_DEFAULTS
        .iter()
        .map(|(name, value)| (*name, (*value).to_string()))
        .collect();
    let mut command = Command::new("ssh");
    command
        .args(["-N", "-T", "-S"])
        .arg(socket)
        .args(target.arguments(&forced, &defaults))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group: a Ctrl-C at the terminal is the engine's to handle, and the
        // compensations that follow it still need the connection.
        .process_group(0)
        // Dropped (the run ends without `close_all`, or an opening is abandoned): killed,
        // so the host sees the connection end and its wrappers stop their scripts.
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| RemoteError::spawn(target, &error))?;
    let Some(pid) = child.id() else {
        return Err(RemoteError::spawn(
            target,
            &io::Error::other("ssh exited at once"),
        ));
    };
    // From now on a killed engine leaves no master behind: the watchdog stops its group.
    process::register(pid);
    let recent: RecentLines = Arc::default();
    let reader = match child.stderr.take() {
        Some(stderr) => tokio::spawn(keep_lines(stderr, recent.clone())),
        None => tokio::spawn(async {}),
    };
    let mut master = Master {
        child,
        pid,
        target: target.clone(),
        recent,
        _reader: reader,
    };
    // Two connection attempts a second apart (`ConnectionAttempts`), then authentication.
    let limit = target.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIME) * 2
        + Duration::from_secs(1)
        + AUTHENTICATION_TIME;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if std::fs::symlink_metadata(socket).is_ok() {
            return Ok(master);
        }
        tokio::select! {
            _ = master.child.wait() => {
                process::unregister(pid);
                // Its stderr ends with it; what it said is the reason.
                let reader = std::mem::replace(&mut master._reader, tokio::spawn(async {}));
                let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
                let said = lines_of(&master.recent).join("\n");
                return Err(RemoteError::from_ssh_stderr(target, &said));
            }
            () = tokio::time::sleep(OPEN_POLL) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = master.child.start_kill();
            let _ = master.child.wait().await;
            process::unregister(pid);
            return Err(RemoteError::Connect {
                host: target.name.clone(),
                endpoint: target.endpoint(),
                cause: format!("no connection after {}", humantime::format_duration(limit)),
            });
        }
    }
}

/// `ssh -O exit` through the socket, then waits for the master to leave; kills it if it
/// does not.
async fn stop(mut master: Master, socket: &Path) {
    if matches!(master.child.try_wait(), Ok(None)) {
        let exit = Command::new("ssh")
            .arg("-S")
            .arg(socket)
            .args(["-O", "exit", "--"])
            .arg(&master.target.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .status();
        let _ = tokio::time::timeout(CLOSE_TIME, exit).await;
        if tokio::time::timeout(CLOSE_TIME, master.child.wait())
            .await
            .is_err()
        {
            let _ = master.child.start_kill();
            let _ = master.child.wait().await;
        }
    }
    process::unregister(master.pid);
    let _ = std::fs::remove_file(socket);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("the directory exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_short_run_directory_holds_the_sockets_privately() {
        let run = tempfile::tempdir().expect("a run directory");
        let masters = ControlMasters::for_run(run.path()).expect("masters");
        assert_eq!(masters.directory(), run.path().join("ssh"));
        assert_eq!(mode(masters.directory()), 0o700);
        drop(masters);
        assert!(!run.path().join("ssh").exists());
    }

    #[test]
    fn a_long_run_directory_falls_back_to_a_short_private_one() {
        let run = tempfile::tempdir().expect("a run directory");
        let deep = run.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).expect("a deep directory");
        let masters = ControlMasters::for_run(&deep).expect("masters");
        let directory = masters.directory().to_path_buf();
        assert!(!directory.starts_with(&deep));
        assert!(directory.as_os_str().len() + 8 <= SOCKET_PATH_LIMIT);
        assert_eq!(mode(&directory), 0o700);
        drop(masters);
        assert!(!directory.exists());
    }
}
