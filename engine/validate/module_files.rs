//! The module files a validation read (SPEC §13), each named by its path relative to the
//! runbook's directory as the runbook reaches it (`modules/backup.yaml`), so that a run can
//! keep them and `rollback RUN`/`resume RUN` read those copies instead of the disk.

use std::collections::HashMap;
use std::path::Path;

use crate::source::Source;

/// Module texts to read instead of the files, by their path relative to the runbook's
/// directory: the copies kept with a run.
pub type KeptModules = HashMap<String, String>;

/// One module file a validation read.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// The path relative to the runbook's directory (or as written, if absolute).
    pub path: String,
    pub source: Source,
}

/// The name a module file at `path` is kept under, for a runbook in `root`.
pub(super) fn module_key(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
