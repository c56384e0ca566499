//! The run lock: an OS file lock (`flock`) per lock name (the runbook's `lock`, default its
//! `name`) in the state directory, held for a whole run, resume or rollback. A dead holder
//! frees it; a live one is named. The lock file is never followed through a symbolic link.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use nix::libc;

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run holds the lock `{lock}`: {holder}")]
    Held { lock: String, holder: String },
    #[error("the lock file `{path}` is {what}: refusing to use it")]
    Unsafe { path: String, what: &'static str },
    #[error("cannot use the lock file `{path}`")]
    Io {
        path: String,
        #[source]
        cause: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock `lock` without waiting, recording `holder` (run id, runbook, pid, start
    /// time) in the lock file for whoever is refused.
    pub fn acquire(state: &Path, lock: &str, holder: &str) -> Result<RunLock, LockError> {
        let directory = state.join("locks");
        let path = directory.join(format!("{lock}.lock"));
        let display = path.display().to_string();
        let io = |cause| LockError::Io {
            path: display.clone(),
            cause,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&directory)
            .map_err(io)?;
        match std::fs::symlink_metadata(&directory) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(LockError::Unsafe {
                    path: display.clone(),
                    what: "in a `locks` that is a symbolic link, not a directory",
                });
            }
            Err(cause) => return Err(io(cause)),
        }
        // The file is never deleted: a lock on a file someone removed would lock nothing.
        // O_NOFOLLOW: a symbolic link planted here must not make the holder line overwrite
        // its target; O_NONBLOCK: a FIFO planted here must not hang the open.
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(file) => file,
            Err(cause) if cause.raw_os_error() == Some(libc::ELOOP) => {
                return Err(LockError::Unsafe {
                    path: display.clone(),
                    what: "a symbolic link",
                });
            }
            Err(cause) if cause.raw_os_error() == Some(libc::EISDIR) => {
                return Err(LockError::Unsafe {
                    path: display.clone(),
                    what: "not a regular file",
                });
            }
            Err(cause) => return Err(io(cause)),
        };
        if !file.metadata().map_err(io)?.is_file() {
            return Err(LockError::Unsafe {
                path: display.clone(),
                what: "not a regular file",
            });
        }
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                return Err(LockError::Held {
                    lock: lock.to_string(),
                    holder: read_holder(&mut file),
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

/// The holder line of a held lock. The holder writes it just after taking the lock (the
/// file emptied, then written): an empty file is read again for a moment before the holder
/// is called `(starting up)`.
fn read_holder(file: &mut File) -> String {
    for attempt in 0..20 {
        let mut holder = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut holder));
        if read.is_ok() && !holder.trim().is_empty() {
            return holder.trim().to_string();
        }
        if attempt < 19 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    "(starting up)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbolic_link_in_place_of_the_lock_file_is_refused_and_its_target_untouched() {
        let state = tempfile::tempdir().expect("a temporary directory");
        let target = state.path().join("precious");
        std::fs::write(&target, "keep me").expect("write the target");
        std::fs::create_dir(state.path().join("locks")).expect("create locks");
        std::os::unix::fs::symlink(&target, state.path().join("locks/deploy.lock"))
            .expect("plant the link");
        let error = RunLock::acquire(state.path(), "deploy", "run x").expect_err("refused");
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("read the target"),
            "keep me"
        );
    }

    #[test]
    fn a_directory_in_place_of_the_lock_file_is_refused() {
        let state = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(state.path().join("locks/deploy.lock")).expect("create it");
        let error = RunLock::acquire(state.path(), "deploy", "run x").expect_err("refused");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let state = tempfile::tempdir().expect("a temporary directory");
        let _held = RunLock::acquire(state.path(), "deploy", "run a of `web`").expect("free");
        let error = RunLock::acquire(state.path(), "deploy", "run b").expect_err("held");
        assert_eq!(
            error.to_string(),
            "another run holds the lock `deploy`: run a of `web`"
        );
    }
}
