//! What to run for one step (`CommandSpec`) and why starting it can fail (`SpawnError`).

use std::io;
use std::path::{Path, PathBuf};

/// One command as the executor renders it from a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program and its arguments, e.g. `["bash", "--noprofile", "--norc", "-eo", "pipefail",
    /// "-c", script]`. Never a secret: any user can read a command line in `/proc`.
    pub argv: Vec<String>,
    /// Added to the environment the engine inherited; the only way a secret reaches a step.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// Why a command could not be started; the cause, when there is one, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("the command is empty: there is no program to run")]
    EmptyCommand,
    #[error("cannot start `{program}` outside a tokio runtime")]
    NoRuntime { program: String },
    #[error("working directory `{}` cannot be used", cwd.display())]
    WorkingDirectory {
        cwd: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start `{program}`")]
    Program {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch for the exit of `{program}`")]
    ExitWatch {
        program: String,
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    /// The OS error number behind the failure, for a `spawn_failed:<errno>` reason.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SpawnError::WorkingDirectory { source, .. }
            | SpawnError::Program { source, .. }
            | SpawnError::ExitWatch { source, .. } => source.raw_os_error(),
            SpawnError::EmptyCommand | SpawnError::NoRuntime { .. } => None,
        }
    }

    /// A failed spawn reports `ENOENT` alike for a missing program and a missing directory, so
    /// the directory is looked at to say which one it was.
    pub(super) fn from_spawn(cwd: &Path, program: &str, source: io::Error) -> SpawnError {
        let cwd_problem = match std::fs::metadata(cwd) {
            Err(error) => Some(error),
            Ok(metadata) if !metadata.is_dir() => Some(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
            Ok(_) => None,
        };
        match cwd_problem {
            Some(source) => SpawnError::WorkingDirectory {
                cwd: cwd.to_path_buf(),
                source,
            },
            None => SpawnError::Program {
                program: program.to_string(),
                source,
            },
        }
    }
}
