//! Secret step outputs kept for a later `rollback RUN` or `resume`: the journal records them
//! masked, so their values live in `<run-dir>/secret-outputs/<step>.json`, written atomically
//! and readable by the owner only (0600, in a 0700 directory).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::private_file::{Durability, replace_private_file};
use crate::model::Runbook;
use crate::state::RecordedStep;

/// The directory under a run directory that holds the secret outputs.
pub const SECRET_OUTPUTS_DIRECTORY: &str = "secret-outputs";

fn file_of(run_directory: &Path, step: &str) -> PathBuf {
    run_directory
        .join(SECRET_OUTPUTS_DIRECTORY)
        .join(format!("{step}.json"))
}

/// Stores the secret outputs `values` of `step`, replacing what an earlier attempt stored.
pub fn save_secret_outputs(
    run_directory: &Path,
    step: &str,
    values: &[(String, String)],
) -> std::io::Result<()> {
    let directory = run_directory.join(SECRET_OUTPUTS_DIRECTORY);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&directory)?;
    let text = serde_json::to_string(values).map_err(std::io::Error::other)?;
    replace_private_file(
        &file_of(run_directory, step),
        text.as_bytes(),
        Durability::Durable,
    )
}

/// The secret outputs stored for `step`; none when there is no file or it cannot be read.
fn load(run_directory: &Path, step: &str) -> Vec<(String, String)> {
    // Not through a link, and bounded: outputs are at most 1 MiB a step, JSON-escaped.
    crate::bounded_read::read_bounded_no_symlink(&file_of(run_directory, step), 8 << 20)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Puts the stored values of secret outputs into `steps` (read from the journal, where they
/// are masked) and returns those values, for the run's masker. A secret output whose value
/// was not kept is left out, so a template that reads it fails naming it rather than getting
/// the mask as a value.
pub fn restore_secret_outputs(
    run_directory: &Path,
    runbook: &Runbook,
    mut steps: Vec<RecordedStep>,
) -> (Vec<RecordedStep>, Vec<String>) {
    let mut values = Vec::new();
    for recorded in &mut steps {
        let Some(step) = runbook.step(&recorded.id) else {
            continue;
        };
        if !step.outputs.iter().flatten().any(|output| output.secret) {
            continue;
        }
        let stored = load(run_directory, &recorded.id);
        recorded
            .outputs
            .retain(|(key, _)| !step.is_secret_output(key));
        for (key, value) in stored {
            if step.is_secret_output(&key) {
                values.push(value.clone());
                recorded.outputs.push((key, value));
            }
        }
    }
    (steps, values)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn saved_values_are_private_and_replaced_whole() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let first = vec![("token".to_string(), "s3cr3t-one".to_string())];
        save_secret_outputs(directory.path(), "issue", &first).expect("saved");
        let second = vec![("token".to_string(), "s3cr3t-two".to_string())];
        save_secret_outputs(directory.path(), "issue", &second).expect("saved again");
        assert_eq!(load(directory.path(), "issue"), second);
        let file = file_of(directory.path(), "issue");
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let folder = directory.path().join(SECRET_OUTPUTS_DIRECTORY);
        let mode = std::fs::metadata(&folder)
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let leftovers = std::fs::read_dir(&folder).expect("list").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        assert!(load(directory.path(), "other").is_empty());
    }
}
