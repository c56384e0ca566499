//! The contract between the executor and the reporters: every event of a run, with stable
//! names (they are printed as JSON lines by `--log-format json`, and journaled, then read back
//! as the same types). The executor never prints.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tag_first::tag_first_enum;

/// How a step ended, in the words of SPEC §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    FailedAllowed,
    /// An instance of a rollout that failed its host within `max_failed` (SPEC §12): the
    /// host's instances were undone and it took no further part; the run went on.
    FailedTolerated,
    Skipped,
    Cancelled,
    Compensating,
    Compensated,
    CompensationFailed,
    /// Its compensation was not run because a compensation it waits for failed.
    Blocked,
    /// An approval gate someone (or `--yes`, `--approve`) approved.
    Approved,
    /// An approval gate someone denied.
    Denied,
    /// An approval gate nobody answered within its `timeout`: `on_timeout` decided.
    TimedOut,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::FailedAllowed => "failed (allowed)",
            StepStatus::FailedTolerated => "failed (tolerated)",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::CompensationFailed => "compensation failed",
            StepStatus::Blocked => "blocked",
            StepStatus::Approved => "approved",
            StepStatus::Denied => "denied",
            StepStatus::TimedOut => "timed out",
        }
    }

    /// The status as named in JSON and the journal (`failed_allowed`).
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::FailedAllowed => "failed_allowed",
            StepStatus::FailedTolerated => "failed_tolerated",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::CompensationFailed => "compensation_failed",
            StepStatus::Blocked => "blocked",
            StepStatus::Approved => "approved",
            StepStatus::Denied => "denied",
            StepStatus::TimedOut => "timed_out",
        }
    }

    /// Whether the step did what it was there for: it succeeded, or its gate was approved.
    pub fn is_success(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Approved)
    }

    /// Whether dependents may start whatever the step says (SPEC §4): a skipped step lets
    /// only an `after_skipped: run` step start, and a denied or timed-out gate only when
    /// `on_timeout` or `allow_failure` says so.
    pub fn satisfies_needs(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::FailedAllowed | StepStatus::Approved
        )
    }
}

/// Why a run stopped starting steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum CancelReason {
    StepFailed {
        step: String,
    },
    Signal {
        signal: String,
    },
    RunTimeout,
    /// The journal could not be written: the engine fails closed.
    JournalFailed {
        message: String,
    },
}

/// How the whole run ended (SPEC §8 exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    RolledBack,
    RollbackIncomplete,
    FailedAfterPivot,
    FailedNotRolledBack,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::RolledBack => "rolled back",
            RunOutcome::RollbackIncomplete => "rollback incomplete",
            RunOutcome::FailedAfterPivot => "failed after pivot",
            RunOutcome::FailedNotRolledBack => "failed, not rolled back",
        }
    }

    /// The outcome for people, told by its exit code too, so that a failed run that was
    /// rolled back never reads as a success: `failed; rolled back` (exit 1),
    /// `interrupted; rolled back` (a signal), `rolled back` (a requested `rollback RUN`,
    /// exit 0).
    pub fn words(self, exit_code: i32) -> &'static str {
        match (self, exit_code) {
            (RunOutcome::Succeeded, _) => "succeeded",
            (RunOutcome::RolledBack, 0) => "rolled back",
            (RunOutcome::RolledBack, 129 | 130 | 143) => "interrupted; rolled back",
            (RunOutcome::RolledBack, _) => "failed; rolled back",
            (RunOutcome::RollbackIncomplete, _) => "rollback incomplete",
            (RunOutcome::FailedAfterPivot, _) => "failed after pivot",
            (RunOutcome::FailedNotRolledBack, _) => "failed; not rolled back",
        }
    }

    /// The outcome as named in JSON and the journal (`rolled_back`).
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::RolledBack => "rolled_back",
            RunOutcome::RollbackIncomplete => "rollback_incomplete",
            RunOutcome::FailedAfterPivot => "failed_after_pivot",
            RunOutcome::FailedNotRolledBack => "failed_not_rolled_back",
        }
    }
}

/// How a step's forward run ended, as its compensation is told (`RUNBOOK_STEP_OUTCOME`): a
/// timed-out step is a fact of its own, not a failure whose message says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

impl StepOutcome {
    /// The word given to the compensation in `RUNBOOK_STEP_OUTCOME`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::TimedOut => "timed_out",
            StepOutcome::Cancelled => "cancelled",
        }
    }
}

/// How an approval gate was answered (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// `--yes` or `--approve ID` on the command line of the run.
    Flag,
    /// `y`/`N` on the terminal of the run.
    Terminal,
    /// `runbook approve|deny RUN GATE` from another terminal.
    Command,
    /// Nobody answered within the gate's `timeout`: its `on_timeout`.
    Timeout,
}

impl AnswerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerSource::Flag => "flag",
            AnswerSource::Terminal => "terminal",
            AnswerSource::Command => "command",
            AnswerSource::Timeout => "timeout",
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Forward step or its compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Forward,
    Compensation,
    Hook,
}

impl Phase {
    /// The phase as named in JSON and the journal.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Compensation => "compensation",
            Phase::Hook => "hook",
        }
    }
}

// Declared through `tag_first_enum!`, which also reads it tag first (`tag_first.rs`: no
// buffering of each record); the enum inside is as written, left at the margin.
tag_first_enum! {
/// One thing that happened. Every text in an event is already masked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event", deny_unknown_fields)]
pub enum Event {
    RunStarted {
        run_id: String,
        runbook: String,
        steps: usize,
        directory: String,
        /// `run`, `resume` or `rollback`.
        mode: String,
        /// The step `--fail-at` fails on purpose: the run is a rehearsal. Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rehearsal: Option<String>,
    },
    StepStarted {
        step: String,
        name: String,
        phase: Phase,
        attempt: u32,
    },
    /// A step's (or compensation's) process group started: its id and kernel start time.
    /// The compensation of a step that ran, rendered with its outputs (masked).
    CompensationRecorded {
        step: String,
        command: String,
    },
    ProcessStarted {
        step: String,
        phase: Phase,
        pid: u32,
        start_time: Option<u64>,
    },
    StepOutput {
        step: String,
        phase: Phase,
        stream: Stream,
        line: String,
    },
    AttemptFailed {
        step: String,
        phase: Phase,
        attempt: u32,
        message: String,
        retry_in: Option<DurationMs>,
    },
    ProbeFinished {
        step: String,
        phase: Phase,
        probe: String,
        passed: bool,
        samples: u32,
        message: String,
    },
    StepSkipped {
        step: String,
        reason: String,
    },
    /// A rollout's gate began its `verify` on one host after a batch: `step` is the gate's
    /// row (`rollout web batch 2 on web2`).
    GateStarted {
        step: String,
    },
    /// That gate's `verify` on the host ended: passed when every probe did.
    GateFinished {
        step: String,
        passed: bool,
        duration: DurationMs,
    },
    /// Steps that never started when the forward phase ended (the run stopped first):
    /// journaled so that `show` and `resume` see every step of the run.
    StepsNotStarted {
        steps: Vec<String>,
        reason: String,
    },
    StepFinished {
        step: String,
        phase: Phase,
        status: StepStatus,
        attempts: u32,
        duration: DurationMs,
        message: Option<String>,
        outputs: Vec<(String, String)>,
        /// How the forward run ended (none for a compensation); absent in format 1 journals.
        #[serde(default)]
        outcome: Option<StepOutcome>,
    },
    ApprovalRequested {
        step: String,
        question: String,
        /// How to answer it from elsewhere, and what its `timeout` does; absent in older
        /// journals.
        #[serde(default)]
        help: Option<String>,
    },
    /// Who or what answered an approval gate.
    ApprovalAnswered {
        step: String,
        approved: bool,
        /// The user who answered; none when the `timeout` did.
        by: Option<String>,
        how: AnswerSource,
        /// Why, as the person said (`runbook deny RUN GATE --reason TEXT`), masked.
        reason: Option<String>,
    },
    Stopping {
        reason: CancelReason,
        message: String,
    },
    Notice {
        message: String,
    },
    RollbackStarted {
        steps: Vec<String>,
    },
    CompensationBlocked {
        step: String,
        waiting_on: Vec<String>,
    },
    RollbackFinished {
        complete: bool,
    },
    RunFinished {
        outcome: RunOutcome,
        exit_code: i32,
        duration: DurationMs,
        needs_a_person: Vec<String>,
        /// The runbook's `summary`, rendered at the end (masked); absent when it has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
}
}

/// A duration as milliseconds in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationMs(pub Duration);

impl Serialize for DurationMs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX))
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u64::deserialize(deserializer)
            .map(|milliseconds| DurationMs(Duration::from_millis(milliseconds)))
    }
}

/// The row a rollout's gate has in events, the journal and `show` (SPEC §12): `rollout web
/// batch 2 on web2`, the `step` of the probes the gate ran on that host after that batch.
pub fn gate_row(group: &str, batch_number: usize, host: &str) -> String {
    format!("rollout {group} batch {batch_number} on {host}")
}

/// Whether `step` names a rollout gate's row rather than a step (a step id has no space).
pub fn is_gate_row(step: &str) -> bool {
    step.starts_with("rollout ") && step.contains(" batch ") && step.contains(" on ")
}

/// The host a row is about: `web2` for an instance `deploy@web2` and for a gate's row
/// `rollout web batch 2 on web2`; none for a step on the engine's machine.
pub fn row_host(step: &str) -> Option<&str> {
    if is_gate_row(step) {
        return step.rsplit_once(" on ").map(|(_, host)| host);
    }
    step.split_once('@').map(|(_, host)| host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag_first::read_tag_first;

    /// One event of every kind, with every optional field both set and unset somewhere.
    fn every_kind() -> Vec<Event> {
        let step = || "db".to_string();
        let text = |text: &str| text.to_string();
        let duration = DurationMs(Duration::from_millis(1500));
        vec![
            Event::RunStarted {
                run_id: text("r1"),
                runbook: text("deploy"),
                steps: 3,
                directory: text("/srv"),
                mode: text("run"),
                rehearsal: Some(step()),
            },
            Event::RunStarted {
                run_id: text("r1"),
                runbook: text("deploy"),
                steps: 3,
                directory: text("/srv"),
                mode: text("resume"),
                rehearsal: None,
            },
            Event::StepStarted {
                step: step(),
                name: text("Dump \"the\" db\n"),
                phase: Phase::Compensation,
                attempt: 2,
            },
            Event::CompensationRecorded {
                step: step(),
                command: text("rm -f /tmp/x"),
            },
            Event::ProcessStarted {
                step: step(),
                phase: Phase::Forward,
                pid: 42,
                start_time: Some(7),
            },
            Event::ProcessStarted {
                step: step(),
                phase: Phase::Hook,
                pid: 42,
                start_time: None,
            },
            Event::StepOutput {
                step: step(),
                phase: Phase::Forward,
                stream: Stream::Stderr,
                line: text("é\u{1b}[0m"),
            },
            Event::AttemptFailed {
                step: step(),
                phase: Phase::Forward,
                attempt: 1,
                message: text("exit code 1"),
                retry_in: Some(duration),
            },
            Event::ProbeFinished {
                step: step(),
                phase: Phase::Forward,
                probe: text("http"),
                passed: false,
                samples: 3,
                message: text("503"),
            },
            Event::StepSkipped {
                step: step(),
                reason: text("when"),
            },
            Event::GateStarted {
                step: gate_row("web", 2, "web2"),
            },
            Event::GateFinished {
                step: gate_row("web", 2, "web2"),
                passed: true,
                duration,
            },
            Event::StepsNotStarted {
                steps: vec![step(), text("b")],
                reason: text("stopped"),
            },
            Event::StepFinished {
                step: step(),
                phase: Phase::Forward,
                status: StepStatus::FailedAllowed,
                attempts: 2,
                duration,
                message: Some(text("exit code 3")),
                outputs: vec![(text("url"), text("http://x"))],
                outcome: Some(StepOutcome::TimedOut),
            },
            Event::StepFinished {
                step: step(),
                phase: Phase::Compensation,
                status: StepStatus::Compensated,
                attempts: 1,
                duration,
                message: None,
                outputs: Vec::new(),
                outcome: None,
            },
            Event::ApprovalRequested {
                step: step(),
                question: text("go?"),
                help: Some(text("runbook approve")),
            },
            Event::ApprovalAnswered {
                step: step(),
                approved: false,
                by: Some(text("ann")),
                how: AnswerSource::Command,
                reason: None,
            },
            Event::Stopping {
                reason: CancelReason::StepFailed { step: step() },
                message: text("step failed"),
            },
            Event::Stopping {
                reason: CancelReason::RunTimeout,
                message: text("timeout"),
            },
            Event::Notice {
                message: text("note"),
            },
            Event::RollbackStarted {
                steps: vec![step()],
            },
            Event::CompensationBlocked {
                step: step(),
                waiting_on: vec![text("b")],
            },
            Event::RollbackFinished { complete: true },
            Event::RunFinished {
                outcome: RunOutcome::RolledBack,
                exit_code: 1,
                duration,
                needs_a_person: vec![step()],
                summary: Some(text("done")),
            },
        ]
    }

    #[test]
    fn every_kind_of_event_is_read_tag_first_as_the_derived_reading_reads_it() {
        for event in every_kind() {
            let json = serde_json::to_string(&event).expect("serialize");
            let tag_first = read_tag_first::<Event>(&json)
                .expect("written tag first")
                .expect("read tag first");
            let derived: Event = serde_json::from_str(&json).expect("read derived");
            assert_eq!(format!("{tag_first:?}"), format!("{derived:?}"));
            assert_eq!(format!("{tag_first:?}"), format!("{event:?}"));
        }
    }

    #[test]
    fn what_the_tag_first_reading_refuses_is_told_by_the_derived_reading() {
        for data in [
            r#"{"event":"notice","message":"x","extra":1}"#,
            r#"{"event":"notice","event":"notice","message":"x"}"#,
            r#"{"event":"no_such_event","message":"x"}"#,
            r#"{"event":{"notice":null},"message":"x"}"#,
            r#"{"event":15,"message":"x"}"#,
            r#"{"event":null,"message":"x"}"#,
            r#"{"event":"step_skipped","step":"db"}"#,
            r#"{"event":"notice","message":"x"} trailing"#,
        ] {
            assert!(
                matches!(read_tag_first::<Event>(data), Some(Err(_))),
                "{data}"
            );
            let derived = serde_json::from_str::<Event>(data)
                .expect_err("refused")
                .to_string();
            let read = crate::tag_first::from_str::<Event>(data)
                .expect_err("refused")
                .to_string();
            assert_eq!(read, derived, "{data}");
        }
        let later = r#"{"message":"x","event":"notice"}"#;
        assert!(read_tag_first::<Event>(later).is_none());
        let read: Event = crate::tag_first::from_str(later).expect("read");
        assert!(matches!(read, Event::Notice { message } if message == "x"));
    }

    /// The object's JSON with its `event` first, as this engine writes it.
    fn tag_first_text(object: &serde_json::Map<String, serde_json::Value>) -> String {
        let members: Vec<String> = object
            .get("event")
            .map(|tag| format!("\"event\":{tag}"))
            .into_iter()
            .chain(
                object
                    .iter()
                    .filter(|(key, _)| *key != "event")
                    .map(|(key, value)| {
                        format!("{}:{value}", serde_json::Value::from(key.as_str()))
                    }),
            )
            .collect();
        format!("{{{}}}", members.join(","))
    }

    #[test]
    fn changed_events_are_read_tag_first_as_the_derived_reading_reads_them() {
        let values: Vec<serde_json::Value> = [
            "null",
            "0",
            "-1",
            "1.5",
            "4294967296",
            "\"x\"",
            "\"forward\"",
            "true",
            "[]",
            "[\"a\"]",
            "[[\"a\",\"b\"]]",
            "[[\"a\"]]",
            "{}",
            "{\"forward\":null}",
            "{\"kind\":\"run_timeout\"}",
            "{\"notice\":null}",
        ]
        .iter()
        .map(|text| serde_json::from_str(text).expect("value"))
        .collect();
        let mut checked = 0;
        for event in every_kind() {
            let serde_json::Value::Object(object) = serde_json::to_value(&event).expect("value")
            else {
                panic!("an event is an object");
            };
            let mut changed = vec![object.clone()];
            for key in object.keys() {
                let mut without = object.clone();
                without.remove(key);
                changed.push(without);
                for value in &values {
                    let mut with = object.clone();
                    with.insert(key.clone(), value.clone());
                    changed.push(with);
                }
            }
            let mut extra = object.clone();
            extra.insert("extra".into(), serde_json::Value::Null);
            changed.push(extra);
            for object in changed {
                let text = tag_first_text(&object);
                let read = crate::tag_first::from_str::<Event>(&text);
                let derived = serde_json::from_str::<Event>(&text);
                assert_eq!(
                    format!("{:?}", read.map_err(|error| error.to_string())),
                    format!("{:?}", derived.map_err(|error| error.to_string())),
                    "{text}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}
