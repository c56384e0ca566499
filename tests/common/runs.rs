//! The runs an invocation left in its test directory's default state directory
//! (`<dir>/xdg-state/runbook`), and a later invocation that works on them.

use std::path::PathBuf;

use super::{Output, Test};

/// The directory of the newest run (the last by id) in the test's state directory.
pub fn run_directory(output: &Output) -> PathBuf {
    let runs = output.directory.join("xdg-state/runbook/runs");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&runs)
        .expect("the runs directory")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    entries.sort();
    entries.pop().expect("one run")
}

/// The id of the newest run in the test's state directory.
pub fn run_id(output: &Output) -> String {
    run_directory(output)
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a run id")
        .to_string()
}

impl Test {
    /// Uses the state directory of an earlier invocation, to show, resume or roll back its runs.
    pub fn state_of(self, earlier: &Output) -> Test {
        let state = earlier.directory.join("xdg-state").display().to_string();
        self.env("XDG_STATE_HOME", &state)
    }
}
