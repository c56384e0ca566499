//! The module files a run used (SPEC §13), kept in its directory next to the runbook copy:
//! `rollback RUN` and `resume RUN` read them instead of the files as they are now. Each is
//! named by its path relative to the runbook's directory, as the runbook reaches it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The folder of a run's directory holding the copies, and the index naming them.
pub const MODULE_COPIES: &str = "modules";
const INDEX: &str = "index.json";

/// One kept module: its path as the runbook reaches it, and the copy's file name.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    path: String,
    copy: String,
}

/// Keeps `modules` (path, bytes) in `<run>/modules/` (0600 files, an index), on disk before
/// the journal's first record. Nothing is written when there is none.
pub fn keep_modules(run: &Path, modules: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    if modules.is_empty() {
        return Ok(());
    }
    let folder = run.join(MODULE_COPIES);
    std::fs::DirBuilder::new().mode(0o700).create(&folder)?;
    let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(folder.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    let mut index = Vec::new();
    for (number, (path, bytes)) in modules.iter().enumerate() {
        let base = Path::new(path).file_name().map_or_else(
            || "module".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        let copy = format!("{}-{base}", number + 1);
        write(&copy, bytes)?;
        index.push(Entry {
            path: path.clone(),
            copy,
        });
    }
    let text = serde_json::to_vec_pretty(&index).map_err(std::io::Error::other)?;
    write(INDEX, &text)?;
    std::fs::File::open(&folder)?.sync_all()
}

/// The modules kept with a run, (path, text); `None` when it kept none (no module, or an
/// older engine).
pub fn kept_modules(run: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    let folder = run.join(MODULE_COPIES);
    let index = match std::fs::read(folder.join(INDEX)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read `{}`: {error}", folder.display())),
    };
    let entries: Vec<Entry> = serde_json::from_slice(&index)
        .map_err(|error| format!("`{}` is damaged: {error}", folder.join(INDEX).display()))?;
    entries
        .into_iter()
        .map(|entry| {
            let file = folder.join(&entry.copy);
            let bytes =
                crate::bounded_read::read_bounded(&file, crate::source::MAX_RUNBOOK_BYTES as u64)
                    .map_err(|error| format!("cannot read `{}`: {error}", file.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("`{}` is not valid UTF-8", file.display()))?;
            Ok((entry.path, text))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}
