//! Group commit for the journal: a thread that makes the journal durable (fdatasync) on
//! request while the engine goes on with other steps. One fsync covers every record written
//! before it began, so steps that start or end while it runs share the next one, and a slow
//! disk no longer stops the whole engine for each of them.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::journal_error::{JournalError, describe};

/// How far the journal is known to be on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Every record with a sequence number up to this one is durable.
    pub synced: u64,
    /// Why an fsync failed; once set, nothing more is synced.
    pub failure: Option<String>,
}

/// The thread's side and the requesters' side, shared.
#[derive(Debug)]
struct Shared {
    wanted: Mutex<Wanted>,
    wake: Condvar,
    progress: watch::Sender<SyncProgress>,
}

#[derive(Debug, Default)]
struct Wanted {
    /// The highest sequence number someone waits to see durable.
    sequence: u64,
    /// The writer is gone: the thread ends.
    stop: bool,
}

/// The syncing thread of one journal; it ends when this is dropped.
#[derive(Debug)]
pub struct JournalSyncer {
    shared: Arc<Shared>,
}

impl JournalSyncer {
    /// Starts the thread, which syncs `file` (a handle to the journal) on request.
    pub fn start(file: File, path: PathBuf) -> std::io::Result<JournalSyncer> {
        let (progress, _) = watch::channel(SyncProgress::default());
        let shared = Arc::new(Shared {
            wanted: Mutex::new(Wanted::default()),
            wake: Condvar::new(),
            progress,
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || sync_loop(&thread_shared, &file, &path))?;
        Ok(JournalSyncer { shared })
    }

    /// Asks for every record up to `sequence` (already written) to be made durable. Cheap
    /// when a sync that covers it is already wanted.
    pub fn request(&self, sequence: u64) -> SyncWait {
        // Subscribed before asking, so the answer cannot be missed.
        let receiver = self.shared.progress.subscribe();
        let mut wanted = lock(&self.shared.wanted);
        if sequence > wanted.sequence {
            wanted.sequence = sequence;
            self.shared.wake.notify_one();
        }
        SyncWait { receiver, sequence }
    }
}

/// A requested sync, to wait for without holding the journal.
#[derive(Debug)]
pub struct SyncWait {
    receiver: watch::Receiver<SyncProgress>,
    sequence: u64,
}

impl SyncWait {
    /// Waits until every record up to the requested one is durable, and returns its sequence
    /// number; or why the journal failed.
    pub async fn finish(mut self) -> Result<u64, String> {
        let sequence = self.sequence;
        let progress = self
            .receiver
            .wait_for(|progress| progress.synced >= sequence || progress.failure.is_some())
            .await
            .map(|progress| progress.failure.clone());
        match progress {
            Ok(Some(failure)) => Err(failure),
            Ok(None) => Ok(sequence),
            Err(_) => Err("the journal's sync thread is gone".into()),
        }
    }
}

impl Drop for JournalSyncer {
    fn drop(&mut self) {
        lock(&self.shared.wanted).stop = true;
        self.shared.wake.notify_one();
    }
}

fn lock(wanted: &Mutex<Wanted>) -> MutexGuard<'_, Wanted> {
    // Two numbers: consistent after a panic elsewhere.
    wanted.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sync_loop(shared: &Shared, file: &File, path: &std::path::Path) {
    let mut synced = 0;
    loop {
        let target = {
            let mut wanted = lock(&shared.wanted);
            while wanted.sequence <= synced && !wanted.stop {
                wanted = shared
                    .wake
                    .wait(wanted)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if wanted.stop {
                return;
            }
            wanted.sequence
        };
        // Covers every write that returned before it starts, and `target`'s record was
        // written before it was asked for.
        match file.sync_data() {
            Ok(()) => {
                synced = target;
                shared.progress.send_modify(|progress| {
                    progress.synced = progress.synced.max(target);
                });
            }
            Err(cause) => {
                let error = JournalError::Write {
                    path: path.display().to_string(),
                    cause,
                };
                let message = describe(&error);
                shared.progress.send_modify(|progress| {
                    progress.failure = Some(message);
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[tokio::test]
    async fn requests_are_answered_once_durable() {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let path = directory.path().join("journal");
        let mut file = File::create(&path).expect("create the file");
        let syncer =
            JournalSyncer::start(file.try_clone().expect("clone the handle"), path.clone())
                .expect("start the thread");
        file.write_all(b"one\n").expect("write");
        file.write_all(b"two\n").expect("write");
        let (first, second) = tokio::join!(syncer.request(1).finish(), syncer.request(2).finish());
        assert_eq!(first, Ok(1));
        assert_eq!(second, Ok(2));
        // Already durable: answered at once.
        assert_eq!(syncer.request(1).finish().await, Ok(1));
    }

    #[tokio::test]
    async fn a_failed_sync_is_reported_to_every_waiter_and_stays_failed() {
        // fdatasync refuses a pipe (EINVAL): a stand-in for a disk that fails.
        let (reader, _writer) = std::io::pipe().expect("create a pipe");
        let file = File::from(std::os::fd::OwnedFd::from(reader));
        let syncer =
            JournalSyncer::start(file, PathBuf::from("journal.jsonl")).expect("start the thread");
        let error = syncer
            .request(1)
            .finish()
            .await
            .expect_err("the sync fails");
        assert!(
            error.starts_with("journal write failed: `journal.jsonl`: "),
            "{error}"
        );
        assert_eq!(syncer.request(2).finish().await, Err(error));
    }
}
