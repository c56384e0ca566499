//! The run journal, `journal.jsonl`: one JSON object a line, appended and fsynced before the
//! action it announces. Each line carries a CRC-32 of its record, so damage is found: a torn
//! last line (power loss mid-write) is ignored, damage anywhere else is refused with its line
//! number.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The journal format; the first record of every journal names it.
pub const JOURNAL_FORMAT: u32 = 1;
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Appends records durably.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    sequence: u64,
    /// Benchmarks only: records are encoded but kept in memory, never written or synced,
    /// to measure what durability costs.
    in_memory: Option<Vec<u8>>,
    /// Records written but not yet synced.
    dirty: bool,
}

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal write failed: `{path}`")]
    Write {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot read the journal `{path}`")]
    Read {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("the journal `{path}` is damaged at line {line} (byte {offset}): {problem}")]
    Damaged {
        path: String,
        line: usize,
        offset: u64,
        problem: String,
    },
}

/// CRC-32 (IEEE), written here to keep dependencies lean.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The line for a record: `{"crc":"…","seq":N,"data":{…}}`, where the CRC covers the
/// compact JSON of `data` with sorted keys (what `serde_json::Value` prints).
fn encode(sequence: u64, data: &Value) -> String {
    let text = data.to_string();
    format!(
        "{{\"crc\":\"{:08x}\",\"seq\":{sequence},\"data\":{text}}}\n",
        crc32(text.as_bytes())
    )
}

impl JournalWriter {
    /// Creates a new journal (0600) in `directory`.
    pub fn create(directory: &Path) -> Result<JournalWriter, JournalError> {
        let path = directory.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|cause| JournalError::Write {
                path: path.display().to_string(),
                cause,
            })?;
        Ok(JournalWriter {
            file,
            path,
            sequence: 0,
            in_memory: None,
            dirty: false,
        })
    }

    /// Opens an existing journal to continue it (resume, rollback later). A torn last line is
    /// cut off first, so the next record starts on a line of its own.
    pub fn reopen(path: &Path, records: &ReadJournal) -> Result<JournalWriter, JournalError> {
        let write_error = |cause| JournalError::Write {
            path: path.display().to_string(),
            cause,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(write_error)?;
        file.set_len(records.valid_length).map_err(write_error)?;
        let mut writer = JournalWriter {
            file,
            path: path.to_path_buf(),
            sequence: records.last_sequence,
            in_memory: None,
            dirty: false,
        };
        writer.file.seek(SeekFrom::End(0)).map_err(write_error)?;
        writer.file.sync_all().map_err(write_error)?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, data: &Value) -> Result<(), JournalError> {
        self.write(data)?;
        self.sync()
    }

    /// Appends one record without waiting for the disk; `sync` makes it durable. The engine
    /// syncs before every action, so one fsync covers a step's end and its dependent's start.
    pub fn write(&mut self, data: &Value) -> Result<(), JournalError> {
        self.sequence += 1;
        let line = encode(self.sequence, data);
        if let Some(memory) = self.in_memory.as_mut() {
            memory.extend_from_slice(line.as_bytes());
            return Ok(());
        }
        self.dirty = true;
        let path = &self.path;
        self.file
            .write_all(line.as_bytes())
            .map_err(|cause| JournalError::Write {
                path: path.display().to_string(),
                cause,
            })
    }

    /// Makes every record written so far durable (fdatasync), if any is not yet.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if !self.dirty {
            return Ok(());
        }
        let path = &self.path;
        self.file.sync_data().map_err(|cause| JournalError::Write {
            path: path.display().to_string(),
            cause,
        })?;
        self.dirty = false;
        Ok(())
    }

    /// A journal that keeps records in memory (the baseline of the journal benchmark).
    pub fn in_memory(directory: &Path) -> Result<JournalWriter, JournalError> {
        let mut writer = JournalWriter::create(directory)?;
        writer.in_memory = Some(Vec::new());
        Ok(writer)
    }
}

/// A journal as read back.
#[derive(Debug, Clone, Default)]
pub struct ReadJournal {
    pub records: Vec<Value>,
    /// A torn last line was ignored (its byte offset).
    pub torn_at: Option<u64>,
    /// Bytes up to the end of the last good record.
    pub valid_length: u64,
    pub last_sequence: u64,
}

/// Reads a journal, checking every record, keeping them all (small journals, tests).
pub fn read_journal(path: &Path) -> Result<ReadJournal, JournalError> {
    let mut records = Vec::new();
    let mut journal = for_each_record(path, |record| records.push(record.clone()))?;
    journal.records = records;
    Ok(journal)
}

/// Streams a journal's records to `visit`, checking each; memory does not grow with the
/// file. The returned `ReadJournal` has no `records`.
pub fn for_each_record(
    path: &Path,
    mut visit: impl FnMut(&Value),
) -> Result<ReadJournal, JournalError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|cause| JournalError::Read {
        path: name.clone(),
        cause,
    })?;
    let mut reader = BufReader::new(file);
    let mut journal = ReadJournal::default();
    let mut offset = 0u64;
    let mut line_number = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|cause| JournalError::Read {
                path: name.clone(),
                cause,
            })?;
        if read == 0 {
            break;
        }
        line_number += 1;
        // Without a newline the line is the end of the file: a write cut short.
        if line.last() != Some(&b'\n') {
            journal.torn_at = Some(offset);
            break;
        }
        match decode(&line) {
            Ok((sequence, data)) => {
                visit(&data);
                journal.last_sequence = sequence;
                offset += read as u64;
                journal.valid_length = offset;
            }
            Err(problem) => {
                return Err(JournalError::Damaged {
                    path: name,
                    line: line_number,
                    offset,
                    problem,
                });
            }
        }
    }
    Ok(journal)
}

fn decode(line: &[u8]) -> Result<(u64, Value), String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let value: Value =
        serde_json::from_str(text.trim_end()).map_err(|error| format!("not JSON ({error})"))?;
    let crc = value.get("crc").and_then(Value::as_str).ok_or("no `crc`")?;
    let sequence = value.get("seq").and_then(Value::as_u64).ok_or("no `seq`")?;
    let data = value.get("data").ok_or("no `data`")?;
    let expected = format!("{:08x}", crc32(data.to_string().as_bytes()));
    if expected != crc {
        return Err(format!(
            "checksum mismatch (record says {crc}, content gives {expected})"
        ));
    }
    Ok((sequence, data.clone()))
}

/// The first record of a journal.
pub fn header(
    run_id: &str,
    runbook: &str,
    file: &str,
    digest: &str,
    started_at: &str,
    vars: Value,
    options: Value,
) -> Value {
    json!({
        "record": "run_started",
        "format": JOURNAL_FORMAT,
        "run_id": run_id,
        "runbook": runbook,
        "file": file,
        "digest": digest,
        "started_at": started_at,
        "pid": std::process::id(),
        "host": hostname(),
        "user": user(),
        "vars": vars,
        "options": options,
    })
}

fn user() -> String {
    use std::os::unix::fs::MetadataExt;
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            format!(
                "uid {}",
                std::fs::metadata("/proc/self").map_or(0, |metadata| metadata.uid())
            )
        })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn journal_with(records: usize) -> (tempfile::TempDir, PathBuf) {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut writer = JournalWriter::create(directory.path()).expect("create");
        for index in 0..records {
            writer
                .append(&json!({"record": "step", "index": index}))
                .expect("append");
        }
        let path = writer.path().to_path_buf();
        (directory, path)
    }

    #[test]
    fn records_round_trip() {
        let (_directory, path) = journal_with(3);
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.records.len(), 3);
        assert_eq!(journal.records[2]["index"], 2);
        assert_eq!(journal.torn_at, None);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_the_next_record_starts_a_new_line() {
        let (_directory, path) = journal_with(2);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"crc\":\"00000000\",\"seq\":3,\"da")
            .expect("tear");
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.records.len(), 2);
        assert!(journal.torn_at.is_some());
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&json!({"record": "after"})).expect("append");
        let journal = read_journal(&path).expect("read again");
        assert_eq!(journal.records.len(), 3);
        assert_eq!(journal.records[2]["record"], "after");
    }

    #[test]
    fn damage_in_the_middle_is_refused_with_its_line() {
        let (_directory, path) = journal_with(3);
        let text = std::fs::read_to_string(&path).expect("read");
        let damaged = text.replacen("\"index\":1", "\"index\":7", 1);
        std::fs::write(&path, damaged).expect("write");
        match read_journal(&path) {
            Err(JournalError::Damaged { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected damage at line 2, got {other:?}"),
        }
    }
}
