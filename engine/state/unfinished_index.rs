//! Which runs are unfinished, without reading every journal (SPEC §10): a marker file per run
//! under `index/unfinished/`, holding its runbook's name, made before the run's journal exists
//! and removed once the journal has its end. Starting a run then reads the few markers of its
//! runbook, not the thousands of journals in the state directory.
//!
//! The index is derived data and the journals stay the truth: a marker whose journal has an end
//! is dropped when it is next read, and a state directory without the index (written by an
//! older version, or with `index/` deleted) is scanned once to build it.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::journal_error::JournalError;
use super::private_file::{Durability, replace_private_file};
use super::run_directory::list_runs;
use super::run_record::RunRecord;

/// Written once the index holds every unfinished run of the state directory.
const COMPLETE_MARK: &str = "complete";
/// The runbook name of a marker made for a journal that could not be read.
const DAMAGED: &str = "";

/// The markers of one state directory.
#[derive(Debug)]
pub struct UnfinishedIndex {
    directory: PathBuf,
}

impl UnfinishedIndex {
    pub fn new(state: &Path) -> UnfinishedIndex {
        UnfinishedIndex {
            directory: state.join("index").join("unfinished"),
        }
    }

    /// The index of the state directory that holds `run_directory` (`<state>/runs/<id>`).
    pub fn of_run_directory(run_directory: &Path) -> Option<(UnfinishedIndex, String)> {
        let run_id = run_directory.file_name()?.to_str()?.to_string();
        let state = run_directory.parent()?.parent()?;
        Some((UnfinishedIndex::new(state), run_id))
    }

    /// Records that run `run_id` of `runbook` has started; called before its journal exists,
    /// so no run can be unfinished without a marker.
    pub fn mark_started(&self, run_id: &str, runbook: &str) -> std::io::Result<()> {
        self.create_directory()?;
        self.write_marker(run_id, runbook)
    }

    /// Drops the marker of `run_directory`'s run if its journal has an end (a run, resume or
    /// rollback that finished). Errors are ignored: a stale marker is dropped when next read.
    pub fn settle(run_directory: &Path) {
        if let Some((index, run_id)) = UnfinishedIndex::of_run_directory(run_directory)
            && let Ok(record) = RunRecord::load(run_directory)
            && record.end.is_some()
        {
            let _ = std::fs::remove_file(index.directory.join(&run_id));
        }
    }

    /// Runs of `runbook` whose journal has no end (their engine died mid-run), and journals
    /// that could not be read (damaged: which runbook they belong to is unknown, so they are
    /// not guessed past). Reads only the journals the index names.
    pub fn unfinished_runs(&self, state: &Path, runbook: &str) -> (Vec<String>, Vec<String>) {
        if !self.directory.join(COMPLETE_MARK).is_file() {
            self.rebuild(state);
        }
        let mut unfinished = Vec::new();
        let mut damaged = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.directory) else {
            return scan(state, runbook);
        };
        let mut markers: Vec<(String, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let run_id = entry.file_name().to_str()?.to_string();
                let owner = std::fs::read_to_string(entry.path()).ok()?;
                Some((run_id, owner))
            })
            .filter(|(run_id, _)| run_id != COMPLETE_MARK)
            .collect();
        markers.sort();
        for (run_id, owner) in markers {
            if owner != runbook && owner != DAMAGED {
                continue;
            }
            let directory = state.join("runs").join(&run_id);
            if !directory.is_dir() {
                // The run directory was deleted: nothing is left to finish.
                let _ = std::fs::remove_file(self.directory.join(&run_id));
                continue;
            }
            match RunRecord::load(&directory) {
                Ok(record) if record.end.is_some() => {
                    let _ = std::fs::remove_file(self.directory.join(&run_id));
                }
                Ok(record) if record.runbook == runbook => unfinished.push(run_id),
                Ok(_) => {}
                // Nothing of a run without a header ran: its header is durable before any step.
                Err(JournalError::NoHeader { .. }) => {}
                Err(error) => damaged.push(error.to_string()),
            }
        }
        (unfinished, damaged)
    }

    /// Scans every journal once and writes a marker for each run without an end.
    fn rebuild(&self, state: &Path) {
        if self.create_directory().is_err() {
            return;
        }
        for directory in list_runs(state) {
            let Some(run_id) = directory.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            let owner = match RunRecord::load(&directory) {
                Ok(record) if record.end.is_none() => record.runbook,
                Ok(_) | Err(JournalError::NoHeader { .. }) => continue,
                Err(_) => DAMAGED.to_string(),
            };
            if self.write_marker(run_id, &owner).is_err() {
                return;
            }
        }
        let _ = self.write_marker(COMPLETE_MARK, "");
    }

    fn create_directory(&self) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.directory)
    }

    /// Writes a marker, on disk before the run's journal can be (never through a link
    /// planted at its path).
    fn write_marker(&self, name: &str, owner: &str) -> std::io::Result<()> {
        replace_private_file(
            &self.directory.join(name),
            owner.as_bytes(),
            Durability::Durable,
        )
    }
}

/// Without a usable index: every journal of the state directory is read.
fn scan(state: &Path, runbook: &str) -> (Vec<String>, Vec<String>) {
    let mut unfinished = Vec::new();
    let mut damaged = Vec::new();
    for directory in list_runs(state) {
        match RunRecord::load(&directory) {
            Ok(record) if record.runbook == runbook && record.end.is_none() => {
                unfinished.push(record.run_id)
            }
            Ok(_) => {}
            Err(JournalError::NoHeader { .. }) => {}
            Err(error) => damaged.push(error.to_string()),
        }
    }
    (unfinished, damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker_names(index: &UnfinishedIndex) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&index.directory)
            .expect("test setup")
            .map(|entry| {
                entry
                    .expect("test setup")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_empty_state_directory_builds_an_empty_complete_index() {
        let state = tempfile::tempdir().expect("test setup");
        let index = UnfinishedIndex::new(state.path());
        assert_eq!(
            index.unfinished_runs(state.path(), "deploy"),
            (vec![], vec![])
        );
        assert_eq!(marker_names(&index), vec![COMPLETE_MARK.to_string()]);
    }

    #[test]
    fn a_marker_whose_run_directory_is_gone_is_dropped() {
        let state = tempfile::tempdir().expect("test setup");
        let index = UnfinishedIndex::new(state.path());
        index.unfinished_runs(state.path(), "deploy");
        index
            .mark_started("20260101_000000-1", "deploy")
            .expect("test setup");
        assert_eq!(
            index.unfinished_runs(state.path(), "deploy"),
            (vec![], vec![])
        );
        assert_eq!(marker_names(&index), vec![COMPLETE_MARK.to_string()]);
    }

    #[test]
    fn a_started_run_without_a_header_is_not_unfinished_but_keeps_its_marker() {
        let state = tempfile::tempdir().expect("test setup");
        let index = UnfinishedIndex::new(state.path());
        index.unfinished_runs(state.path(), "deploy");
        index
            .mark_started("20260101_000000-1", "deploy")
            .expect("test setup");
        let run = state.path().join("runs").join("20260101_000000-1");
        std::fs::create_dir_all(&run).expect("test setup");
        std::fs::write(run.join(super::super::JOURNAL_FILE), "").expect("test setup");
        assert_eq!(
            index.unfinished_runs(state.path(), "deploy"),
            (vec![], vec![])
        );
        assert!(marker_names(&index).contains(&"20260101_000000-1".to_string()));
    }
}
