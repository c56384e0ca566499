//! The YAML files of a folder of the repository, in name order: for tests that go through
//! every fixture, runbook or module there is.

use std::path::{Path, PathBuf};

/// The `*.yaml` files directly in `directory`, sorted.
pub fn yaml_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    files
}
