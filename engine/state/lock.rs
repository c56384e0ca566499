//! The run lock: an OS file lock (`flock`) per runbook name in the state directory, held for
//! a whole run, resume or rollback. A dead holder frees it; a live one is named.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run of `{runbook}` holds the lock: {holder}")]
    Held { runbook: String, holder: String },
    #[error("cannot use the lock file `{path}`")]
    Io {
        path: String,
        #[source]
        cause: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock of `runbook` without waiting, recording `holder` (run id, pid, start
    /// time) in the lock file for whoever is refused.
    pub fn acquire(state: &Path, runbook: &str, holder: &str) -> Result<RunLock, LockError> {
        let directory = state.join("locks");
        let path = directory.join(format!("{runbook}.lock"));
        let io = |cause| LockError::Io {
            path: path.display().to_string(),
            cause,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&directory)
            .map_err(io)?;
        // The file is never deleted: a lock on a file someone removed would lock nothing.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = if holder.trim().is_empty() {
                    "(starting up)".to_string()
                } else {
                    holder.trim().to_string()
                };
                return Err(LockError::Held {
                    runbook: runbook.to_string(),
                    holder,
                });
            }
        };
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        lock.write_all(holder.as_bytes()).map_err(io)?;
        lock.sync_data().map_err(io)?;
        Ok(RunLock { _lock: lock })
    }
}
