//! A run as its journal tells it: the header, each step's forward result, probes and
//! compensation, and the outcome. A fold over the typed records, one at a time, so a long
//! journal costs time, not memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::journal::{JOURNAL_FILE, ReadJournal, for_each_record};
use super::journal_error::JournalError;
pub use super::journal_record::RecordedVar;
use super::journal_record::{Entry, Record, RecordedOptions, RunMode};
use crate::events::{AnswerSource, Event, Phase, RunOutcome, StepOutcome, StepStatus, is_gate_row};

/// A probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedProbe {
    pub name: String,
    pub phase: Phase,
    pub passed: bool,
    pub samples: u32,
    pub message: String,
}

/// One phase (forward or compensation) of a step.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedPhase {
    pub status: StepStatus,
    pub attempts: u32,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub duration_ms: u64,
    pub message: Option<String>,
    /// The run stopped before this step started (it is still pending: `resume` may run it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_started: bool,
    /// How the forward run ended (succeeded, failed, timed out, cancelled), once it did.
    #[serde(skip)]
    pub outcome: Option<StepOutcome>,
    /// The `seq` of the record that ended it: the order phases finished in.
    #[serde(skip)]
    pub finished_seq: Option<u64>,
}

impl RecordedPhase {
    fn new(status: StepStatus) -> RecordedPhase {
        RecordedPhase {
            status,
            attempts: 0,
            started: None,
            finished: None,
            duration_ms: 0,
            message: None,
            not_started: false,
            outcome: None,
            finished_seq: None,
        }
    }

    /// The status as `show` names it: `not started` for a step the run stopped before.
    pub fn status_name(&self) -> &'static str {
        if self.not_started && self.status == StepStatus::Pending {
            "not started"
        } else {
            self.status.name()
        }
    }

    /// How a forward run ended, for its compensation (`RUNBOOK_STEP_OUTCOME`): a step still
    /// running when the engine stopped counts as cancelled.
    pub fn forward_outcome(&self) -> StepOutcome {
        match (self.status, self.outcome) {
            (StepStatus::Succeeded | StepStatus::Approved, _) => StepOutcome::Succeeded,
            (StepStatus::Cancelled | StepStatus::Running, _) => StepOutcome::Cancelled,
            (_, Some(outcome @ (StepOutcome::TimedOut | StepOutcome::Cancelled))) => outcome,
            _ => StepOutcome::Failed,
        }
    }
}

/// A step as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedStep {
    pub id: String,
    pub name: String,
    pub forward: RecordedPhase,
    pub outputs: Vec<(String, String)>,
    pub probes: Vec<RecordedProbe>,
    pub compensation: Option<RecordedPhase>,
    /// The compensation as rendered when the step finished (masked).
    pub compensation_command: Option<String>,
    /// An approval gate waiting for an answer when the journal ends.
    pub waiting_for_approval: bool,
    /// Who or what answered the step's approval gate.
    pub approval: Option<RecordedApproval>,
}

/// The answer of an approval gate.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedApproval {
    pub approved: bool,
    pub by: Option<String>,
    pub how: AnswerSource,
    pub reason: Option<String>,
}

/// A process group that was running when the journal ended (its step had no end record).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedProcess {
    pub step: String,
    pub phase: Phase,
    pub pid: u32,
    pub start_time: Option<u64>,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedEnd {
    pub outcome: RunOutcome,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub needs_a_person: Vec<String>,
    pub time: String,
    /// The runbook's `summary` as rendered at the end.
    pub summary: Option<String>,
}

/// One command that drove the run: the `run` that started it, or a later `resume` or
/// `rollback` of it (each continues the same journal).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedAction {
    pub mode: RunMode,
    /// When it started (RFC 3339); empty in a format 1 journal.
    pub started: String,
    /// Who ran it, where (empty for a `resume` or `rollback` by an older engine).
    pub user: String,
    pub host: String,
    /// How it ended; none while it runs, or if its engine died.
    pub end: Option<RecordedEnd>,
}

impl RecordedAction {
    /// `alice@box`, or empty when the journal does not say.
    pub fn by(&self) -> String {
        match (self.user.is_empty(), self.host.is_empty()) {
            (true, true) => String::new(),
            (false, true) => self.user.clone(),
            _ => format!("{}@{}", self.user, self.host),
        }
    }
}

/// How far a rollback got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackState {
    Started,
    Complete,
    Incomplete,
}

/// Everything the journal says about a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
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
    /// Steps marked `irreversible` in the runbook as run.
    pub irreversible: Vec<String>,
    /// Where the steps brought in by modules and `for_each` were written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<super::journal_record::RecordedOrigin>,
    pub steps: Vec<RecordedStep>,
    pub stopping: Option<String>,
    pub rollback: Option<RollbackState>,
    pub notices: Vec<String>,
    pub end: Option<RecordedEnd>,
    /// What last drove the run.
    pub mode: RunMode,
    /// Every command that drove the run, the first `run` first: the run's own outcome is
    /// the first one's end, and what happened later stays in view.
    pub actions: Vec<RecordedAction>,
    /// The results of `rollback_verify`, in the order they finished.
    pub rollback_verify: Vec<RecordedProbe>,
    /// Process groups started and not recorded as finished.
    pub processes: Vec<RecordedProcess>,
    pub records: u64,
    /// A torn last line was ignored.
    pub torn_tail: bool,
    #[serde(skip)]
    pub directory: PathBuf,
    /// The engine that last drove the run: the header's, or a later `resume`'s/`rollback`'s.
    #[serde(skip)]
    engine_pid: u32,
    /// Where each step is in `steps`: a long journal names the same steps again and again.
    #[serde(skip)]
    step_index: HashMap<String, usize>,
}

impl RunRecord {
    /// An empty record of the run in `directory`, before any journal record is folded in.
    pub fn new(directory: &Path) -> RunRecord {
        RunRecord {
            run_id: String::new(),
            runbook: String::new(),
            file: String::new(),
            digest: String::new(),
            started_at: String::new(),
            pid: 0,
            host: String::new(),
            user: String::new(),
            vars: Vec::new(),
            irreversible: Vec::new(),
            origins: Vec::new(),
            options: RecordedOptions::default(),
            steps: Vec::new(),
            stopping: None,
            rollback: None,
            notices: Vec::new(),
            end: None,
            mode: RunMode::Run,
            actions: Vec::new(),
            rollback_verify: Vec::new(),
            processes: Vec::new(),
            records: 0,
            torn_tail: false,
            directory: directory.to_path_buf(),
            engine_pid: 0,
            step_index: HashMap::new(),
        }
    }

    /// Reads the journal of the run in `directory`; a journal without its header is refused.
    pub fn load(directory: &Path) -> Result<RunRecord, JournalError> {
        let mut record = RunRecord::new(directory);
        let read: ReadJournal =
            for_each_record(&directory.join(JOURNAL_FILE), |entry| record.apply(entry))?;
        record.torn_tail = read.torn_at.is_some();
        Ok(record)
    }

    /// The step `id`, added (not started) when the journal names it first.
    pub fn step_mut(&mut self, id: &str) -> &mut RecordedStep {
        if let Some(&index) = self.step_index.get(id) {
            return &mut self.steps[index];
        }
        self.step_index.insert(id.to_string(), self.steps.len());
        self.steps.push(RecordedStep {
            id: id.to_string(),
            name: id.to_string(),
            forward: RecordedPhase::new(StepStatus::Pending),
            outputs: Vec::new(),
            probes: Vec::new(),
            compensation: None,
            compensation_command: None,
            waiting_for_approval: false,
            approval: None,
        });
        let last = self.steps.len() - 1;
        &mut self.steps[last]
    }

    /// The step `id` as recorded, if the journal names it.
    pub fn step(&self, id: &str) -> Option<&RecordedStep> {
        self.steps.get(*self.step_index.get(id)?)
    }

    /// The steps whose forward phase ended (finished or skipped), in the order the journal
    /// recorded their ends (`seq`).
    pub fn finished_in_order(&self) -> Vec<&RecordedStep> {
        let mut finished: Vec<(u64, &RecordedStep)> = self
            .steps
            .iter()
            .filter_map(|step| Some((step.forward.finished_seq?, step)))
            .collect();
        finished.sort_unstable_by_key(|(seq, _)| *seq);
        finished.into_iter().map(|(_, step)| step).collect()
    }

    /// Folds one record into the run.
    pub fn apply(&mut self, entry: Entry) {
        self.records += 1;
        let seq = entry.seq;
        let time = entry.time.unwrap_or_default();
        let event = match entry.record {
            Record::Header(header) => {
                let header = *header;
                self.run_id = header.run_id;
                self.runbook = header.runbook;
                self.file = header.file;
                self.digest = header.digest;
                self.started_at = header.started_at;
                self.mode = RunMode::Run;
                self.pid = header.pid;
                self.engine_pid = header.pid;
                self.host = header.host;
                self.user = header.user;
                self.actions.push(RecordedAction {
                    mode: RunMode::Run,
                    started: self.started_at.clone(),
                    user: self.user.clone(),
                    host: self.host.clone(),
                    end: None,
                });
                self.options = header.options;
                self.vars = header.vars;
                self.irreversible = header.irreversible;
                self.origins = header.origins;
                return;
            }
            Record::Resumed(resumed) => {
                // A later `resume` or `rollback` continues the run: its end is yet to come.
                self.end = None;
                if resumed.mode == RunMode::Retry {
                    // Going forward again: what stopped the run then is over.
                    self.stopping = None;
                    self.rollback = None;
                }
                self.mode = resumed.mode;
                self.actions.push(RecordedAction {
                    mode: resumed.mode,
                    started: time,
                    user: resumed.user,
                    host: resumed.host,
                    end: None,
                });
                self.engine_pid = resumed.pid;
                return;
            }
            Record::Event(event) => event,
        };
        match event {
            Event::StepStarted {
                step,
                name,
                phase: phase @ (Phase::Forward | Phase::Compensation),
                attempt,
            } => {
                let step = self.step_mut(&step);
                if !name.is_empty() {
                    step.name = name;
                }
                if phase == Phase::Forward && attempt == 1 {
                    // Run again (`resume --retry-failed`): an earlier undo no longer holds.
                    step.compensation = None;
                }
                let (phase, status) = if phase == Phase::Compensation {
                    let phase = step
                        .compensation
                        .get_or_insert_with(|| RecordedPhase::new(StepStatus::Compensating));
                    (phase, StepStatus::Compensating)
                } else {
                    (&mut step.forward, StepStatus::Running)
                };
                phase.status = status;
                phase.not_started = false;
                phase.attempts = attempt.max(phase.attempts);
                if phase.started.is_none() {
                    phase.started = Some(time);
                }
            }
            Event::StepSkipped { step, reason } => {
                let step = self.step_mut(&step);
                step.forward.status = StepStatus::Skipped;
                step.forward.message = Some(reason);
                step.forward.finished = Some(time);
                step.forward.finished_seq = Some(seq);
            }
            Event::GateStarted { step } => {
                let row = self.step_mut(&step);
                row.forward.status = StepStatus::Running;
                row.forward.not_started = false;
                row.forward.started = Some(time);
                row.forward.finished = None;
            }
            Event::GateFinished {
                step,
                passed,
                duration,
            } => {
                let row = self.step_mut(&step);
                let failed = !passed || row.forward.status == StepStatus::Failed;
                row.forward.status = if failed {
                    StepStatus::Failed
                } else {
                    StepStatus::Succeeded
                };
                row.forward.duration_ms = u64::try_from(duration.0.as_millis()).unwrap_or(u64::MAX);
                row.forward.finished = Some(time);
                row.forward.finished_seq = Some(seq);
            }
            Event::StepsNotStarted { steps, reason } => {
                for id in steps {
                    let step = self.step_mut(&id);
                    if step.forward.status == StepStatus::Pending {
                        step.forward.not_started = true;
                        step.forward.message = Some(reason.clone());
                    }
                }
            }
            Event::ProbeFinished {
                step,
                phase,
                probe,
                passed,
                samples,
                message,
            } => {
                let probe = RecordedProbe {
                    name: probe,
                    phase,
                    passed,
                    samples,
                    message,
                };
                if step == "rollback_verify" {
                    self.rollback_verify.push(probe);
                } else if is_gate_row(&step) {
                    // A gate has no step events: its probes decide its status.
                    let row = self.step_mut(&step);
                    let failed = !probe.passed || row.forward.status == StepStatus::Failed;
                    row.forward.status = if failed {
                        StepStatus::Failed
                    } else {
                        StepStatus::Succeeded
                    };
                    row.forward.finished = Some(time);
                    row.probes.push(probe);
                } else {
                    self.step_mut(&step).probes.push(probe);
                }
            }
            Event::StepFinished {
                step,
                phase: phase_name @ (Phase::Forward | Phase::Compensation),
                status,
                attempts,
                duration,
                message,
                outputs,
                outcome,
            } => {
                self.processes
                    .retain(|process| !(process.step == step && process.phase == phase_name));
                let step = self.step_mut(&step);
                let compensation = phase_name == Phase::Compensation;
                let phase = if compensation {
                    step.compensation
                        .get_or_insert_with(|| RecordedPhase::new(StepStatus::Compensating))
                } else {
                    &mut step.forward
                };
                phase.status = status;
                phase.attempts = attempts;
                phase.duration_ms = u64::try_from(duration.0.as_millis()).unwrap_or(u64::MAX);
                phase.message = message;
                phase.finished = Some(time);
                phase.finished_seq = Some(seq);
                phase.outcome = outcome;
                if !compensation {
                    step.outputs = outputs;
                    step.waiting_for_approval = false;
                }
            }
            Event::CompensationBlocked { step, waiting_on } => {
                let step = self.step_mut(&step);
                let phase = step
                    .compensation
                    .get_or_insert_with(|| RecordedPhase::new(StepStatus::Blocked));
                phase.status = StepStatus::Blocked;
                phase.message = Some(format!("waits for {}", waiting_on.join(", ")));
            }
            Event::ProcessStarted {
                step,
                phase,
                pid,
                start_time,
            } => {
                self.processes
                    .retain(|process| !(process.step == step && process.phase == phase));
                self.processes.push(RecordedProcess {
                    step,
                    phase,
                    pid,
                    start_time,
                });
            }
            Event::ApprovalRequested { step, .. } => {
                self.step_mut(&step).waiting_for_approval = true;
            }
            Event::ApprovalAnswered {
                step,
                approved,
                by,
                how,
                reason,
            } => {
                let step = self.step_mut(&step);
                step.waiting_for_approval = false;
                step.approval = Some(RecordedApproval {
                    approved,
                    by,
                    how,
                    reason,
                });
            }
            Event::CompensationRecorded { step, command } => {
                self.step_mut(&step).compensation_command = Some(command);
            }
            Event::Stopping { message, .. } => self.stopping = Some(message),
            Event::Notice { message } => self.notices.push(message),
            Event::RollbackStarted { .. } => self.rollback = Some(RollbackState::Started),
            Event::RollbackFinished { complete } => {
                self.rollback = Some(if complete {
                    RollbackState::Complete
                } else {
                    RollbackState::Incomplete
                });
            }
            Event::RunFinished {
                outcome,
                exit_code,
                duration,
                needs_a_person,
                summary,
            } => {
                let end = RecordedEnd {
                    outcome,
                    exit_code,
                    duration_ms: u64::try_from(duration.0.as_millis()).unwrap_or(u64::MAX),
                    needs_a_person,
                    time,
                    summary,
                };
                if let Some(action) = self.actions.last_mut() {
                    action.end = Some(end.clone());
                }
                self.end = Some(end);
            }
            Event::RunStarted { .. }
            | Event::StepStarted { .. }
            | Event::StepFinished { .. }
            | Event::StepOutput { .. }
            | Event::AttemptFailed { .. } => {}
        }
    }

    /// The runbook's `summary` as the run's own end rendered it, else as a later command's
    /// (a resume that finished the run) did.
    pub fn summary(&self) -> Option<&str> {
        self.actions
            .iter()
            .filter_map(|action| action.end.as_ref()?.summary.as_deref())
            .next()
    }

    /// The run's own end: that of the `run` that started it, before any later command.
    pub fn own_end(&self) -> Option<&RecordedEnd> {
        self.actions.first().and_then(|action| action.end.as_ref())
    }

    /// The run for people, in one line: its own outcome and duration, then each later
    /// command and how it ended: `succeeded in 11.3s; rolled back later by ops@box at
    /// 2026-12-01T10:00:00Z: rolled back (exit 0) in 3.0s`.
    pub fn story(&self) -> String {
        let ended = |end: &RecordedEnd| {
            format!(
                "{} (exit {}) in {}",
                end.outcome.words(end.exit_code),
                end.exit_code,
                crate::format::tenths(std::time::Duration::from_millis(end.duration_ms))
            )
        };
        let in_progress = self.in_progress();
        let mut story = match self.own_end() {
            Some(end) => ended(end),
            None if self.actions.len() > 1 => "unfinished (its engine stopped)".to_string(),
            None if in_progress => "in_progress".to_string(),
            None => "unfinished".to_string(),
        };
        for action in self.actions.iter().skip(1) {
            let what = match action.mode {
                RunMode::Rollback => "rolled back later",
                RunMode::Retry => "retried later",
                RunMode::Resume | RunMode::Run => "resumed",
            };
            let by = action.by();
            let by = if by.is_empty() {
                String::new()
            } else {
                format!(" by {by}")
            };
            let at = if action.started.is_empty() {
                String::new()
            } else {
                format!(" at {}", action.started)
            };
            let how = action.end.as_ref().map_or_else(
                || {
                    if in_progress {
                        "in_progress".to_string()
                    } else {
                        "unfinished".to_string()
                    }
                },
                ended,
            );
            story.push_str(&format!("; {what}{by}{at}: {how}"));
        }
        story
    }

    /// `succeeded`, `rolled_back`, ..., or `unfinished` when the journal has no end.
    /// `succeeded`, `rolled_back`, ..., `in_progress` while an engine still drives the run,
    /// or `unfinished` when the journal has no end and no engine does (it died).
    pub fn outcome(&self) -> String {
        match &self.end {
            Some(end) => end.outcome.name().to_string(),
            None if self.in_progress() => "in_progress".to_string(),
            None => "unfinished".to_string(),
        }
    }

    /// Whether the run has no end yet because its engine is still at work: the process that
    /// last drove it is alive and holds this run's journal open (a recycled process id
    /// does not).
    pub fn in_progress(&self) -> bool {
        if self.end.is_some() || self.engine_pid == 0 {
            return false;
        }
        let journal = self.directory.join(JOURNAL_FILE);
        let journal = std::fs::canonicalize(&journal).unwrap_or(journal);
        let Ok(descriptors) = std::fs::read_dir(format!("/proc/{}/fd", self.engine_pid)) else {
            return false;
        };
        descriptors
            .flatten()
            .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == journal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DurationMs;

    fn entry(seq: u64, time: &str, event: Event) -> Entry {
        Entry {
            seq,
            time: Some(time.to_string()),
            record: Record::Event(event),
        }
    }

    fn finished(step: &str, status: StepStatus, outcome: StepOutcome, message: &str) -> Event {
        Event::StepFinished {
            step: step.into(),
            phase: Phase::Forward,
            status,
            attempts: 1,
            duration: DurationMs(std::time::Duration::from_millis(10)),
            message: Some(message.into()),
            outputs: Vec::new(),
            outcome: Some(outcome),
        }
    }

    fn probe(step: &str, probe: &str, passed: bool) -> Event {
        Event::ProbeFinished {
            step: step.into(),
            phase: Phase::Forward,
            probe: probe.into(),
            passed,
            samples: 1,
            message: if passed { String::new() } else { "no".into() },
        }
    }

    #[test]
    fn a_gate_row_is_failed_once_one_of_its_probes_failed_else_succeeded() {
        let mut record = RunRecord::new(Path::new("run"));
        let gate = crate::events::gate_row("web", 1, "web1");
        let failing = crate::events::gate_row("web", 2, "web2");
        record.apply(entry(2, "t", probe(&gate, "up", true)));
        record.apply(entry(3, "t", probe(&failing, "down", false)));
        record.apply(entry(4, "t", probe(&failing, "up", true)));
        record.apply(entry(5, "t", probe("deploy", "up", true)));
        let status = |id: &str| record.step(id).map(|step| step.forward.status);
        assert_eq!(status(&gate), Some(StepStatus::Succeeded));
        assert_eq!(status(&failing), Some(StepStatus::Failed));
        assert_eq!(
            status("deploy"),
            Some(StepStatus::Pending),
            "a step's own events decide"
        );
    }

    #[test]
    fn a_gate_row_has_the_start_and_the_duration_its_gate_events_give() {
        let mut record = RunRecord::new(Path::new("run"));
        let gate = crate::events::gate_row("web", 1, "web1");
        let started = Event::GateStarted { step: gate.clone() };
        record.apply(entry(2, "2026-01-01T00:00:01Z", started));
        let row = |record: &RunRecord| record.step(&gate).expect("the gate's row").forward.clone();
        assert_eq!(row(&record).status, StepStatus::Running);
        assert_eq!(
            row(&record).started.as_deref(),
            Some("2026-01-01T00:00:01Z")
        );
        record.apply(entry(3, "2026-01-01T00:00:02Z", probe(&gate, "up", true)));
        let finished = Event::GateFinished {
            step: gate.clone(),
            passed: true,
            duration: DurationMs(std::time::Duration::from_millis(1_200)),
        };
        record.apply(entry(4, "2026-01-01T00:00:02Z", finished));
        assert_eq!(row(&record).status, StepStatus::Succeeded);
        assert_eq!(row(&record).duration_ms, 1_200);
        assert!(row(&record).finished.is_some());
    }

    #[test]
    fn a_step_the_run_stopped_before_is_not_started_until_a_resume_starts_it() {
        let mut record = RunRecord::new(Path::new("run"));
        record.apply(entry(
            2,
            "t",
            finished("a", StepStatus::Failed, StepOutcome::Failed, "no"),
        ));
        record.apply(entry(
            3,
            "t",
            Event::StepsNotStarted {
                steps: vec!["a".into(), "b".into()],
                reason: "stopped".into(),
            },
        ));
        let status = |record: &RunRecord, id: &str| {
            record
                .step(id)
                .map(|step| step.forward.status_name())
                .unwrap_or_default()
        };
        assert_eq!(status(&record, "a"), "failed");
        assert_eq!(status(&record, "b"), "not started");
        record.apply(entry(
            4,
            "t",
            Event::StepStarted {
                step: "b".into(),
                name: "B".into(),
                phase: Phase::Forward,
                attempt: 1,
            },
        ));
        assert_eq!(status(&record, "b"), "running");
    }

    #[test]
    fn a_timed_out_step_is_read_as_timed_out_whatever_its_message() {
        let mut record = RunRecord::new(Path::new("run"));
        record.apply(entry(
            2,
            "t",
            finished("slow", StepStatus::Failed, StepOutcome::TimedOut, "gave up"),
        ));
        record.apply(entry(
            3,
            "t",
            finished(
                "broken",
                StepStatus::Failed,
                StepOutcome::Failed,
                "printed: timed out after 1s",
            ),
        ));
        let outcome = |id: &str| record.step(id).map(|step| step.forward.forward_outcome());
        assert_eq!(outcome("slow"), Some(StepOutcome::TimedOut));
        assert_eq!(outcome("broken"), Some(StepOutcome::Failed));
        assert_eq!(
            record.step("slow").map(|step| step.forward.status),
            Some(StepStatus::Failed)
        );
    }

    #[test]
    fn a_step_started_and_not_finished_counts_as_cancelled() {
        let mut record = RunRecord::new(Path::new("run"));
        record.apply(entry(
            2,
            "t",
            Event::StepStarted {
                step: "a".into(),
                name: "A".into(),
                phase: Phase::Forward,
                attempt: 1,
            },
        ));
        let step = record.step("a").expect("recorded");
        assert_eq!(step.forward.status, StepStatus::Running);
        assert_eq!(step.forward.forward_outcome(), StepOutcome::Cancelled);
    }

    #[test]
    fn steps_finish_in_the_order_of_their_seq_not_their_time_stamps() {
        let mut record = RunRecord::new(Path::new("run"));
        // The clock went back between the two ends (or the stamps tie): `seq` decides.
        record.apply(entry(
            7,
            "2026-11-24T10:00:05.000Z",
            finished("first", StepStatus::Succeeded, StepOutcome::Succeeded, ""),
        ));
        record.apply(entry(
            8,
            "2026-11-24T09:00:00.000Z",
            Event::StepSkipped {
                step: "second".into(),
                reason: "`when` is false".into(),
            },
        ));
        record.apply(entry(
            9,
            "2026-11-24T08:00:00.000Z",
            finished(
                "third",
                StepStatus::Failed,
                StepOutcome::Failed,
                "exit code 1",
            ),
        ));
        let order: Vec<&str> = record
            .finished_in_order()
            .into_iter()
            .map(|step| step.id.as_str())
            .collect();
        assert_eq!(order, ["first", "second", "third"]);
    }

    fn run_finished(outcome: RunOutcome, exit_code: i32, milliseconds: u64) -> Event {
        Event::RunFinished {
            outcome,
            exit_code,
            duration: DurationMs(std::time::Duration::from_millis(milliseconds)),
            needs_a_person: Vec::new(),
            summary: None,
        }
    }

    #[test]
    fn a_later_rollback_keeps_the_runs_own_outcome_and_says_who_and_when() {
        let mut record = RunRecord::new(Path::new("run"));
        record.actions.push(RecordedAction {
            mode: RunMode::Run,
            started: "2026-12-01T10:00:00Z".into(),
            user: "ops".into(),
            host: "web1".into(),
            end: None,
        });
        record.apply(entry(
            5,
            "2026-12-01T10:00:11Z",
            run_finished(RunOutcome::Succeeded, 0, 11_300),
        ));
        // A `rollback RUN` by an older engine: its note names no one.
        let note = br#"{"record":"resumed","mode":"rollback","pid":7}"#;
        let Ok(Record::Resumed(resumed)) = super::super::journal_record::read_data(note) else {
            panic!("an older note is still read");
        };
        record.apply(Entry {
            seq: 6,
            time: Some("2026-12-01T11:02:00Z".into()),
            record: Record::Resumed(resumed),
        });
        record.apply(entry(
            9,
            "2026-12-01T11:02:03Z",
            run_finished(RunOutcome::RolledBack, 0, 3_000),
        ));
        assert_eq!(record.outcome(), "rolled_back");
        assert_eq!(
            record.own_end().map(|end| end.outcome),
            Some(RunOutcome::Succeeded)
        );
        assert_eq!(
            record.story(),
            "succeeded (exit 0) in 11.3s; rolled back later at 2026-12-01T11:02:00Z: rolled back (exit 0) in 3.0s"
        );
    }

    #[test]
    fn a_resumed_record_reopens_a_finished_run() {
        let mut record = RunRecord::new(Path::new("run"));
        record.apply(entry(
            2,
            "t",
            Event::RunFinished {
                outcome: RunOutcome::RollbackIncomplete,
                exit_code: 3,
                duration: DurationMs(std::time::Duration::from_secs(1)),
                needs_a_person: Vec::new(),
                summary: None,
            },
        ));
        assert_eq!(record.outcome(), "rollback_incomplete");
        record.apply(Entry {
            seq: 3,
            time: None,
            record: Record::Resumed(super::super::journal_record::Resumed {
                mode: RunMode::Resume,
                pid: 1,
                user: "ops".into(),
                host: "box".into(),
            }),
        });
        assert_eq!(record.outcome(), "unfinished");
        assert_eq!(record.mode, RunMode::Resume);
    }
}
