//! A real OpenSSH server per simulated host: `sshd -D` on 127.0.0.1 and a free port, run as
//! the current user (root included, with `PermitRootLogin yes`), with its own host key, an
//! `AuthorizedKeysFile` holding a client key made for the test, a `PidFile`, `UsePAM no`,
//! `StrictModes no` and a `TMPDIR` of its own; plus a known_hosts file for the test. Stopped
//! when dropped; `kill` makes the host's sshd die (listener and connections) meanwhile.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port;

/// One host's sshd.
pub struct SshServer {
    pub name: String,
    pub port: u16,
    /// The private key the server accepts.
    pub client_key: PathBuf,
    /// A known_hosts file that knows this server's key.
    pub known_hosts: PathBuf,
    child: Option<Child>,
    directory: tempfile::TempDir,
}

impl SshServer {
    /// Starts an sshd for host `name`; fails the test naming what to install when OpenSSH's
    /// server or client is missing.
    pub fn start(name: &str) -> SshServer {
        SshServer::start_with_env(name, &[])
    }

    /// As `start`, with more variables for the sessions' environment (sshd's `SetEnv`, which
    /// sshd reads once: the server's `TMPDIR` goes on the same line).
    pub fn start_with_env(name: &str, environment: &[(&str, &str)]) -> SshServer {
        let sshd = sshd_program();
        require_client();
        let directory = tempfile::tempdir().expect("a directory for sshd");
        let path = directory.path();
        keygen(&path.join("host_key"));
        keygen(&path.join("client_key"));
        std::fs::copy(path.join("client_key.pub"), path.join("authorized_keys"))
            .expect("write authorized_keys");
        std::fs::create_dir(path.join("tmp")).expect("the host's TMPDIR");
        if running_as_root() {
            // What the packaged service creates at boot: sshd refuses to start as root
            // without its privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        for _ in 0..5 {
            let port = free_port();
            let config = path.join("sshd_config");
            std::fs::write(&config, config_text(path, port, environment))
                .expect("write sshd_config");
            let log = std::fs::File::create(path.join("sshd.log")).expect("create sshd.log");
            let mut child = Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let host_key = std::fs::read_to_string(path.join("host_key.pub"))
                        .expect("read the host key");
                    let known_hosts = path.join("known_hosts");
                    let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
                    std::fs::write(
                        &known_hosts,
                        format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
                    )
                    .expect("write known_hosts");
                    return SshServer {
                        name: name.to_string(),
                        port,
                        client_key: path.join("client_key"),
                        known_hosts,
                        child: Some(child),
                        directory,
                    };
                }
                if child.try_wait().expect("poll sshd").is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!(
            "sshd did not start on 127.0.0.1; its log:\n{}",
            std::fs::read_to_string(directory.path().join("sshd.log")).unwrap_or_default()
        )
    }

    /// The options a client needs for this server alone: its known_hosts, its key only,
    /// strict host key checking.
    pub fn client_options(&self) -> Vec<(String, String)> {
        vec![
            (
                "UserKnownHostsFile".into(),
                self.known_hosts.display().to_string(),
            ),
            ("GlobalKnownHostsFile".into(), "/dev/null".into()),
            ("StrictHostKeyChecking".into(), "yes".into()),
            ("IdentitiesOnly".into(), "yes".into()),
        ]
    }

    /// The server's log (sshd at `VERBOSE`: one `Accepted publickey` per connection).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("sshd.log")).unwrap_or_default()
    }

    /// How many connections the server accepted so far.
    pub fn connections(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The host's own `TMPDIR` (sshd's `SetEnv`): what a session leaves there stays visible.
    pub fn tmp_dir(&self) -> PathBuf {
        self.directory.path().join("tmp")
    }

    /// Every process the server's sessions run (sshd's own, and what they started: login
    /// shells, agents, scripts), by pid.
    pub fn session_processes(&self) -> Vec<u32> {
        let Some(child) = &self.child else {
            return Vec::new();
        };
        descendants(child.id(), |_| true)
    }

    /// The files left in the host's `TMPDIR`.
    pub fn tmp_files(&self) -> Vec<String> {
        std::fs::read_dir(self.tmp_dir())
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect()
    }

    /// The host's sshd dies: the listener and every sshd process serving a connection get
    /// SIGKILL; what the sessions run (the scripts) is left to notice.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let listener = child.id();
        let served = sshd_descendants(listener);
        let _ = child.kill();
        let _ = child.wait();
        for pid in served {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid.cast_signed()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl SshServer {
    /// Every connection to the host ends (its sshd processes get SIGKILL) while the server
    /// keeps listening: a network blip, a restarted sshd.
    pub fn drop_connections(&self) {
        let Some(child) = &self.child else {
            return;
        };
        for pid in sshd_descendants(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid.cast_signed()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config_text(directory: &Path, port: u16, environment: &[(&str, &str)]) -> String {
    let path = |name: &str| directory.join(name).display().to_string();
    let environment: String = environment
        .iter()
        .map(|(name, value)| format!(" {name}={value}"))
        .collect();
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         PidFile {pid_file}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         UsePAM no\n\
         StrictModes no\n\
         PermitRootLogin yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PrintMotd no\n\
         MaxSessions 64\n\
         MaxStartups 64\n\
         LogLevel VERBOSE\n\
         SetEnv TMPDIR={tmp}{environment}\n",
        tmp = path("tmp"),
        host_key = path("host_key"),
        pid_file = path("sshd.pid"),
        authorized_keys = path("authorized_keys"),
    )
}

fn keygen(path: &Path) {
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "runbook-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        output.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// sshd must be started by its absolute path (it re-executes itself); Debian keeps it in
/// /usr/sbin, off a normal user's PATH.
fn sshd_program() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|directory| directory.join("sshd"))
        .find(|candidate| candidate.is_file() && candidate.is_absolute())
        .unwrap_or_else(|| {
            panic!(
                "`sshd` is not installed, and the remote transport tests start one per \
                 simulated host: install it with `apt-get install openssh-server` \
                 (scripts/test does this when it is missing)"
            )
        })
}

fn require_client() {
    for program in ["ssh", "ssh-keygen"] {
        let found = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|directory| directory.join(program).is_file())
        });
        assert!(
            found,
            "`{program}` is not installed, and the remote transport tests need it: install it \
             with `apt-get install openssh-client` (scripts/test does this when it is missing)"
        );
    }
}

/// A directory whose `known_hosts` knows every one of `servers`' keys: for a client that
/// reaches them all.
pub fn known_hosts_of(servers: &[SshServer]) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("a directory for known_hosts");
    let text: String = servers
        .iter()
        .map(|server| std::fs::read_to_string(&server.known_hosts).expect("known_hosts"))
        .collect();
    std::fs::write(directory.path().join("known_hosts"), text).expect("write known_hosts");
    directory
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

/// The sshd processes below `root` (those serving its connections), from /proc.
fn sshd_descendants(root: u32) -> Vec<u32> {
    descendants(root, |name| name.starts_with("sshd"))
}

/// The descendants of `root` whose command names `follow` accepts (and theirs).
fn descendants(root: u32, follow: impl Fn(&str) -> bool) -> Vec<u32> {
    let processes: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
            let parent = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, parent, name))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, _, name) in processes.iter().filter(|(_, p, _)| *p == parent) {
            if follow(name) {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found
}

/// A directory for a host's `PATH` (sshd's `SetEnv PATH=...`) with every program of
/// /usr/bin and /usr/sbin but perl: a host where the agent cannot run.
pub fn path_without_perl() -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("a directory for the PATH");
    for system in ["/usr/bin", "/usr/sbin"] {
        for entry in std::fs::read_dir(system).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let link = directory.path().join(&name);
            if name.to_string_lossy().starts_with("perl") || link.exists() {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), link).expect("a link to a program");
        }
    }
    directory
}
