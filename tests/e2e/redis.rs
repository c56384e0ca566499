//! A Redis server of its own for each test (Debian's `redis-server`), on 127.0.0.1 and a free
//! port, without persistence; killed when dropped.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::{checked, free_port, require};

pub struct Redis {
    child: Child,
    pub port: u16,
    _directory: tempfile::TempDir,
}

/// Every key with its DUMP payload (as redis-cli quotes it) and whether it expires: what a
/// cache rollback must bring back.
#[derive(Debug, PartialEq, Eq)]
pub struct CacheState(pub Vec<String>);

impl Redis {
    pub fn start() -> Redis {
        let server = require("redis-server", "redis-server");
        let directory = tempfile::tempdir().expect("a directory for redis");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&server)
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--port", &port.to_string()])
                .arg("--dir")
                .arg(directory.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let ping = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "PING"])
                    .output()
                    .expect("run redis-cli");
                if String::from_utf8_lossy(&ping.stdout).trim() == "PONG" {
                    return Redis {
                        child,
                        port,
                        _directory: directory,
                    };
                }
                if child.try_wait().expect("poll redis-server").is_some()
                    || Instant::now() > deadline
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start on 127.0.0.1")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// redis-cli with `args`; stdout, raw.
    pub fn cli(&self, args: &[&str]) -> String {
        checked(
            Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "--raw"])
                .args(args),
        )
    }

    /// Feeds `commands` (one a line, quoted as redis-cli reads them) to redis-cli; stdout.
    pub fn pipe(&self, commands: &str, raw: bool) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .arg(if raw { "--raw" } else { "--no-raw" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run redis-cli");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(commands.as_bytes())
            .expect("write commands");
        let output = child.wait_with_output().expect("redis-cli output");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn state(&self) -> CacheState {
        let keys = checked(Command::new("redis-cli").args([
            "-p",
            &self.port.to_string(),
            "--no-raw",
            "--scan",
        ]));
        let mut keys: Vec<&str> = keys.lines().collect();
        keys.sort_unstable();
        let ask = |command: &str, raw: bool| -> Vec<String> {
            let commands: String = keys
                .iter()
                .map(|key| format!("{command} {key}\n"))
                .collect();
            self.pipe(&commands, raw)
                .lines()
                .map(str::to_string)
                .collect()
        };
        let dumps = ask("DUMP", false);
        let ttls = ask("PTTL", true);
        assert_eq!(dumps.len(), keys.len(), "one DUMP a key");
        CacheState(
            keys.iter()
                .zip(dumps.iter().zip(&ttls))
                .map(|(key, (dump, ttl))| {
                    let expiry = if ttl.trim() == "-1" {
                        "persistent"
                    } else {
                        "expires"
                    };
                    format!("{key} {expiry} {dump}")
                })
                .collect(),
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
