//! What a journal line holds, typed: the header that opens every journal, the note that a later
//! `resume` or `rollback` continued the run, and the executor's own `Event`s. The same types
//! are written and read back (serde both ways), so reading never matches on strings.

use serde::{Deserialize, Serialize};

use crate::events::{Event, StepOutcome, StepStatus};

/// A variable as the header records it (a secret only by where it came from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedVar {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
    pub source: String,
}

/// The options a run was started with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordedOptions {
    pub jobs: Option<u32>,
    pub yes: bool,
    pub approve: Vec<String>,
    pub no_rollback: bool,
    /// The run's timestamp (`{{run.timestamp}}`), so a later rollback renders the same names.
    pub timestamp: String,
    /// `--fail-at STEP`: the run is a rehearsal that fails this step after it ran. Absent
    /// from the journals of other runs (and of older engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_at: Option<String>,
    /// `--limit`: the hosts the run's instances run on (SPEC §12), so `resume` and
    /// `rollback RUN` see the same instances. Absent when every host was selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limit: Vec<String>,
    /// `--inventory FILE`s (absolute paths), read again by `resume` and `rollback RUN`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventories: Vec<String>,
}

/// The first record of a journal: which runbook ran (its path and digest), who ran it where,
/// with which options and variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalHeader {
    pub format: u32,
    pub run_id: String,
    pub runbook: String,
    pub file: String,
    pub digest: String,
    pub started_at: String,
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub vars: Vec<RecordedVar>,
    pub options: RecordedOptions,
    /// Steps marked `irreversible`: reports say a rollback does not undo them, by intent.
    /// Absent when there are none (and in older journals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub irreversible: Vec<String>,
    /// Where each step brought in by a module or a `for_each` was written. Absent when there
    /// are none (and in older journals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<RecordedOrigin>,
}

/// Where a step of a run was written, when not once in the runbook itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedOrigin {
    pub step: String,
    /// `FILE:LINE`, the file relative to the runbook's directory.
    pub written_at: String,
    /// For a module's step, the call: `` `uses: FILE` at FILE:LINE ``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

/// What drives a run: the first `run`, or a later `resume` or `rollback` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    Run,
    Resume,
    Rollback,
    /// `resume --retry-failed`: a run that stopped with work left forward goes on.
    Retry,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Run => "run",
            RunMode::Resume => "resume",
            RunMode::Rollback => "rollback",
            RunMode::Retry => "retry",
        }
    }
}

/// A later command continued the run: its end is yet to come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resumed {
    pub mode: RunMode,
    pub pid: u32,
    /// Who continued it, where (absent in the journals of older engines).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

/// One journal record.
#[derive(Debug, Clone)]
pub enum Record {
    Header(Box<JournalHeader>),
    Resumed(Resumed),
    Event(Event),
}

/// A record borrowed to be written (events are journaled without a copy).
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    Header(&'a JournalHeader),
    Resumed(&'a Resumed),
    Event(&'a Event),
}

impl Record {
    pub fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Header(header) => RecordRef::Header(header),
            Record::Resumed(resumed) => RecordRef::Resumed(resumed),
            Record::Event(event) => RecordRef::Event(event),
        }
    }
}

/// A record with its place in the journal: `seq` orders records (never their time stamps).
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    /// When it was written (RFC 3339); a format 1 header has none.
    pub time: Option<String>,
    pub record: Record,
}

/// The records that are not events, as written: tagged by `record`.
#[derive(Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum NoteOut<'a> {
    RunStarted(&'a JournalHeader),
    Resumed(&'a Resumed),
}

#[derive(Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum NoteIn {
    RunStarted(Box<JournalHeader>),
    Resumed(Resumed),
}

impl From<NoteIn> for Record {
    fn from(note: NoteIn) -> Record {
        match note {
            NoteIn::RunStarted(header) => Record::Header(header),
            NoteIn::Resumed(resumed) => Record::Resumed(resumed),
        }
    }
}

/// Writes the record's JSON (the `data` of its line).
pub(super) fn write_data(out: &mut Vec<u8>, record: RecordRef<'_>) -> serde_json::Result<()> {
    match record {
        RecordRef::Header(header) => serde_json::to_writer(out, &NoteOut::RunStarted(header)),
        RecordRef::Resumed(resumed) => serde_json::to_writer(out, &NoteOut::Resumed(resumed)),
        RecordRef::Event(event) => serde_json::to_writer(out, event),
    }
}

/// Reads a record's JSON as written by this engine (format 2): a note starts with its
/// `record` tag, anything else is an event (read tag first: `tag_first`).
pub(super) fn read_data(data: &[u8]) -> Result<Record, String> {
    let note = data.starts_with(b"{\"record\":");
    // Checked as UTF-8 once, so that serde_json does not check each string again; data that
    // is not (damage) is read as bytes, for the error it always had.
    let result = match (std::str::from_utf8(data), note) {
        (Ok(text), true) => serde_json::from_str::<NoteIn>(text).map(Record::from),
        (Ok(text), false) => crate::tag_first::from_str::<Event>(text).map(Record::Event),
        (Err(_), true) => serde_json::from_slice::<NoteIn>(data).map(Record::from),
        (Err(_), false) => serde_json::from_slice::<Event>(data).map(Record::Event),
    };
    result.map_err(|error| format!("not a journal record ({error})"))
}

/// Reads a format 1 record (keys sorted, its time inside): returns it and its time.
pub(super) fn read_data_v1(data: &[u8]) -> Result<(Record, Option<String>), String> {
    let problem = |error: serde_json::Error| format!("not a journal record ({error})");
    let mut value: serde_json::Value = serde_json::from_slice(data).map_err(problem)?;
    let time = value
        .as_object_mut()
        .and_then(|object| object.remove("time"))
        .and_then(|time| time.as_str().map(str::to_string));
    let record = if value.get("record").is_some() {
        NoteIn::deserialize(value)
            .map(Record::from)
            .map_err(problem)?
    } else {
        let mut event = Event::deserialize(value).map_err(problem)?;
        upgrade_v1(&mut event);
        Record::Event(event)
    };
    Ok((record, time))
}

/// Format 1 recorded no step outcome: the only trace of a timeout was the message the
/// executor wrote for it. Derived once here, so that everything after reads a typed fact.
fn upgrade_v1(event: &mut Event) {
    if let Event::StepFinished {
        status,
        message,
        outcome,
        phase: crate::events::Phase::Forward,
        ..
    } = event
    {
        *outcome = Some(match status {
            StepStatus::Succeeded => StepOutcome::Succeeded,
            StepStatus::Cancelled => StepOutcome::Cancelled,
            _ if message
                .as_deref()
                .is_some_and(|message| message.starts_with("timed out after")) =>
            {
                StepOutcome::TimedOut
            }
            _ => StepOutcome::Failed,
        });
    }
}
