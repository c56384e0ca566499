//! `runbooks/fleet-deploy.yaml` run end to end (SPEC §12) against one real sshd per web host
//! on 127.0.0.1: the file's procedure as written (vars, rollout, steps), only its inventory
//! (`hosts` and `ssh`) replaced by the test's. Each host has a root directory with
//! `app/releases/v1` and `app/current` pointing at it, and serves `current` over HTTP on its
//! own port (a `python3 -m http.server` started detached with a pid file: the `restart` the
//! test passes). The release server is a directory read through `file://`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::{SshServer, known_hosts_of};
use common::{Output, Test, ports::free_port, runs::run_id};

const NAMES: [&str; 4] = ["web1", "web2", "web3", "web4"];

/// How the test's hosts restart the app: stop the one the pid file names, wait for it to
/// be gone, start a server of `$APP_DIR/current` detached (its own session), and wait until
/// it answers on /health.
const RESTART: &str = r#"pid_file="$APP_DIR/app.pid"
if [ -s "$pid_file" ]; then
  old=$(cat "$pid_file")
  kill "$old" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
fi
setsid PYTHON -m http.server "$APP_PORT" --bind 127.0.0.1 --directory "$APP_DIR/current" </dev/null >"$APP_DIR/app.log" 2>&1 &
echo $! > "$pid_file"
for _ in $(seq 200); do
  curl -fs "http://127.0.0.1:$APP_PORT/health" >/dev/null && exit 0
  sleep 0.05
done
echo "the app did not answer on port $APP_PORT" >&2
exit 1
"#;

/// The web hosts: their sshds, their app ports, and the servers they run (stopped when
/// dropped, by the pid each host's app left in its pid file).
struct Fleet {
    servers: Vec<SshServer>,
    ports: Vec<u16>,
    known_hosts: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Fleet {
        let servers: Vec<SshServer> = NAMES.iter().map(|name| SshServer::start(name)).collect();
        let known_hosts = known_hosts_of(&servers);
        let ports = servers.iter().map(|_| free_port()).collect();
        let fleet = Fleet {
            servers,
            ports,
            known_hosts,
        };
        for (index, _) in NAMES.iter().enumerate() {
            let app = fleet.app(index);
            std::fs::create_dir_all(app.join("releases/v1")).expect("releases/v1");
            std::fs::write(app.join("releases/v1/health"), "v1\n").expect("health");
            std::os::unix::fs::symlink(app.join("releases/v1"), app.join("current"))
                .expect("current");
            fleet.restart_locally(index);
        }
        fleet
    }

    fn app(&self, index: usize) -> PathBuf {
        self.servers[index].directory().join("root/app")
    }

    /// Starts host `index`'s app as its `restart` would: the state before the release.
    fn restart_locally(&self, index: usize) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(restart_command())
            .env("APP_DIR", self.app(index))
            .env("APP_PORT", self.ports[index].to_string())
            .status()
            .expect("sh");
        assert!(
            status.success(),
            "the app of {} did not start",
            NAMES[index]
        );
    }

    /// The runbook's inventory: each host with its address, port, key, `app_dir` and
    /// `app_port`, all in group `web`, and `ssh` trusting the test's host keys only.
    fn inventory(&self) -> String {
        let mut text = String::from("hosts:\n");
        for (index, server) in self.servers.iter().enumerate() {
            text.push_str(&format!(
                "  {}: {{ address: 127.0.0.1, port: {}, identity_file: \"{}\", groups: [web], vars: {{ app_dir: \"{}\", app_port: \"{}\" }} }}\n",
                server.name,
                server.port,
                server.client_key.display(),
                self.app(index).display(),
                self.ports[index]
            ));
        }
        text.push_str(&format!(
            "ssh:\n  connect_timeout: 5s\n  options: {{ UserKnownHostsFile: \"{}\", GlobalKnownHostsFile: /dev/null, StrictHostKeyChecking: \"yes\", IdentitiesOnly: \"yes\" }}\n",
            self.known_hosts.path().join("known_hosts").display()
        ));
        text
    }

    /// What host `index`'s `current` points at (`v1`, `v2`).
    fn current(&self, index: usize) -> String {
        let target = std::fs::read_link(self.app(index).join("current")).expect("current");
        target
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_string()
    }

    /// What host `index`'s app answers on /health, over HTTP.
    fn health(&self, index: usize) -> String {
        let output = Command::new("curl")
            .args(["-fsS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{}/health", self.ports[index]))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn has_release(&self, index: usize, release: &str) -> bool {
        self.app(index).join("releases").join(release).exists()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for index in 0..self.servers.len() {
            let pid = std::fs::read_to_string(self.app(index).join("app.pid")).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// The restart command with this machine's python3 (the sessions' PATH is sshd's default).
fn restart_command() -> String {
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("python3 in /usr/bin or /usr/local/bin: the hosts' app is python3 -m http.server");
    RESTART.replace("PYTHON", python)
}

/// `runbooks/fleet-deploy.yaml` with the test's inventory in place of its own: the text
/// before `hosts:` and from `rollout:` on is the file's, byte for byte.
fn fleet_runbook(fleet: &Fleet) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/fleet-deploy.yaml");
    let text = std::fs::read_to_string(path).expect("runbooks/fleet-deploy.yaml");
    let hosts = text.find("\nhosts:\n").expect("a `hosts` block") + 1;
    let rollout = text.find("\nrollout:\n").expect("a `rollout` block") + 1;
    format!(
        "{}{}{}",
        &text[..hosts],
        fleet.inventory(),
        &text[rollout..]
    )
}

/// A directory of release tarballs: `v2.tar.gz` holds `health` saying `v2`.
fn release_server(test: &Test) -> String {
    let releases = test.path().join("releases");
    let content = test.path().join("v2");
    std::fs::create_dir_all(&releases).expect("releases");
    std::fs::create_dir_all(&content).expect("content");
    std::fs::write(content.join("health"), "v2\n").expect("health");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(releases.join("v2.tar.gz"))
        .arg("-C")
        .arg(&content)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    format!("file://{}", releases.display())
}

/// Runs the fleet runbook for release v2.
fn deploy(test: Test, fleet: &Fleet) -> Output {
    let release_url = release_server(&test);
    test.runbook_bytes("fleet-deploy.yaml", fleet_runbook(fleet).as_bytes())
        .args([
            "run",
            "{file}",
            "--var",
            "release=v2",
            "--var",
            &format!("release_url={release_url}"),
            "--var",
            &format!("restart={}", restart_command()),
            "--var",
            "pause=10ms",
        ])
        .run()
}

#[test]
fn the_release_rolls_out_canary_first_and_a_later_rollback_puts_every_host_back() {
    let fleet = Fleet::start();
    let output = deploy(Test::new(), &fleet);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for (index, name) in NAMES.iter().enumerate() {
        assert_eq!(fleet.current(index), "v2", "{name}");
        assert_eq!(fleet.health(index), "v2", "{name} serves the release");
    }
    // Canary first: web1's switch ended before any host of batch 2 started.
    let position = |text: &str| {
        output
            .stdout
            .find(text)
            .unwrap_or_else(|| panic!("`{text}` in:\n{}", output.stdout))
    };
    assert!(position("switch@web1") < position("stage@web2"));
    assert!(position("stage@web3") < position("stage@web4"));
    let rollback = Test::new()
        .args(["rollback", &run_id(&output)])
        .state_of(&output)
        .run();
    assert_eq!(rollback.code, 0, "{}", rollback.snapshot());
    for (index, name) in NAMES.iter().enumerate() {
        assert_eq!(fleet.current(index), "v1", "{name}");
        assert_eq!(
            fleet.health(index),
            "v1",
            "{name} serves its previous release"
        );
        assert!(!fleet.has_release(index, "v2"), "{name}'s v2 was removed");
    }
}

#[test]
fn a_failure_in_the_second_batch_switches_the_canary_back_and_never_touches_the_last_batch() {
    let fleet = Fleet::start();
    // web3 cannot unpack the release: its `releases` is a file.
    let releases = fleet.app(2).join("releases");
    std::fs::rename(&releases, fleet.app(2).join("releases.old")).expect("move releases");
    std::fs::write(&releases, "").expect("a file in the way");
    let output = deploy(Test::new(), &fleet);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        output.stdout.contains("stage@web3"),
        "{}",
        output.snapshot()
    );
    for (index, name) in [(0, "web1"), (1, "web2")] {
        assert_eq!(fleet.current(index), "v1", "{name} switched back");
        assert_eq!(fleet.health(index), "v1", "{name} serves v1 again");
        assert!(!fleet.has_release(index, "v2"), "{name}'s v2 was removed");
    }
    assert_eq!(fleet.current(3), "v1");
    assert!(
        !fleet.has_release(3, "v2"),
        "web4, the last batch, was never touched"
    );
    assert!(
        !fleet.app(3).join("previous_release").exists(),
        "web4 never switched"
    );
    // The undo went host by host, the canary last.
    let undo = |text: &str| {
        output
            .stdout
            .rfind(text)
            .unwrap_or_else(|| panic!("`{text}` in:\n{}", output.stdout))
    };
    assert!(undo("undo switch@web1") > undo("undo stage@web2"));
}
