//! `runbook history` and `runbook show RUN`: the runs of a state directory, and one run step
//! by step, as text or JSON.

use std::fmt::Write;
use std::time::Duration;

use super::args::{GlobalArgs, HistoryArgs, RecordFormat, ShowArgs};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::events::Phase;
use crate::format::tenths;
use crate::state::{RunRecord, check_state_directory, find_run, list_runs, state_directory};

/// A run directory whose journal could not be read: listed as damaged, never as an empty run.
struct Damaged {
    run_id: String,
    problem: String,
}

pub fn history(args: &HistoryArgs, global: &GlobalArgs) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    if let Err(message) = check_state_directory(&state) {
        errln!("error: {message}");
        return EXIT_INVALID;
    }
    let mut rows = Vec::new();
    for directory in list_runs(&state) {
        rows.push(RunRecord::load(&directory).map_err(|error| {
            Damaged {
                run_id: directory
                    .file_name()
                    .map(|name| name.to_string_lossy().to_string())
                    .unwrap_or_default(),
                problem: error.to_string(),
            }
        }));
    }
    match args.format {
        RecordFormat::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| match row {
                    Ok(record) => serde_json::json!({
                        "run_id": record.run_id,
                        "runbook": record.runbook,
                        "started_at": record.started_at,
                        "duration_ms": record.end.as_ref().map(|end| end.duration_ms),
                        "outcome": record.outcome(),
                        "exit_code": record.end.as_ref().map(|end| end.exit_code),
                    }),
                    Err(damaged) => serde_json::json!({
                        "run_id": damaged.run_id,
                        "runbook": null,
                        "started_at": null,
                        "duration_ms": null,
                        "outcome": "damaged",
                        "exit_code": null,
                        "problem": damaged.problem,
                    }),
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        _ => {
            if rows.is_empty() {
                outln!("no runs recorded in `{}`", state.display());
                return EXIT_SUCCESS;
            }
            let mut out = format!(
                "{:<24} {:<20} {:<20} {:>9}  outcome\n",
                "run", "runbook", "started", "duration"
            );
            for row in &rows {
                let record = match row {
                    Ok(record) => record,
                    Err(damaged) => {
                        let _ = writeln!(
                            out,
                            "{:<24} {:<20} {:<20} {:>9}  damaged: {}",
                            damaged.run_id, "?", "?", "", damaged.problem
                        );
                        continue;
                    }
                };
                let duration = record
                    .end
                    .as_ref()
                    .map(|end| tenths(Duration::from_millis(end.duration_ms)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<24} {:<20} {:<20} {:>9}  {}",
                    record.run_id,
                    record.runbook,
                    record.started_at,
                    duration,
                    record.outcome()
                );
            }
            out!("{}", crate::report::for_stdout(&out));
        }
    }
    EXIT_SUCCESS
}

pub fn show(args: &ShowArgs, global: &GlobalArgs) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    let directory = match find_run(&state, &args.run) {
        Ok(directory) => directory,
        Err(message) => {
            errln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let record = match RunRecord::load(&directory) {
        Ok(record) => record,
        Err(error) => {
            errln!("error: cannot show run `{}`: {error}", args.run);
            return EXIT_INVALID;
        }
    };
    match args.format {
        RecordFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&record).unwrap_or_default()
        ),
        _ => out!("{}", crate::report::for_stdout(&show_text(&record))),
    }
    EXIT_SUCCESS
}

/// A run step by step, for people.
pub fn show_text(record: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} of `{}` ({})",
        record.run_id, record.runbook, record.file
    );
    let _ = writeln!(
        out,
        "  started {} by {}@{} (pid {})",
        record.started_at, record.user, record.host, record.pid
    );
    let _ = writeln!(out, "  outcome: {}", record.outcome());
    if record.torn_tail {
        let _ = writeln!(
            out,
            "  note: the journal's last record was torn (the engine died while writing it) and is ignored"
        );
    }
    if !record.vars.is_empty() {
        let _ = writeln!(out, "\nvariables");
        for var in &record.vars {
            let value = if var.secret {
                "••••••".to_string()
            } else {
                var.value.clone().unwrap_or_else(|| "(unset)".into())
            };
            let _ = writeln!(out, "  {} = {}  ({})", var.name, value, var.source);
        }
    }
    let _ = writeln!(out, "\nsteps");
    for step in &record.steps {
        let forward = &step.forward;
        let _ = writeln!(
            out,
            "  {:<20} {:<18} attempts {:<2} {}",
            step.id,
            forward.status.name(),
            forward.attempts,
            tenths(Duration::from_millis(forward.duration_ms))
        );
        if let Some(message) = &forward.message {
            let _ = writeln!(out, "      {message}");
        }
        for (key, value) in &step.outputs {
            let _ = writeln!(out, "      output {key}={value}");
        }
        for probe in step.probes.iter().filter(|probe| {
            !forward
                .message
                .as_ref()
                .is_some_and(|message| message.contains(&probe.message))
        }) {
            let verdict = if probe.passed { "passed" } else { "failed" };
            let phase = if probe.phase == Phase::Compensation {
                "undo "
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "      {phase}probe `{}` {verdict}: {}",
                probe.name,
                probe.message.lines().next().unwrap_or_default()
            );
        }
        if let Some(command) = &step.compensation_command {
            let first = command.lines().next().unwrap_or_default();
            let more = if command.trim_end().lines().count() > 1 {
                " …"
            } else {
                ""
            };
            let _ = writeln!(out, "      undo: $ {first}{more}");
        }
        if let Some(compensation) = &step.compensation {
            let _ = writeln!(
                out,
                "      rollback: {} {}{}",
                compensation.status.name(),
                tenths(Duration::from_millis(compensation.duration_ms)),
                compensation
                    .message
                    .as_ref()
                    .map(|message| format!(": {message}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(stopping) = &record.stopping {
        let _ = writeln!(out, "\nstopped: {stopping}");
    }
    if let Some(end) = &record.end {
        if !end.needs_a_person.is_empty() {
            let _ = writeln!(out, "\nneeds a person:");
            for line in &end.needs_a_person {
                let _ = writeln!(out, "  - {line}");
            }
        }
        let _ = writeln!(
            out,
            "\n{} (exit {}) after {}",
            end.outcome.name(),
            end.exit_code,
            tenths(Duration::from_millis(end.duration_ms))
        );
    } else {
        let _ = writeln!(
            out,
            "\nthe run has no end record: its engine stopped before it finished (`runbook resume {}` or `runbook rollback {}`)",
            record.run_id, record.run_id
        );
    }
    out
}
