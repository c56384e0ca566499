//! The test builder: writes a runbook into a temporary directory, runs the real binary on
//! it, and returns exit code, stdout and stderr with paths redacted for snapshots.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the builder"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One invocation of `runbook`.
pub struct Test {
    directory: tempfile::TempDir,
    runbook: Option<(String, Vec<u8>)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
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
            .env_remove("RUNBOOK_STATE_DIR");
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
