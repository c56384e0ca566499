//! Where on `PATH` a step's program is, found once per engine instead of at every spawn: a
//! spawn by name tries each `PATH` directory in turn (`execvp`), which for `bash` in
//! `/usr/bin` cost eight failed `execve` calls a step.
//!
//! Only what `execvp` would find too is used: the first regular file with an execute bit in
//! an absolute `PATH` directory, from the `PATH` the step itself gets. A program that moved
//! since is looked up again; anything unusual (a relative `PATH` entry first, no match) is left
//! to the spawn's own search.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// `(PATH, program)` -> the file found.
static FOUND: Mutex<Option<HashMap<(OsString, String), PathBuf>>> = Mutex::new(None);

/// The file `program` names on `path` (the step's `PATH`), or `None` to let the spawn search.
pub(super) fn find(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.is_empty() || program.contains('/') {
        return None;
    }
    let path = path?;
    let key = (path.to_os_string(), program.to_string());
    let mut found = FOUND.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = found.get_or_insert_with(HashMap::new);
    if let Some(file) = cache.get(&key)
        && is_executable(file)
    {
        return Some(file.clone());
    }
    let file = search(program, path)?;
    cache.insert(key, file.clone());
    Some(file)
}

fn search(program: &str, path: &OsStr) -> Option<PathBuf> {
    for directory in std::env::split_paths(path) {
        if !directory.is_absolute() {
            // Relative to the step's working directory, as `execvp` reads it: not cached.
            return None;
        }
        let file = directory.join(program);
        if is_executable(&file) {
            return Some(file);
        }
    }
    None
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_executable_on_the_path_is_found_and_a_relative_entry_stops_the_search() {
        let first = tempfile::tempdir().expect("test setup");
        let second = tempfile::tempdir().expect("test setup");
        let program = "runbook-test-program";
        std::fs::write(first.path().join(program), "").expect("test setup");
        let executable = second.path().join(program);
        std::fs::write(&executable, "#!/bin/sh\n").expect("test setup");
        std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755))
            .expect("test setup");
        let path = std::env::join_paths([first.path(), second.path()]).expect("test setup");
        assert_eq!(find(program, Some(&path)), Some(executable.clone()));
        let relative = std::env::join_paths([Path::new("bin"), second.path()]).expect("test setup");
        assert_eq!(find(program, Some(&relative)), None);
        assert_eq!(
            find("/bin/sh", Some(&path)),
            None,
            "a path is used as it is"
        );
        std::fs::remove_file(&executable).expect("test setup");
        assert_eq!(
            find(program, Some(&path)),
            None,
            "gone since: searched again"
        );
    }
}
