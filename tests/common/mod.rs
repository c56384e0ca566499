//! The test builder: writes a runbook into a temporary directory, runs the real binary on
//! it, and returns exit code, stdout and stderr with paths redacted for snapshots. Its default
//! state directory is `<dir>/xdg-state/runbook` (`XDG_STATE_HOME`), so no test writes into the
//! real `~/.local/state`.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the builder"
)]

pub mod engine;
pub mod fleet;
pub mod ports;
pub mod runs;
pub mod sshd;
pub mod yaml_files;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One invocation of `runbook`.
pub struct Test {
    directory: tempfile::TempDir,
    runbook: Option<(String, Vec<u8>)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    wrapper: Vec<String>,
}

/// What the binary did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub directory: PathBuf,
    /// Removed when the output is dropped.
    _keep: tempfile::TempDir,
}

impl Output {
    /// Exit code, stdout and stderr in one text, for snapshots.
    pub fn snapshot(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn marker_exists(&self) -> bool {
        self.directory.join("marker").exists()
    }
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            directory: tempfile::tempdir().expect("a temporary directory"),
            runbook: None,
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            stdin: None,
            wrapper: Vec::new(),
        }
    }

    /// The runbook text, written as `runbook.yaml`.
    pub fn runbook(self, text: &str) -> Test {
        self.runbook_bytes("runbook.yaml", text.as_bytes())
    }

    pub fn runbook_bytes(mut self, name: &str, bytes: &[u8]) -> Test {
        self.runbook = Some((name.to_string(), bytes.to_vec()));
        self
    }

    /// Another file in the test directory.
    pub fn file(self, name: &str, contents: &str) -> Test {
        let path = self.directory.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, contents).expect("write file");
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Test {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Test {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn current_dir(mut self, directory: &Path) -> Test {
        self.current_dir = Some(directory.to_path_buf());
        self
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    /// Runs the binary; `{file}` in args stands for the runbook's path, `{dir}` for the
    /// test directory.
    pub fn run(self) -> Output {
        let directory = self.directory.path().to_path_buf();
        let file = match &self.runbook {
            Some((name, bytes)) => {
                let path = directory.join(name);
                std::fs::write(&path, bytes).expect("write runbook");
                path
            }
            None => directory.join("runbook.yaml"),
        };
        let args: Vec<String> = self
            .args
            .iter()
            .map(|arg| {
                arg.replace("{file}", &file.display().to_string())
                    .replace("{dir}", &directory.display().to_string())
            })
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
        command
            .args(&args)
            .current_dir(self.current_dir.as_deref().unwrap_or(&directory))
            .env("NO_COLOR", "1")
            .env("MARKER", directory.join("marker"))
            .env("BAD_INPUT_MARKER", directory.join("marker"))
            .env_remove("RUNBOOK_STATE_DIR")
            .env("XDG_STATE_HOME", directory.join("xdg-state"));
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let output = command.output().expect("run the runbook binary");
        let redact = |text: &[u8]| {
            String::from_utf8_lossy(text).replace(&directory.display().to_string(), "[DIR]")
        };
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: redact(&output.stdout),
            stderr: redact(&output.stderr),
            directory,
            _keep: self.directory,
        }
    }
}

/// Replaces `{file}` and `{dir}` in an argument.
fn expand(arg: &str, file: &Path, directory: &Path) -> String {
    arg.replace("{file}", &file.display().to_string())
        .replace("{dir}", &directory.display().to_string())
}

impl Test {
    /// Bytes written to the binary's stdin by `spawn` and `run_within` (otherwise stdin is
    /// empty).
    pub fn stdin(mut self, bytes: &[u8]) -> Test {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Runs the binary through a wrapper program, e.g. `["/usr/bin/time", "-f", "%M", "-o",
    /// "{dir}/rss"]` (for `spawn` and `run_within`): the wrapper's words come first, then the
    /// binary and its arguments.
    pub fn wrap<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, words: I) -> Test {
        self.wrapper
            .extend(words.into_iter().map(|word| word.as_ref().to_string()));
        self
    }

    /// Starts the binary without waiting for it: for tests that signal it or watch it run.
    pub fn spawn(self) -> Running {
        let directory = self.directory.path().to_path_buf();
        let file = match &self.runbook {
            Some((name, bytes)) => {
                let path = directory.join(name);
                std::fs::write(&path, bytes).expect("write runbook");
                path
            }
            None => directory.join("runbook.yaml"),
        };
        let binary = env!("CARGO_BIN_EXE_runbook").to_string();
        let mut words: Vec<String> = self
            .wrapper
            .iter()
            .map(|word| expand(word, &file, &directory))
            .collect();
        words.push(binary);
        words.extend(self.args.iter().map(|arg| expand(arg, &file, &directory)));
        let mut command = Command::new(&words[0]);
        command
            .args(&words[1..])
            .current_dir(self.current_dir.as_deref().unwrap_or(&directory))
            .env("NO_COLOR", "1")
            .env("MARKER", directory.join("marker"))
            .env("BAD_INPUT_MARKER", directory.join("marker"))
            .env_remove("RUNBOOK_STATE_DIR")
            .env("XDG_STATE_HOME", directory.join("xdg-state"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the runbook binary");
        let input = self.stdin.clone().unwrap_or_default();
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
            writer,
        ];
        Running {
            child,
            directory,
            stdout,
            stderr,
            readers,
            keep: self.directory,
        }
    }

    /// Runs the binary; if it has not finished within `limit` it is killed and the test fails.
    pub fn run_within(self, limit: Duration) -> Output {
        self.spawn().finish(limit)
    }
}

fn collect(
    mut stream: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => into
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(&buffer[..count]),
            }
        }
    })
}

/// A binary started by `Test::spawn`.
pub struct Running {
    child: std::process::Child,
    directory: PathBuf,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    keep: tempfile::TempDir,
}

impl Running {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid")
    }

    pub fn path(&self) -> &Path {
        &self.directory
    }

    /// Sends `signal` to the binary alone (not to its process group).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signal the runbook binary");
    }

    /// The stdout so far, lossily decoded.
    pub fn stdout_so_far(&self) -> String {
        let bytes = self
            .stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until the file `name` in the test directory exists; fails the test after `limit`.
    pub fn wait_for_file(&mut self, name: &str, limit: Duration) {
        let path = self.directory.join(name);
        let deadline = Instant::now() + limit;
        while !path.exists() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "`{name}` did not appear within {limit:?}; stdout so far:\n{}",
                    self.stdout_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until stdout contains `text`; fails the test after `limit`.
    pub fn wait_for_stdout(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.stdout_so_far().contains(text) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "stdout did not show {text:?} within {limit:?}; stdout so far:\n{}",
                    self.stdout_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the binary to exit; kills it and fails the test if that takes over `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the runbook binary") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the runbook binary did not finish within {limit:?}; stdout so far:\n{}",
                    self.stdout_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // A process the binary left behind may still hold the pipes; do not wait on it.
        let drain = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|reader| !reader.is_finished()) && Instant::now() < drain {
            std::thread::sleep(Duration::from_millis(10));
        }
        let directory = self.directory.clone();
        let redact = |text: &Arc<Mutex<Vec<u8>>>| {
            let bytes = text
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).replace(&directory.display().to_string(), "[DIR]")
        };
        Output {
            code: status.code().unwrap_or(-1),
            stdout: redact(&self.stdout),
            stderr: redact(&self.stderr),
            directory: self.directory,
            _keep: self.keep,
        }
    }
}

/// The lines of a file in the test directory; none when it does not exist.
pub fn lines(directory: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(directory.join(name))
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The JSON events of `--log-format json` output, one object a line.
pub fn json_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("bad JSON {line:?}: {error}"))
        })
        .collect()
}

/// Whether a live (not zombie) process has this pid. A zombie is dead: in a container whose
/// init does not reap orphans, `kill -0` still succeeds on it.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The live (not zombie) processes in process group `group`.
pub fn group_members(group: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    // state ppid pgrp
                    let state = *fields.first()?;
                    let pgrp: i32 = fields.get(2)?.parse().ok()?;
                    Some(pgrp == group && state != "Z" && state != "X")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The live processes (other than the test's own) whose command line holds `needle`, each as
/// `pid: command line`.
pub fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
            argv.contains(needle).then(|| format!("{pid}: {argv}"))
        })
        .collect()
}

/// Standard base64 with padding, to look for an encoded secret in outputs and files.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (index, &byte)| {
            word | (u32::from(byte) << (16 - 8 * index))
        });
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[(word >> (18 - 6 * index)) as usize & 63],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The CPU time (user and system, in clock ticks) process `pid` has used so far.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's stat");
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Clock ticks a second (`getconf CLK_TCK`), the unit of `cpu_ticks`.
pub fn clock_ticks_per_second() -> u64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}
