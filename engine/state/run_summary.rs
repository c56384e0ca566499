//! One row of `history` per run, kept as `summary.json` in the run directory so listing runs
//! reads a few hundred bytes per run instead of its whole journal.
//!
//! The summary is derived data and the journal stays the truth: it records the length and
//! modification time of the journal it was made from, and is made again from the journal when
//! either differs (the run went on, was resumed or rolled back later, or the file was damaged)
//! or when it is missing or unreadable.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::journal::JOURNAL_FILE;
use super::journal_error::JournalError;
use super::private_file::{Durability, replace_private_file};
use super::run_record::RunRecord;

/// The file in each run directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// What `history` shows of one run (its JSON row, and the text row's words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub started_at: String,
    /// Of the last command that drove the run.
    pub duration_ms: Option<u64>,
    /// The run's state now: `succeeded`, `rolled_back`, ..., or `unfinished`.
    pub outcome: String,
    pub exit_code: Option<i32>,
    /// The step a rehearsal (`--fail-at`) failed.
    pub rehearsal: Option<String>,
    /// The runbook's `summary`, as rendered at the end of the run.
    pub summary: Option<String>,
    /// How the run itself ended, before any later command.
    pub own: Option<Ended>,
    /// Each later `resume` or `rollback` of it.
    pub later: Vec<LaterAction>,
    /// The run for people, in one line (`RunRecord::story`).
    pub story: String,
    /// The journal this summary was made from: its length and modification time.
    journal: JournalStamp,
}

/// How a command that drove the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub outcome: String,
    pub exit_code: i32,
    pub duration_ms: u64,
}

/// A later command that drove the run: who, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaterAction {
    pub action: String,
    pub by: String,
    pub at: String,
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct JournalStamp {
    bytes: u64,
    modified_ns: i128,
}

impl JournalStamp {
    fn of(directory: &Path) -> std::io::Result<JournalStamp> {
        let metadata = std::fs::symlink_metadata(directory.join(JOURNAL_FILE))?;
        Ok(JournalStamp {
            bytes: metadata.len(),
            modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        })
    }
}

impl RunSummary {
    fn from_record(record: &RunRecord, journal: JournalStamp) -> RunSummary {
        RunSummary {
            run_id: record.run_id.clone(),
            runbook: record.runbook.clone(),
            started_at: record.started_at.clone(),
            duration_ms: record.end.as_ref().map(|end| end.duration_ms),
            outcome: record.outcome(),
            exit_code: record.end.as_ref().map(|end| end.exit_code),
            rehearsal: record.options.fail_at.clone(),
            summary: record.summary().map(str::to_string),
            own: record.own_end().map(|end| Ended {
                outcome: end.outcome.name().to_string(),
                exit_code: end.exit_code,
                duration_ms: end.duration_ms,
            }),
            later: record
                .actions
                .iter()
                .skip(1)
                .map(|action| LaterAction {
                    action: action.mode.as_str().to_string(),
                    by: action.by(),
                    at: action.started.clone(),
                    outcome: action
                        .end
                        .as_ref()
                        .map(|end| end.outcome.name().to_string()),
                    exit_code: action.end.as_ref().map(|end| end.exit_code),
                    duration_ms: action.end.as_ref().map(|end| end.duration_ms),
                })
                .collect(),
            story: record.story(),
            journal,
        }
    }

    /// The summary of the run in `directory`: the kept one while it matches the journal,
    /// else made from the journal (and kept for next time, when the directory is writable).
    pub fn load(directory: &Path) -> Result<RunSummary, JournalError> {
        let stamp = JournalStamp::of(directory).ok();
        if let Some(stamp) = stamp
            && let Some(kept) = read_kept(directory)
            && kept.journal == stamp
        {
            return Ok(kept);
        }
        let record = RunRecord::load(directory)?;
        // Stamped before the read: a journal that grew meanwhile is read again next time.
        let Some(stamp) = stamp else {
            return Ok(RunSummary::from_record(
                &record,
                JournalStamp {
                    bytes: 0,
                    modified_ns: 0,
                },
            ));
        };
        let summary = RunSummary::from_record(&record, stamp);
        // Whether a run without an end is in progress or unfinished depends on its engine,
        // not on the journal: only ended runs are kept.
        if record.end.is_some() {
            let _ = keep(directory, &summary);
        }
        Ok(summary)
    }
}

/// The kept summary, if there is a readable one (never following a symlink).
fn read_kept(directory: &Path) -> Option<RunSummary> {
    let path = directory.join(SUMMARY_FILE);
    if !std::fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    let text = std::fs::read(&path).ok()?;
    if text.len() > 64 * 1024 {
        return None;
    }
    serde_json::from_slice(&text).ok()
}

/// Keeps the summary for the next listing (derived data: losing it costs a read of the
/// journal).
fn keep(directory: &Path, summary: &RunSummary) -> std::io::Result<()> {
    let text = serde_json::to_vec(summary).map_err(std::io::Error::other)?;
    replace_private_file(&directory.join(SUMMARY_FILE), &text, Durability::Cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOURNAL: &str = "{\"crc\":\"00000000\",\"seq\":1}\n";

    fn run_directory() -> tempfile::TempDir {
        let directory = tempfile::tempdir().expect("test setup");
        std::fs::write(directory.path().join(JOURNAL_FILE), JOURNAL).expect("test setup");
        directory
    }

    fn summary(directory: &Path, outcome: &str) -> RunSummary {
        RunSummary {
            run_id: "r".into(),
            runbook: "b".into(),
            started_at: "t".into(),
            duration_ms: Some(1),
            outcome: outcome.into(),
            exit_code: Some(0),
            rehearsal: None,
            summary: Some("sev=P1".into()),
            own: None,
            later: Vec::new(),
            story: "kept in 0.1s".into(),
            journal: JournalStamp::of(directory).expect("test setup"),
        }
    }

    #[test]
    fn a_kept_summary_that_matches_its_journal_is_used() {
        let directory = run_directory();
        let kept = summary(directory.path(), "kept");
        keep(directory.path(), &kept).expect("test setup");
        // The journal is damaged, so only the kept summary can answer.
        assert_eq!(
            RunSummary::load(directory.path()).expect("test setup"),
            kept
        );
    }

    #[test]
    fn a_kept_summary_of_another_journal_is_not_used() {
        let directory = run_directory();
        keep(directory.path(), &summary(directory.path(), "kept")).expect("test setup");
        std::fs::write(directory.path().join(JOURNAL_FILE), "x").expect("test setup");
        assert!(RunSummary::load(directory.path()).is_err());
    }
}
