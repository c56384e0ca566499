//! The run journal, `journal.jsonl`: one JSON object a line, written and fsynced before the
//! action it announces; while a run goes on, blank lines are kept ahead of the records
//! (`SPACE_AHEAD`) and cut when it ends. Each line carries a CRC-32 of its own bytes and a sequence number, so
//! damage is found: a torn last line (power loss mid-write) is ignored, damage anywhere else
//! (a changed, missing, repeated or reordered record, a second header) is refused with its
//! line number.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::journal_error::JournalError;
use super::journal_record::{
    Entry, JournalHeader, Record, RecordRef, read_data, read_data_v1, write_data,
};
use super::journal_sync::{JournalSyncer, SyncWait};
use crate::events::Event;

/// The journal format; the header of every journal names it. Format 2 puts the time in the
/// line and checks the line's own bytes; format 1 journals are still read (and continued in
/// their format).
pub const JOURNAL_FORMAT: u32 = 2;
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Space written ahead of the records, as blank lines, a chunk at a time: a record then
/// overwrites blocks the file already has, so the fsync that makes it durable writes data
/// only, not the file's new size too (the inode, or a filesystem journal commit: about a
/// third of an append's fsync on the disks measured).
const SPACE_AHEAD: usize = 64 * 1024;

/// Appends records durably.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    /// Where the next record goes: the end of the records.
    end: u64,
    /// The file's length: the records, then blank lines written ahead (`SPACE_AHEAD`).
    length: u64,
    sequence: u64,
    /// The format of the journal being written (1 when continuing an old journal).
    format: u32,
    /// The last record lacks its newline: the next line starts with one.
    unterminated: bool,
    /// Benchmarks only: records are encoded but kept in memory, never written or synced,
    /// to measure what durability costs.
    in_memory: Option<Vec<u8>>,
    /// Records up to this sequence number are known to be durable.
    synced: u64,
    /// The thread that syncs in the background, started at the first `sync_in_background`.
    syncer: Option<JournalSyncer>,
}

/// `{"crc":"` then eight hex digits then `",`: the fixed start of every line.
const CRC_START: &[u8] = b"{\"crc\":\"";
const BODY_START: usize = CRC_START.len() + 8 + 2;

/// A format 2 line: `{"crc":"…","seq":N,"time":"…","data":{…}}`, where the CRC covers the
/// bytes after the `crc` member (`"seq"` up to the end of `data`) exactly as written.
fn encode(sequence: u64, time: &str, record: RecordRef<'_>) -> serde_json::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"{\"crc\":\"00000000\",");
    write!(line, "\"seq\":{sequence},\"time\":").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut line, time)?;
    line.extend_from_slice(b",\"data\":");
    write_data(&mut line, record)?;
    let crc = format!("{:08x}", crc32fast::hash(&line[BODY_START..]));
    line[CRC_START.len()..CRC_START.len() + 8].copy_from_slice(crc.as_bytes());
    line.extend_from_slice(b"}\n");
    Ok(line)
}

/// A format 1 line: `{"crc":"…","seq":N,"data":{…}}`, the time inside `data`, the CRC over
/// the compact JSON of `data` with sorted keys.
fn encode_v1(sequence: u64, time: &str, record: RecordRef<'_>) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_data(&mut bytes, record)?;
    let mut data: serde_json::Value = serde_json::from_slice(&bytes)?;
    if let (Some(object), RecordRef::Resumed(_) | RecordRef::Event(_)) =
        (data.as_object_mut(), record)
    {
        object.insert("time".into(), serde_json::Value::String(time.to_string()));
    }
    let text = data.to_string();
    Ok(format!(
        "{{\"crc\":\"{:08x}\",\"seq\":{sequence},\"data\":{text}}}\n",
        crc32fast::hash(text.as_bytes())
    )
    .into_bytes())
}

impl JournalWriter {
    /// Creates a new journal (0600) in `directory`.
    pub fn create(directory: &Path) -> Result<JournalWriter, JournalError> {
        let path = directory.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|cause| JournalError::Write {
                path: path.display().to_string(),
                cause,
            })?;
        Ok(JournalWriter {
            file,
            path,
            end: 0,
            length: 0,
            sequence: 0,
            format: JOURNAL_FORMAT,
            unterminated: false,
            in_memory: None,
            synced: 0,
            syncer: None,
        })
    }

    /// Opens an existing journal to continue it (resume, rollback later), in its format. A
    /// torn last line is cut off first, so the next record starts on a line of its own.
    pub fn reopen(path: &Path, read: &ReadJournal) -> Result<JournalWriter, JournalError> {
        let write_error = |cause| JournalError::Write {
            path: path.display().to_string(),
            cause,
        };
        // Never through a link put in its place: the cut below would truncate its target.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(write_error)?;
        file.set_len(read.valid_length).map_err(write_error)?;
        let writer = JournalWriter {
            file,
            path: path.to_path_buf(),
            end: read.valid_length,
            length: read.valid_length,
            sequence: read.last_sequence,
            format: read.format,
            unterminated: read.unterminated,
            in_memory: None,
            synced: read.last_sequence,
            syncer: None,
        };
        writer.file.sync_all().map_err(write_error)?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.write(record)?;
        self.sync()
    }

    /// Appends one event without waiting for the disk (see `write`).
    pub fn write_event(&mut self, event: &Event) -> Result<(), JournalError> {
        self.write_ref(RecordRef::Event(event))
    }

    /// Appends one record without waiting for the disk; `sync` makes it durable. The engine
    /// syncs before every action, so one fsync covers a step's end and its dependent's start.
    pub fn write(&mut self, record: &Record) -> Result<(), JournalError> {
        self.write_ref(record.as_ref())
    }

    fn write_ref(&mut self, record: RecordRef<'_>) -> Result<(), JournalError> {
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let sequence = self.sequence + 1;
        let encoded = if self.format == 1 {
            encode_v1(sequence, &time, record)
        } else {
            encode(sequence, &time, record)
        };
        let path = &self.path;
        let write_error = |cause| JournalError::Write {
            path: path.display().to_string(),
            cause,
        };
        let mut line = encoded.map_err(|error| write_error(std::io::Error::other(error)))?;
        if self.unterminated {
            line.insert(0, b'\n');
        }
        self.sequence = sequence;
        if let Some(memory) = self.in_memory.as_mut() {
            memory.extend_from_slice(&line);
            return Ok(());
        }
        let after = self.end + line.len() as u64;
        if after > self.length {
            // Past the space written ahead: the record and the next chunk of blank lines in
            // one write (the next fsync makes the new length durable with them).
            line.resize(line.len() + SPACE_AHEAD, b'\n');
            self.length = self.end + line.len() as u64;
        }
        self.file
            .write_all_at(&line, self.end)
            .map_err(write_error)?;
        self.end = after;
        self.unterminated = false;
        Ok(())
    }

    /// Cuts the blank lines written ahead (the run is over), leaving the records alone. Not
    /// synced: if the cut is lost in a crash, readers skip the blank lines as always.
    pub fn trim(&mut self) -> Result<(), JournalError> {
        if self.in_memory.is_some() || self.length <= self.end {
            return Ok(());
        }
        self.file
            .set_len(self.end)
            .map_err(|cause| JournalError::Write {
                path: self.path.display().to_string(),
                cause,
            })?;
        self.length = self.end;
        Ok(())
    }

    /// Makes every record written so far durable (fdatasync), if any is not yet.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.unsynced().is_none() {
            return Ok(());
        }
        let path = &self.path;
        self.file.sync_data().map_err(|cause| JournalError::Write {
            path: path.display().to_string(),
            cause,
        })?;
        self.synced = self.sequence;
        Ok(())
    }

    /// The sequence number of the last record written, if it is not known to be durable yet.
    pub fn unsynced(&self) -> Option<u64> {
        (self.in_memory.is_none() && self.synced < self.sequence).then_some(self.sequence)
    }

    /// Asks the sync thread (started on first use) to make every record written so far
    /// durable; `None` when they are already. Wait on the result without holding the writer,
    /// then tell it with `synced_through`.
    pub fn sync_in_background(&mut self) -> Result<Option<SyncWait>, JournalError> {
        let Some(sequence) = self.unsynced() else {
            return Ok(None);
        };
        let syncer = match &mut self.syncer {
            Some(syncer) => syncer,
            empty => {
                let write_error = |cause| JournalError::Write {
                    path: self.path.display().to_string(),
                    cause,
                };
                let handle = self.file.try_clone().map_err(write_error)?;
                empty.insert(JournalSyncer::start(handle, self.path.clone()).map_err(write_error)?)
            }
        };
        Ok(Some(syncer.request(sequence)))
    }

    /// Records up to `sequence` were made durable (by the sync thread).
    pub fn synced_through(&mut self, sequence: u64) {
        self.synced = self.synced.max(sequence);
    }

    /// A journal that keeps records in memory (the baseline of the journal benchmark).
    pub fn in_memory(directory: &Path) -> Result<JournalWriter, JournalError> {
        let mut writer = JournalWriter::create(directory)?;
        writer.in_memory = Some(Vec::new());
        Ok(writer)
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        // Best effort: blank lines left at the end are skipped by every reader.
        let _ = self.trim();
    }
}

/// A journal as read back.
#[derive(Debug, Clone, Default)]
pub struct ReadJournal {
    /// Every record, when asked for (`read_journal`); empty when streamed.
    pub records: Vec<Entry>,
    /// A torn last line was ignored (its byte offset).
    pub torn_at: Option<u64>,
    /// Bytes up to the end of the last good record.
    pub valid_length: u64,
    pub last_sequence: u64,
    /// The format its header names.
    pub format: u32,
    /// The last record is complete but lacks its newline.
    pub unterminated: bool,
}

/// Reads a journal, checking every record, keeping them all (small journals, tests).
pub fn read_journal(path: &Path) -> Result<ReadJournal, JournalError> {
    let mut records = Vec::new();
    let mut journal = for_each_record(path, |entry| records.push(entry))?;
    journal.records = records;
    Ok(journal)
}

/// Streams a journal's records to `visit`, checking each; memory does not grow with the
/// file. The returned `ReadJournal` has no `records`. Refused: a journal that does not start
/// with its header, a second header, a record whose `seq` does not follow the one before
/// (removed, repeated or swapped records), a line whose CRC does not match its bytes.
pub fn for_each_record(
    path: &Path,
    mut visit: impl FnMut(Entry),
) -> Result<ReadJournal, JournalError> {
    let name = path.display().to_string();
    let read_error = |cause| JournalError::Read {
        path: name.clone(),
        cause,
    };
    let file = open_regular(path).map_err(read_error)?;
    let mut reader = BufReader::with_capacity(1 << 18, file);
    let mut journal = ReadJournal::default();
    let mut offset = 0u64;
    let mut line_number = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        // A line is read with a bound: a record is at most a few MiB (outputs are capped), so
        // a longer one is damage, not something to hold in memory.
        let read = std::io::Read::take(&mut reader, MAX_RECORD_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(read_error)?;
        if read == 0 {
            break;
        }
        if line == b"\n" {
            // Space written ahead (`SPACE_AHEAD`): the records end here. Records after it are
            // what was being written when the machine stopped (the file still ends in space
            // written ahead); in a journal without that space, a blank line is damage.
            match what_follows(&mut reader).map_err(read_error)? {
                Rest::Blank => {}
                Rest::TornThenBlank => journal.torn_at = Some(offset),
                Rest::Records => {
                    return Err(JournalError::Damaged {
                        path: name.clone(),
                        line: line_number + 1,
                        offset,
                        problem: "a blank line between records".to_string(),
                    });
                }
            }
            break;
        }
        line_number += 1;
        if read as u64 > MAX_RECORD_BYTES {
            return Err(JournalError::Damaged {
                path: name.clone(),
                line: line_number,
                offset,
                problem: format!(
                    "a line longer than {} MiB, which no record is",
                    MAX_RECORD_BYTES >> 20
                ),
            });
        }
        let terminated = line.last() == Some(&b'\n');
        let content = if terminated {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        // Without a newline the line is the end of the file: a write cut short, unless it is
        // a whole record (only the newline was lost), which counts.
        if !terminated && serde_json::from_slice::<serde::de::IgnoredAny>(content).is_err() {
            journal.torn_at = Some(offset);
            break;
        }
        let damaged = |problem: String| JournalError::Damaged {
            path: name.clone(),
            line: line_number,
            offset,
            problem,
        };
        let entry = match decode(content, &journal, line_number) {
            Ok(entry) => entry,
            // A record cut short where power was lost, in the space written ahead: blank
            // lines follow it (its missing part was never written over them).
            Err(_)
                if terminated
                    && reader.fill_buf().map_err(read_error)?.first() == Some(&b'\n')
                    && !matches!(
                        what_follows(&mut reader).map_err(read_error)?,
                        Rest::Records
                    ) =>
            {
                journal.torn_at = Some(offset);
                break;
            }
            Err(problem) => return Err(damaged(problem)),
        };
        if let Record::Header(header) = &entry.record {
            journal.format = header.format;
        }
        journal.last_sequence = entry.seq;
        visit(entry);
        offset += read as u64;
        journal.valid_length = offset;
        journal.unterminated = !terminated;
    }
    if line_number == 0 || (line_number == 1 && journal.torn_at.is_some()) {
        return Err(JournalError::NoHeader { path: name });
    }
    Ok(journal)
}

/// What follows the first blank line of a journal.
enum Rest {
    /// Only blank lines: space written ahead.
    Blank,
    /// Something, then blank lines to the end: records cut short by a crash, in the space
    /// written ahead.
    TornThenBlank,
    /// Something to the very end: a journal without space ahead, with a blank line inside.
    Records,
}

fn what_follows(reader: &mut impl Read) -> std::io::Result<Rest> {
    let mut buffer = [0u8; 8192];
    let mut content = false;
    // The file's last two bytes so far: the last record's newline and the blank line.
    let mut last = [b'\n', b'\n'];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(match (content, last == [b'\n', b'\n']) {
                (false, _) => Rest::Blank,
                (true, true) => Rest::TornThenBlank,
                (true, false) => Rest::Records,
            });
        }
        let bytes = &buffer[..read];
        content |= bytes.iter().any(|&byte| byte != b'\n');
        last = match bytes {
            [.., before, end] => [*before, *end],
            [end] => [last[1], *end],
            [] => last,
        };
    }
}

/// The longest journal line read: far above any record the engine writes.
const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Opens a journal to read it: not through a symbolic link, and only a regular file (a FIFO
/// put in its place would block every `history`, a device would never end).
fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(nix::libc::ELOOP) => {
                std::io::Error::other("it is a symbolic link, not the run's file")
            }
            _ => error,
        })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    Ok(file)
}

/// The parts of a line, found by its fixed layout (the CRC is checked against them).
struct Layout<'a> {
    crc: u32,
    sequence: u64,
    /// Format 2: the time stamp in the line; format 1 has none there.
    time: Option<&'a str>,
    data: &'a [u8],
    /// The bytes the CRC covers in format 2.
    body: &'a [u8],
}

fn layout(line: &[u8]) -> Option<Layout<'_>> {
    let rest = line.strip_prefix(CRC_START)?;
    let crc = u32::from_str_radix(std::str::from_utf8(rest.get(..8)?).ok()?, 16).ok()?;
    let body = rest.get(8..)?.strip_prefix(b"\",")?.strip_suffix(b"}")?;
    let rest = body.strip_prefix(b"\"seq\":")?;
    let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    let sequence = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = &rest[digits..];
    let (time, data) = match rest.strip_prefix(b",\"time\":\"") {
        Some(rest) => {
            let end = rest.iter().position(|&byte| byte == b'"')?;
            let time = std::str::from_utf8(&rest[..end]).ok()?;
            (Some(time), rest[end + 1..].strip_prefix(b",\"data\":")?)
        }
        None => (None, rest.strip_prefix(b",\"data\":")?),
    };
    Some(Layout {
        crc,
        sequence,
        time,
        data,
        body,
    })
}

/// Decodes and checks line `line_number` against what came before it.
fn decode(line: &[u8], journal: &ReadJournal, line_number: usize) -> Result<Entry, String> {
    let layout = layout(line).ok_or_else(|| {
        "not a journal record (expected `{\"crc\":\"…\",\"seq\":N,…,\"data\":{…}}`)".to_string()
    })?;
    // The header decides the format; the first line's own layout tells which to expect.
    let format = match (line_number, layout.time) {
        (1, Some(_)) => JOURNAL_FORMAT,
        (1, None) => 1,
        _ => journal.format,
    };
    let (record, time) = match (format, layout.time) {
        (1, None) => {
            if crc32fast::hash(layout.data) != layout.crc {
                // Format 1 checks the data as re-printed with sorted keys: a journal written
                // by this engine printed it so, anything else is checked the long way.
                let value: serde_json::Value = serde_json::from_slice(layout.data)
                    .map_err(|error| format!("not JSON ({error})"))?;
                let expected = crc32fast::hash(value.to_string().as_bytes());
                if expected != layout.crc {
                    return Err(mismatch(layout.crc, expected));
                }
            }
            let (record, time) = read_data_v1(layout.data)?;
            (record, time)
        }
        (1, Some(_)) | (_, None) => {
            return Err(format!(
                "a record in another layout than the journal's format {format}"
            ));
        }
        (_, Some(time)) => {
            let expected = crc32fast::hash(layout.body);
            if expected != layout.crc {
                return Err(mismatch(layout.crc, expected));
            }
            (read_data(layout.data)?, Some(time.to_string()))
        }
    };
    match (&record, line_number) {
        (Record::Header(header), 1) if header.format != format => {
            return Err(format!(
                "the header says format {}, the line is written in format {format}",
                header.format
            ));
        }
        (Record::Header(_), 1) => {
            if layout.sequence > 1 {
                return Err(format!(
                    "the first record has `seq` {}: the journal's beginning is missing",
                    layout.sequence
                ));
            }
        }
        (_, 1) => return Err("the first record is not the journal's header".to_string()),
        (Record::Header(header), _) => {
            return Err(format!(
                "a second header (run `{}`): another journal was appended to this one",
                header.run_id
            ));
        }
        _ => {
            let expected = journal.last_sequence + 1;
            if layout.sequence != expected {
                return Err(format!(
                    "`seq` {} where {expected} was expected: a record is missing, repeated or out of order",
                    layout.sequence
                ));
            }
        }
    }
    Ok(Entry {
        seq: layout.sequence,
        time,
        record,
    })
}

fn mismatch(recorded: u32, computed: u32) -> String {
    format!("checksum mismatch (record says {recorded:08x}, content gives {computed:08x})")
}

impl JournalHeader {
    /// The header of a new run, in the current format, naming this process, host and user.
    pub fn new(
        run_id: &str,
        runbook: &str,
        file: &str,
        digest: &str,
        started_at: &str,
        vars: Vec<super::journal_record::RecordedVar>,
        options: super::journal_record::RecordedOptions,
    ) -> JournalHeader {
        JournalHeader {
            format: JOURNAL_FORMAT,
            run_id: run_id.to_string(),
            runbook: runbook.to_string(),
            file: file.to_string(),
            digest: digest.to_string(),
            started_at: started_at.to_string(),
            pid: std::process::id(),
            host: hostname(),
            user: user(),
            vars,
            options,
            irreversible: Vec::new(),
            origins: Vec::new(),
        }
    }
}

impl super::journal_record::Resumed {
    /// The note that this process, by this user on this host, continues the run as `mode`.
    pub fn new(mode: super::journal_record::RunMode) -> Self {
        super::journal_record::Resumed {
            mode,
            pid: std::process::id(),
            user: user(),
            host: hostname(),
        }
    }
}

pub(crate) fn user() -> String {
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
    use crate::events::{DurationMs, Phase, StepOutcome, StepStatus};
    use crate::state::journal_record::{RecordedOptions, Resumed, RunMode};

    fn header() -> Record {
        Record::Header(Box::new(JournalHeader::new(
            "run-1",
            "deploy",
            "/srv/deploy.yaml",
            "sha256:0",
            "2026-11-24T00:00:00Z",
            Vec::new(),
            RecordedOptions::default(),
        )))
    }

    fn notice(index: usize) -> Record {
        Record::Event(Event::Notice {
            message: format!("notice {index}"),
        })
    }

    /// A journal of its header and `notices` notices, its writer still at work (space ahead).
    fn writing(notices: usize) -> (tempfile::TempDir, JournalWriter) {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut writer = JournalWriter::create(directory.path()).expect("create");
        writer.append(&header()).expect("header");
        for index in 0..notices {
            writer.append(&notice(index)).expect("append");
        }
        (directory, writer)
    }

    /// A journal of its header and `notices` notices, its writer done.
    fn journal_with(notices: usize) -> (tempfile::TempDir, PathBuf) {
        let (directory, writer) = writing(notices);
        let path = writer.path().to_path_buf();
        (directory, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    }

    fn damaged_line(path: &Path) -> (usize, String) {
        match read_journal(path) {
            Err(JournalError::Damaged { line, problem, .. }) => (line, problem),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    fn notice_text(entry: &Entry) -> &str {
        match &entry.record {
            Record::Event(Event::Notice { message }) => message,
            other => panic!("expected a notice, got {other:?}"),
        }
    }

    #[test]
    fn typed_records_round_trip() {
        let (_directory, path) = journal_with(0);
        let mut writer =
            JournalWriter::reopen(&path, &read_journal(&path).expect("read")).expect("reopen");
        let finished = Event::StepFinished {
            step: "deploy".into(),
            phase: Phase::Forward,
            status: StepStatus::Failed,
            attempts: 2,
            duration: DurationMs(std::time::Duration::from_millis(1500)),
            message: Some("exit code 3".into()),
            outputs: vec![("url".into(), "http://x\n\"y\"".into())],
            outcome: Some(StepOutcome::TimedOut),
        };
        writer.write_event(&finished).expect("event");
        writer
            .append(&Record::Resumed(Resumed {
                mode: RunMode::Rollback,
                pid: 7,
                user: String::new(),
                host: String::new(),
            }))
            .expect("resumed");
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.format, JOURNAL_FORMAT);
        assert_eq!(journal.records.len(), 3);
        let Record::Header(header) = &journal.records[0].record else {
            panic!("no header first");
        };
        assert_eq!(header.run_id, "run-1");
        assert_eq!(header.pid, std::process::id());
        let Record::Event(read) = &journal.records[1].record else {
            panic!("no event second");
        };
        assert_eq!(format!("{read:?}"), format!("{finished:?}"));
        assert!(matches!(
            journal.records[2].record,
            Record::Resumed(Resumed {
                mode: RunMode::Rollback,
                pid: 7,
                ..
            })
        ));
        let seqs: Vec<u64> = journal.records.iter().map(|entry| entry.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(journal.records.iter().all(|entry| entry.time.is_some()));
    }

    #[test]
    fn the_crc_covers_the_bytes_of_the_line_seq_and_time_included() {
        let (_directory, path) = journal_with(3);
        let mut text = lines(&path);
        // Reformatting the data keeps its meaning, but not its bytes.
        text[1] = text[1].replacen("\"message\":", "\"message\": ", 1);
        write_lines(&path, &text);
        assert_eq!(damaged_line(&path).0, 2);

        let (_directory, path) = journal_with(3);
        let mut text = lines(&path);
        text[2] = text[2].replacen("\"time\":\"2", "\"time\":\"3", 1);
        write_lines(&path, &text);
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, 3);
        assert!(problem.contains("checksum mismatch"), "{problem}");
    }

    #[test]
    fn a_torn_tail_is_ignored_and_the_next_record_starts_a_new_line() {
        let (_directory, path) = journal_with(2);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"crc\":\"00000000\",\"seq\":4,\"da")
            .expect("tear");
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.records.len(), 3);
        assert!(journal.torn_at.is_some());
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&notice(9)).expect("append");
        let journal = read_journal(&path).expect("read again");
        assert_eq!(journal.records.len(), 4);
        assert_eq!(notice_text(&journal.records[3]), "notice 9");
        assert_eq!(journal.torn_at, None);
    }

    #[test]
    fn a_whole_last_record_without_its_newline_counts() {
        let (_directory, path) = journal_with(2);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.trim_end_matches('\n')).expect("write");
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.records.len(), 3);
        assert_eq!(journal.torn_at, None);
        assert!(journal.unterminated);
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&notice(5)).expect("append");
        drop(writer);
        assert_eq!(
            lines(&path).len(),
            4,
            "the next record is on a line of its own"
        );
        let journal = read_journal(&path).expect("read again");
        assert_eq!(journal.records.len(), 4);
        assert_eq!(notice_text(&journal.records[3]), "notice 5");
    }

    #[test]
    fn space_is_written_ahead_of_the_records_and_cut_when_the_writer_is_done() {
        let (_directory, writer) = writing(3);
        let path = writer.path().to_path_buf();
        let bytes = std::fs::read(&path).expect("read");
        let journal = read_journal(&path).expect("read while space is ahead");
        assert_eq!(journal.records.len(), 4);
        assert_eq!(journal.torn_at, None);
        let records = usize::try_from(journal.valid_length).expect("small");
        assert!(bytes.len() > records + SPACE_AHEAD / 2, "{}", bytes.len());
        assert!(bytes[records..].iter().all(|&byte| byte == b'\n'));
        assert_eq!(bytes[records - 2..records], *b"}\n");
        drop(writer);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), records, "the space ahead is cut");
        // A journal continued later gets space ahead again, and loses it again.
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&notice(3)).expect("append");
        assert!(std::fs::metadata(&path).expect("stat").len() > (records + SPACE_AHEAD) as u64);
        writer.trim().expect("trim");
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.records.len(), 5);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            journal.valid_length
        );
    }

    #[test]
    fn records_cut_short_in_the_space_ahead_are_a_torn_tail() {
        let (_directory, writer) = writing(1);
        let path = writer.path().to_path_buf();
        let records = read_journal(&path).expect("read").valid_length;
        // Power lost while two records were on their way: the second reached the disk, the
        // first only in part, around a block that did not.
        let second = encode(4, "2026-12-05T00:00:00.000Z", notice(4).as_ref()).expect("encode");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.write_all_at(b"{\"crc\":\"1234", records)
            .expect("tear");
        file.write_all_at(&second, records + 100).expect("write");
        std::mem::forget(writer);
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.records.len(), 2);
        assert_eq!(journal.torn_at, Some(records));
        assert_eq!(journal.valid_length, records);
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&notice(9)).expect("append");
        drop(writer);
        let journal = read_journal(&path).expect("read again");
        assert_eq!(journal.torn_at, None);
        assert_eq!(journal.records.len(), 3);
        assert_eq!(notice_text(&journal.records[2]), "notice 9");

        // The first of them not at all: the records end at the blank line.
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&notice(10)).expect("append");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.write_all_at(&second, journal.valid_length + 600)
            .expect("write");
        std::mem::forget(writer);
        let read = read_journal(&path).expect("read");
        assert_eq!(read.records.len(), 4);
        assert!(read.torn_at.is_some());
    }

    #[test]
    fn whatever_a_power_loss_leaves_in_the_space_ahead_keeps_every_record_before_it() {
        let (_directory, writer) = writing(3);
        let path = writer.path().to_path_buf();
        std::mem::forget(writer);
        let clean = std::fs::read(&path).expect("read");
        let records = read_journal(&path).expect("read").valid_length;
        let next = encode(5, "2026-12-05T00:00:00.000Z", notice(4).as_ref()).expect("encode");
        // Any part of the records that were on their way, anywhere in the space ahead: a
        // prefix, a suffix or the whole of one, at any of these offsets.
        let pieces = [
            &next[..1],
            &next[..next.len() / 2],
            &next[..next.len() - 1],
            &next[next.len() / 2..],
            &next[..],
        ];
        for piece in pieces {
            for gap in [0, 1, 7, 100, 511, 512, 4000] {
                std::fs::write(&path, &clean).expect("restore");
                let file = OpenOptions::new().write(true).open(&path).expect("open");
                file.write_all_at(piece, records + gap).expect("write");
                let journal = read_journal(&path)
                    .unwrap_or_else(|error| panic!("gap {gap}, {} bytes: {error}", piece.len()));
                // The whole next record where it belongs reached the disk (its newline may be
                // the space's own): it counts.
                let arrived = gap == 0 && piece.len() >= next.len() - 1;
                let expected = if arrived { 5 } else { 4 };
                assert_eq!(
                    journal.records.len(),
                    expected,
                    "gap {gap}, {} bytes",
                    piece.len()
                );
                if !arrived {
                    assert_eq!(journal.valid_length, records);
                }
            }
        }
        // A record changed before the last one is damage, space ahead or not.
        for line in 2..=3 {
            std::fs::write(&path, &clean).expect("restore");
            let mut bytes = clean.clone();
            let start = bytes
                .split(|&byte| byte == b'\n')
                .take(line - 1)
                .map(|line| line.len() + 1)
                .sum::<usize>();
            bytes[start + 40] ^= 1;
            std::fs::write(&path, &bytes).expect("damage");
            assert_eq!(damaged_line(&path).0, line);
        }
    }

    #[test]
    fn a_blank_line_between_records_is_damage() {
        let (_directory, path) = journal_with(3);
        let mut text = lines(&path);
        text[2] = String::new();
        write_lines(&path, &text);
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, 3);
        assert!(
            problem.contains("a blank line between records"),
            "{problem}"
        );
        // A changed record before a blank line is not taken for one cut short by a crash,
        // unless the file ends in space written ahead.
        let (_directory, path) = journal_with(3);
        let mut text = lines(&path);
        text[1] = text[1].replacen("notice 0", "notice 7", 1);
        text.insert(2, String::new());
        write_lines(&path, &text);
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, 2);
        assert!(problem.contains("checksum mismatch"), "{problem}");
    }

    #[test]
    fn damage_in_the_middle_is_refused_with_its_line() {
        let (_directory, path) = journal_with(3);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replacen("notice 1", "notice 7", 1)).expect("write");
        assert_eq!(damaged_line(&path).0, 3);
    }

    #[test]
    fn removed_swapped_repeated_and_joined_records_are_refused_with_their_line() {
        let (_directory, path) = journal_with(4);
        let original = lines(&path);

        let mut removed = original.clone();
        removed.remove(2);
        write_lines(&path, &removed);
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, 3);
        assert!(
            problem.contains("`seq` 4 where 3 was expected"),
            "{problem}"
        );

        let mut swapped = original.clone();
        swapped.swap(2, 3);
        write_lines(&path, &swapped);
        assert_eq!(damaged_line(&path).0, 3);

        let mut repeated = original.clone();
        repeated.insert(3, original[2].clone());
        write_lines(&path, &repeated);
        assert_eq!(damaged_line(&path).0, 4);

        let mut joined = original.clone();
        joined.extend(original.iter().cloned());
        write_lines(&path, &joined);
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, original.len() + 1);
        assert!(problem.contains("second header"), "{problem}");

        write_lines(&path, &original[1..]);
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, 1);
        assert!(problem.contains("not the journal's header"), "{problem}");
    }

    #[test]
    fn an_empty_journal_has_no_header() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join(JOURNAL_FILE);
        std::fs::write(&path, "").expect("write");
        assert!(matches!(
            read_journal(&path),
            Err(JournalError::NoHeader { .. })
        ));
        std::fs::write(&path, "{\"crc\":\"00").expect("write");
        assert!(matches!(
            read_journal(&path),
            Err(JournalError::NoHeader { .. })
        ));
    }

    /// The line with its `data` replaced and its CRC computed again: a record written so.
    fn resealed(line: &str, data: &str) -> String {
        let start = line.find(",\"data\":").expect("data") + ",\"data\":".len();
        let body = format!("{}{data}", &line[BODY_START..start]);
        let crc = crc32fast::hash(body.as_bytes());
        format!("{{\"crc\":\"{crc:08x}\",{body}}}")
    }

    #[test]
    fn an_event_whose_tag_is_not_its_first_key_is_read_as_before() {
        let (_directory, path) = journal_with(2);
        let mut text = lines(&path);
        text[1] = resealed(&text[1], r#"{"message":"moved","event":"notice"}"#);
        text[2] = resealed(
            &text[2],
            r#"{"step":"db","phase":"forward","status":"succeeded","event":"step_finished","attempts":1,"duration":5,"message":null,"outputs":[["url","x"]]}"#,
        );
        write_lines(&path, &text);
        let journal = read_journal(&path).expect("read");
        assert_eq!(notice_text(&journal.records[1]), "moved");
        let Record::Event(finished) = &journal.records[2].record else {
            panic!("no event third");
        };
        let expected = Event::StepFinished {
            step: "db".into(),
            phase: Phase::Forward,
            status: StepStatus::Succeeded,
            attempts: 1,
            duration: DurationMs(std::time::Duration::from_millis(5)),
            message: None,
            outputs: vec![("url".into(), "x".into())],
            outcome: None,
        };
        assert_eq!(format!("{finished:?}"), format!("{expected:?}"));
    }

    #[test]
    fn an_event_with_an_unknown_field_is_damage_as_before() {
        let cases = [
            (
                r#"{"event":"notice","message":"x","extra":1}"#,
                "not a journal record (unknown field `extra`, expected `message`)",
            ),
            (
                r#"{"message":"x","event":"notice","extra":1}"#,
                "not a journal record (unknown field `extra`, expected `message`)",
            ),
            (
                r#"{"event":"notice","event":"notice","message":"x"}"#,
                "not a journal record (duplicate field `event` at line 1 column 25)",
            ),
            (
                r#"{"event":"step_skipped","step":"db"}"#,
                "not a journal record (missing field `reason`)",
            ),
            (
                r#"{"event":"notice","message":7}"#,
                "not a journal record (invalid type: integer `7`, expected a string)",
            ),
        ];
        for (data, expected) in cases {
            let (_directory, path) = journal_with(2);
            let mut text = lines(&path);
            text[2] = resealed(&text[2], data);
            write_lines(&path, &text);
            assert_eq!(damaged_line(&path), (3, expected.to_string()), "{data}");
        }
    }

    #[test]
    fn an_event_that_is_not_utf_8_is_damage_as_before() {
        let (_directory, path) = journal_with(2);
        let text = std::fs::read(&path).expect("read");
        let mut lines: Vec<Vec<u8>> = text
            .split(|&byte| byte == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let line = &mut lines[2];
        let at = line
            .windows(8)
            .position(|window| window == b"notice 1")
            .expect("notice");
        line[at + 6] = 0xff;
        let crc = format!("{:08x}", crc32fast::hash(&line[BODY_START..line.len() - 1]));
        line[CRC_START.len()..BODY_START - 2].copy_from_slice(crc.as_bytes());
        std::fs::write(&path, lines.join(&b'\n')).expect("write");
        let (line, problem) = damaged_line(&path);
        assert_eq!(line, 3);
        assert!(
            problem
                .starts_with("not a journal record (invalid unicode code point at line 1 column"),
            "{problem}"
        );
    }

    fn format_1_fixture() -> (tempfile::TempDir, PathBuf) {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join(JOURNAL_FILE);
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/journals/format1/journal.jsonl"),
            &path,
        )
        .expect("copy the fixture");
        (directory, path)
    }

    #[test]
    fn a_format_1_journal_is_read_and_continued_in_format_1() {
        let (_directory, path) = format_1_fixture();
        let journal = read_journal(&path).expect("read");
        assert_eq!(journal.format, 1);
        assert_eq!(journal.records.len(), 12);
        // Format 1 knew a timeout only by its message: read as the typed fact.
        let outcomes: Vec<Option<StepOutcome>> = journal
            .records
            .iter()
            .filter_map(|entry| match &entry.record {
                Record::Event(Event::StepFinished { outcome, .. }) => Some(*outcome),
                _ => None,
            })
            .collect();
        assert_eq!(
            outcomes,
            [Some(StepOutcome::Succeeded), Some(StepOutcome::TimedOut)]
        );
        assert_eq!(
            journal.records[1].time.as_deref(),
            Some("2026-12-01T11:12:42.736Z")
        );
        let mut writer = JournalWriter::reopen(&path, &journal).expect("reopen");
        writer.append(&notice(1)).expect("append");
        drop(writer);
        let last = lines(&path).pop().expect("a line");
        assert!(
            last.starts_with("{\"crc\":\"") && last.contains(",\"seq\":13,\"data\":{"),
            "{last}"
        );
        let journal = read_journal(&path).expect("read again");
        assert_eq!(journal.records.len(), 13);
        assert_eq!(notice_text(&journal.records[12]), "notice 1");
    }

    #[test]
    fn a_format_1_record_changed_in_the_middle_is_refused() {
        let (_directory, path) = format_1_fixture();
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replacen("\"attempts\":1", "\"attempts\":2", 1)).expect("write");
        assert_eq!(damaged_line(&path).0, 5);
    }
}
