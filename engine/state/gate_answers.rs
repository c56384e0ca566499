//! Answers to approval gates given from another terminal (`runbook approve|deny RUN GATE`):
//! one file per gate under `<run-dir>/approvals/`, written atomically (a temporary file
//! renamed into place), taken (read, then removed) by the run waiting at that gate.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory under a run directory that holds answers not yet taken.
pub const APPROVALS_DIRECTORY: &str = "approvals";

/// One answer to one gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateAnswer {
    pub approved: bool,
    /// The user who answered.
    pub by: String,
    pub reason: Option<String>,
}

fn file_of(run_directory: &Path, gate: &str) -> PathBuf {
    run_directory
        .join(APPROVALS_DIRECTORY)
        .join(format!("{gate}.json"))
}

/// Leaves `answer` for the run waiting at `gate`; a reader sees the whole answer or none.
pub fn write_gate_answer(
    run_directory: &Path,
    gate: &str,
    answer: &GateAnswer,
) -> std::io::Result<()> {
    let directory = run_directory.join(APPROVALS_DIRECTORY);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&directory)?;
    let text = serde_json::to_string(answer).map_err(std::io::Error::other)?;
    let temporary = directory.join(format!(".{gate}.json.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, file_of(run_directory, gate))?;
        std::fs::File::open(&directory)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The answer left for `gate`, removed so that it answers the gate once; none when there is
/// none yet. An unreadable file is an error: a person answered, and must hear it was lost.
pub fn take_gate_answer(run_directory: &Path, gate: &str) -> Result<Option<GateAnswer>, String> {
    let path = file_of(run_directory, gate);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
    };
    let _ = std::fs::remove_file(&path);
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| format!("the answer in `{}` is damaged: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_once() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let answer = GateAnswer {
            approved: false,
            by: "alice".into(),
            reason: Some("error rate still rising".into()),
        };
        assert_eq!(take_gate_answer(directory.path(), "gate"), Ok(None));
        write_gate_answer(directory.path(), "gate", &answer).expect("written");
        assert_eq!(take_gate_answer(directory.path(), "gate"), Ok(Some(answer)));
        assert_eq!(take_gate_answer(directory.path(), "gate"), Ok(None));
    }
}
