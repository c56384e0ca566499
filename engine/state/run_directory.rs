//! The state directory (`--state-dir`, `RUNBOOK_STATE_DIR`, default `.runbook`) and each
//! run's directory under `runs/<run-id>/`, created private to the user (0700).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::plan::RunInfo;

/// The state directory to use.
pub fn state_directory(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("RUNBOOK_STATE_DIR")
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(".runbook"))
}

/// A run's directory and its `outputs/` folder.
#[derive(Debug, Clone)]
pub struct RunDirectory {
    pub path: PathBuf,
}

impl RunDirectory {
    /// Creates `<state>/runs/<run-id>/outputs`, every level 0700.
    pub fn create(state: &Path, run_id: &str) -> std::io::Result<RunDirectory> {
        let path = state.join("runs").join(run_id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path.join("outputs"))?;
        let path = std::fs::canonicalize(&path)?;
        Ok(RunDirectory { path })
    }
}

/// A new run's id and clock: `run.timestamp` is fixed here for the whole run.
pub fn new_run_info(state: &Path) -> RunInfo {
    let now = SystemTime::now();
    let started_at = humantime::format_rfc3339_seconds(now).to_string();
    // 2026-11-24T23:10:16Z -> 20261124_231016
    let digits: String = started_at.chars().filter(char::is_ascii_digit).collect();
    let timestamp = format!(
        "{}_{}",
        &digits[..8.min(digits.len())],
        digits.get(8..14).unwrap_or_default()
    );
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let salt = (since_epoch.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xff;
    // Milliseconds keep ids in start order within one second (`show last`); the salt tells
    // apart two runs started in the same millisecond.
    let id = format!("{timestamp}-{:03}{salt:02x}", since_epoch.subsec_millis());
    let directory = state.join("runs").join(&id);
    RunInfo {
        id,
        started_at,
        timestamp,
        directory,
    }
}

/// Every run directory of a state directory, oldest first (run ids start with their time).
pub fn list_runs(state: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.join("runs")) else {
        return Vec::new();
    };
    let mut runs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(super::JOURNAL_FILE).is_file())
        .collect();
    runs.sort();
    runs
}

/// The directory of run `name`: an exact id, a unique prefix of one, or `last`.
pub fn find_run(state: &Path, name: &str) -> Result<PathBuf, String> {
    let runs = list_runs(state);
    if runs.is_empty() {
        return Err(format!("no runs are recorded in `{}`", state.display()));
    }
    if name == "last" {
        return runs.last().cloned().ok_or_else(|| "no runs".to_string());
    }
    let id = |path: &PathBuf| {
        path.file_name()
            .map(|name| name.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    if let Some(exact) = runs.iter().find(|path| id(path) == name) {
        return Ok(exact.clone());
    }
    let matching: Vec<&PathBuf> = runs
        .iter()
        .filter(|path| id(path).starts_with(name))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no run `{name}` in `{}` (see `runbook history`)",
            state.display()
        )),
        many => Err(format!(
            "`{name}` matches {} runs: {}",
            many.len(),
            many.iter()
                .map(|path| format!("`{}`", id(path)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
