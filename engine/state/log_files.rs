//! `logs/<step-id>.log`: each step's output (and its compensation's), masked, bounded: the
//! first part is written as it comes, the last part is kept in memory and written when the
//! step ends, with a line saying how much was dropped between them.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Bytes written from the start of a step's output.
const HEAD_BYTES: usize = 1024 * 1024;
/// Bytes kept from the end of a step's output.
const TAIL_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
struct StepLog {
    file: File,
    written: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    dropped: u64,
}

/// The log files of one run.
#[derive(Debug)]
pub struct LogFiles {
    directory: PathBuf,
    open: HashMap<String, StepLog>,
}

impl LogFiles {
    pub fn new(run_directory: &std::path::Path) -> std::io::Result<LogFiles> {
        let directory = run_directory.join("logs");
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&directory)?;
        Ok(LogFiles {
            directory,
            open: HashMap::new(),
        })
    }

    /// Appends one (masked) line of `step`'s output.
    pub fn line(&mut self, step: &str, prefix: &str, line: &str) -> std::io::Result<()> {
        if !self.open.contains_key(step) {
            let file_name = step.replace(['/', '\\'], "_");
            // Never through a link put in its place: output would be appended to its target.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(self.directory.join(format!("{file_name}.log")))?;
            self.open.insert(
                step.to_string(),
                StepLog {
                    file,
                    written: 0,
                    tail: VecDeque::new(),
                    tail_bytes: 0,
                    dropped: 0,
                },
            );
        }
        let Some(log) = self.open.get_mut(step) else {
            return Ok(());
        };
        let text = format!("{prefix}{line}\n");
        if log.written + text.len() <= HEAD_BYTES {
            log.written += text.len();
            return log.file.write_all(text.as_bytes());
        }
        log.tail_bytes += text.len();
        log.tail.push_back(text);
        while log.tail_bytes > TAIL_BYTES {
            if let Some(old) = log.tail.pop_front() {
                log.tail_bytes -= old.len();
                log.dropped += old.len() as u64;
            }
        }
        Ok(())
    }

    /// Writes what was held back for `step`.
    pub fn finish(&mut self, step: &str) -> std::io::Result<()> {
        let Some(mut log) = self.open.remove(step) else {
            return Ok(());
        };
        if log.dropped > 0 {
            writeln!(
                log.file,
                "[... {} bytes of output dropped here: logs keep the first and the last MiB ...]",
                log.dropped
            )?;
        }
        for line in log.tail.drain(..) {
            log.file.write_all(line.as_bytes())?;
        }
        log.file.sync_data()
    }
}
