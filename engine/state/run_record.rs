//! A run as its journal tells it: the header, each step's forward result, probes and
//! compensation, and the outcome. Built by folding records one at a time, so a long journal
//! costs time, not memory.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::journal::{JOURNAL_FILE, JournalError, ReadJournal, for_each_record};

/// A recorded variable (secrets only by where they came from).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedVar {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
    pub source: String,
}

/// A probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedProbe {
    pub name: String,
    /// `forward` or `compensation`.
    pub phase: String,
    pub passed: bool,
    pub samples: u64,
    pub message: String,
}

/// One phase (forward or compensation) of a step.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RecordedPhase {
    pub status: String,
    pub attempts: u64,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub duration_ms: u64,
    pub message: Option<String>,
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
}

/// A process group that was running when the journal ended (its step had no end record).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedProcess {
    pub step: String,
    pub phase: String,
    pub pid: u32,
    pub start_time: Option<u64>,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedEnd {
    pub outcome: String,
    pub exit_code: i64,
    pub duration_ms: u64,
    pub needs_a_person: Vec<String>,
    pub time: String,
}

/// Everything the journal says about a run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunRecord {
    pub run_id: String,
    pub runbook: String,
    pub file: String,
    pub digest: String,
    pub started_at: String,
    pub pid: u64,
    pub host: String,
    pub user: String,
    pub vars: Vec<RecordedVar>,
    pub options: Value,
    pub steps: Vec<RecordedStep>,
    pub stopping: Option<String>,
    pub rollback: Option<String>,
    pub notices: Vec<String>,
    pub end: Option<RecordedEnd>,
    /// What last drove the run: `run`, `resume` or `rollback`.
    pub mode: String,
    /// Process groups started and not recorded as finished.
    pub processes: Vec<RecordedProcess>,
    pub records: u64,
    /// A torn last line was ignored.
    pub torn_tail: bool,
    #[serde(skip)]
    pub directory: PathBuf,
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn number(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or_default()
}

impl RunRecord {
    /// Reads the journal of the run in `directory`.
    pub fn load(directory: &Path) -> Result<RunRecord, JournalError> {
        let mut record = RunRecord {
            directory: directory.to_path_buf(),
            ..RunRecord::default()
        };
        let read: ReadJournal =
            for_each_record(&directory.join(JOURNAL_FILE), |data| record.apply(data))?;
        record.torn_tail = read.torn_at.is_some();
        Ok(record)
    }

    fn step_mut(&mut self, id: &str) -> &mut RecordedStep {
        if let Some(index) = self.steps.iter().position(|step| step.id == id) {
            return &mut self.steps[index];
        }
        self.steps.push(RecordedStep {
            id: id.to_string(),
            name: id.to_string(),
            forward: RecordedPhase {
                status: "pending".into(),
                ..RecordedPhase::default()
            },
            outputs: Vec::new(),
            probes: Vec::new(),
            compensation: None,
            compensation_command: None,
        });
        let last = self.steps.len() - 1;
        &mut self.steps[last]
    }

    /// Folds one record into the run.
    pub fn apply(&mut self, data: &Value) {
        self.records += 1;
        if data.get("record").and_then(Value::as_str) == Some("run_started") {
            self.run_id = text(data, "run_id");
            self.runbook = text(data, "runbook");
            self.file = text(data, "file");
            self.digest = text(data, "digest");
            self.started_at = text(data, "started_at");
            self.mode = "run".into();
            self.pid = number(data, "pid");
            self.host = text(data, "host");
            self.user = text(data, "user");
            self.options = data.get("options").cloned().unwrap_or_default();
            self.vars = data
                .get("vars")
                .and_then(Value::as_array)
                .map(|vars| {
                    vars.iter()
                        .map(|var| RecordedVar {
                            name: text(var, "name"),
                            value: var.get("value").and_then(Value::as_str).map(str::to_string),
                            secret: var.get("secret").and_then(Value::as_bool).unwrap_or(false),
                            source: text(var, "source"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            return;
        }
        if data.get("record").and_then(Value::as_str) == Some("resumed") {
            // A later `resume` or `rollback` continues the run: its end is yet to come.
            self.end = None;
            self.mode = text(data, "mode");
            return;
        }
        let time = text(data, "time");
        let step_id = text(data, "step");
        let compensation = text(data, "phase") == "compensation";
        match data
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "step_started" if !step_id.is_empty() && text(data, "phase") != "hook" => {
                let name = text(data, "name");
                let attempt = number(data, "attempt");
                let step = self.step_mut(&step_id);
                if !name.is_empty() {
                    step.name = name;
                }
                let phase = if compensation {
                    step.compensation.get_or_insert_with(RecordedPhase::default)
                } else {
                    &mut step.forward
                };
                phase.status = if compensation {
                    "compensating".into()
                } else {
                    "running".into()
                };
                phase.attempts = attempt.max(phase.attempts);
                if phase.started.is_none() {
                    phase.started = Some(time);
                }
            }
            "step_skipped" => {
                let reason = text(data, "reason");
                let step = self.step_mut(&step_id);
                step.forward.status = "skipped".into();
                step.forward.message = Some(reason);
                step.forward.finished = Some(time);
            }
            "probe_finished" => {
                let probe = RecordedProbe {
                    name: text(data, "probe"),
                    phase: text(data, "phase"),
                    passed: data.get("passed").and_then(Value::as_bool).unwrap_or(false),
                    samples: number(data, "samples"),
                    message: text(data, "message"),
                };
                if step_id != "rollback_verify" {
                    self.step_mut(&step_id).probes.push(probe);
                }
            }
            "step_finished" if text(data, "phase") != "hook" => {
                let phase_name = text(data, "phase");
                self.processes
                    .retain(|process| !(process.step == step_id && process.phase == phase_name));
                let step = self.step_mut(&step_id);
                let phase = if compensation {
                    step.compensation.get_or_insert_with(RecordedPhase::default)
                } else {
                    &mut step.forward
                };
                phase.status = text(data, "status");
                phase.attempts = number(data, "attempts");
                phase.duration_ms = number(data, "duration");
                phase.message = data
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                phase.finished = Some(time);
                if !compensation {
                    step.outputs = data
                        .get("outputs")
                        .and_then(Value::as_array)
                        .map(|pairs| {
                            pairs
                                .iter()
                                .filter_map(|pair| {
                                    Some((
                                        pair.get(0)?.as_str()?.to_string(),
                                        pair.get(1)?.as_str()?.to_string(),
                                    ))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                }
            }
            "compensation_blocked" => {
                let step = self.step_mut(&step_id);
                let phase = step.compensation.get_or_insert_with(RecordedPhase::default);
                phase.status = "blocked".into();
                let waiting: Vec<String> = data
                    .get("waiting_on")
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                phase.message = Some(format!("waits for {}", waiting.join(", ")));
            }
            "process_started" => {
                let phase = text(data, "phase");
                self.processes
                    .retain(|process| !(process.step == step_id && process.phase == phase));
                self.processes.push(RecordedProcess {
                    step: step_id,
                    phase,
                    pid: u32::try_from(number(data, "pid")).unwrap_or_default(),
                    start_time: data.get("start_time").and_then(Value::as_u64),
                });
            }
            "compensation_recorded" => {
                let command = text(data, "command");
                self.step_mut(&step_id).compensation_command = Some(command);
            }
            "stopping" => self.stopping = Some(text(data, "message")),
            "notice" => self.notices.push(text(data, "message")),
            "rollback_started" => self.rollback = Some("started".into()),
            "rollback_finished" => {
                let complete = data
                    .get("complete")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.rollback = Some(if complete {
                    "complete".into()
                } else {
                    "incomplete".into()
                });
            }
            "run_finished" => {
                self.end = Some(RecordedEnd {
                    outcome: text(data, "outcome"),
                    exit_code: data
                        .get("exit_code")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                    duration_ms: number(data, "duration"),
                    needs_a_person: data
                        .get("needs_a_person")
                        .and_then(Value::as_array)
                        .map(|lines| {
                            lines
                                .iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    time,
                });
            }
            _ => {}
        }
    }

    /// `succeeded`, `rolled_back`, ..., or `unfinished` when the journal has no end.
    pub fn outcome(&self) -> String {
        self.end
            .as_ref()
            .map_or_else(|| "unfinished".to_string(), |end| end.outcome.clone())
    }
}

/// Runs of `runbook` in `state` whose journal has no end (their engine died mid-run), and
/// journals that could not be read (damaged: which runbook they belong to is unknown, so
/// they are not guessed past).
pub fn unfinished_runs(state: &Path, runbook: &str) -> (Vec<String>, Vec<String>) {
    let mut unfinished = Vec::new();
    let mut damaged = Vec::new();
    for directory in super::list_runs(state) {
        match RunRecord::load(&directory) {
            Ok(record) if record.runbook == runbook && record.end.is_none() => {
                unfinished.push(record.run_id)
            }
            Ok(_) => {}
            Err(error) => damaged.push(error.to_string()),
        }
    }
    (unfinished, damaged)
}
