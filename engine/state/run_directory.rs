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
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let salt = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    let id = format!("{timestamp}-{salt:04x}");
    let directory = state.join("runs").join(&id);
    RunInfo {
        id,
        started_at,
        timestamp,
        directory,
    }
}
