//! The state directory (`--state-dir`, `RUNBOOK_STATE_DIR`, default `$XDG_STATE_HOME/runbook`,
//! never the working directory) and each run's directory under `runs/<run-id>/`, created
//! private to the user (0700).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies one run: its id, when it started, and its directory.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// `%Y%m%d_%H%M%S`, UTC: fixed for the whole run.
    pub timestamp: String,
    pub directory: std::path::PathBuf,
}

/// The state directory to use, absolute: `flag`, else `RUNBOOK_STATE_DIR`, else
/// `$XDG_STATE_HOME/runbook` (when that is an absolute path), else
/// `$HOME/.local/state/runbook` (SPEC §10).
pub fn state_directory(flag: Option<&Path>) -> PathBuf {
    let chosen = flag
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("RUNBOOK_STATE_DIR")
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(default_state_directory);
    std::path::absolute(&chosen).unwrap_or(chosen)
}

/// `$XDG_STATE_HOME/runbook`, or `$HOME/.local/state/runbook` when `XDG_STATE_HOME` is unset,
/// empty or relative (as the XDG base directory specification says to ignore it then). With
/// no home directory at all (no `HOME`, no passwd entry) the home is `/`, as `login` does.
fn default_state_directory() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
    {
        return xdg.join("runbook");
    }
    std::env::home_dir()
        .filter(|home| !home.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".local/state/runbook")
}

/// Refuses a state directory that exists but is not a directory (a regular file given to
/// `--state-dir` by mistake); one that does not exist yet is fine: it holds no runs.
pub fn check_state_directory(state: &Path) -> Result<(), String> {
    match std::fs::metadata(state) {
        Ok(metadata) if !metadata.is_dir() => Err(format!(
            "the state directory `{}` is not a directory",
            state.display()
        )),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!(
            "cannot read the state directory `{}`: {error}",
            state.display()
        )),
    }
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

/// The copy of the runbook file as run, in each run's directory: `rollback RUN` and
/// `resume RUN` use it, so editing the file afterwards does not block them.
pub const RUNBOOK_COPY: &str = "runbook.yaml";

impl RunDirectory {
    /// Keeps `bytes`, the runbook file as run, as `RUNBOOK_COPY` (0600, on disk before the
    /// journal's first record).
    pub fn keep_runbook(&self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path.join(RUNBOOK_COPY))?;
        file.write_all(bytes)?;
        file.sync_all()
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
        .filter(|path| has_journal(path))
        .collect();
    runs.sort();
    runs
}

/// Whether `directory` holds a journal: anything at its path counts, so that a link, a FIFO
/// or a device put in its place is listed and reported as damage when read, never skipped.
fn has_journal(directory: &Path) -> bool {
    std::fs::symlink_metadata(directory.join(super::JOURNAL_FILE)).is_ok()
}

/// The names of the run directories, sorted (oldest first: ids start with their time), from
/// one read of `runs/` without looking into any.
fn run_names(state: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state.join("runs")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The latest `limit` run directories with a journal (oldest first), and how many run
/// directories there are: reads the directory once and looks at the journals of the latest only.
pub fn latest_runs(state: &Path, limit: usize) -> (Vec<PathBuf>, usize) {
    let names = run_names(state);
    let total = names.len();
    let mut latest: Vec<PathBuf> = names
        .iter()
        .rev()
        .map(|name| state.join("runs").join(name))
        .filter(|path| has_journal(path))
        .take(limit)
        .collect();
    latest.reverse();
    (latest, total)
}

/// The directory of run `name`: an exact id, a unique prefix of one, or `last`. An empty name
/// and a prefix of several runs are refused (the latter listing them).
pub fn find_run(state: &Path, name: &str) -> Result<PathBuf, String> {
    if name.trim().is_empty() {
        return Err(
            "the run id is empty: name a run by its id, a unique prefix of one, or `last` (see `runbook history`)"
                .to_string(),
        );
    }
    check_state_directory(state)?;
    let has_journal = |id: &String| has_journal(&state.join("runs").join(id));
    // The names alone are listed: only the runs a name can match are looked into, so finding
    // one run stays fast in a state directory of thousands.
    let names = run_names(state);
    if name == "last" {
        return names
            .iter()
            .rev()
            .find(|id| has_journal(id))
            .map(|id| state.join("runs").join(id))
            .ok_or_else(|| format!("no runs are recorded in `{}`", state.display()));
    }
    let ids: Vec<&String> = names
        .iter()
        .filter(|id| id.starts_with(name) && has_journal(id))
        .collect();
    if ids.is_empty() && !names.iter().any(has_journal) {
        return Err(format!("no runs are recorded in `{}`", state.display()));
    }
    if let Some(exact) = ids.iter().find(|id| id.as_str() == name) {
        return Ok(state.join("runs").join(exact));
    }
    match ids.as_slice() {
        [one] => Ok(state.join("runs").join(one)),
        [] => Err(format!(
            "no run `{name}` in `{}` (see `runbook history`)",
            state.display()
        )),
        many => Err(format!(
            "`{name}` matches {} runs: {}; give more of the id",
            many.len(),
            many.iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state directory holding runs with these ids.
    fn state_with(ids: &[&str]) -> tempfile::TempDir {
        let state = tempfile::tempdir().expect("a temporary directory");
        for id in ids {
            let run = state.path().join("runs").join(id);
            std::fs::create_dir_all(&run).expect("create a run");
            std::fs::write(run.join(crate::state::JOURNAL_FILE), "").expect("a journal");
        }
        state
    }

    #[test]
    fn an_empty_id_matches_no_run() {
        let state = state_with(&["20261201_100000-00001"]);
        for empty in ["", "  "] {
            let error = find_run(state.path(), empty).expect_err("refused");
            assert!(error.contains("the run id is empty"), "{error}");
        }
    }

    #[test]
    fn an_ambiguous_prefix_lists_the_candidates_and_a_unique_one_finds_its_run() {
        let state = state_with(&["20261201_100000-00001", "20261201_110000-00002"]);
        let error = find_run(state.path(), "20261201_1").expect_err("ambiguous");
        assert!(
            error.contains("matches 2 runs: `20261201_100000-00001`, `20261201_110000-00002`"),
            "{error}"
        );
        let found = find_run(state.path(), "20261201_11").expect("unique");
        assert!(found.ends_with("20261201_110000-00002"));
        let last = find_run(state.path(), "last").expect("last");
        assert!(last.ends_with("20261201_110000-00002"));
    }

    #[test]
    fn a_state_directory_that_is_a_file_is_refused_and_a_missing_one_is_empty() {
        let state = tempfile::tempdir().expect("a temporary directory");
        let file = state.path().join("file");
        std::fs::write(&file, "").expect("a file");
        let error = check_state_directory(&file).expect_err("a file");
        assert!(error.ends_with("is not a directory"), "{error}");
        assert!(find_run(&file, "last").is_err());
        assert!(check_state_directory(&state.path().join("missing")).is_ok());
    }

    #[test]
    fn the_state_directory_is_absolute() {
        let state = state_directory(Some(Path::new("relative")));
        assert!(state.is_absolute(), "{}", state.display());
        assert!(state.ends_with("relative"));
    }
}
