//! `runbook history` and `runbook show RUN`: the runs of a state directory, and one run step
//! by step, as text or JSON.

use std::fmt::Write;
use std::time::Duration;

use super::args::{GlobalArgs, HistoryArgs, RecordFormat, ShowArgs};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::events::Phase;
use crate::format::tenths;
use crate::state::{
    RecordedProbe, RunRecord, RunSummary, check_state_directory, find_run, latest_runs, list_runs,
    state_directory,
};

/// How many runs `history` lists without `--all`: the latest.
const LATEST: usize = 20;

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
    let (runs, total) = if args.all {
        let runs = list_runs(&state);
        let total = runs.len();
        (runs, total)
    } else {
        latest_runs(&state, LATEST)
    };
    let rows: Vec<Result<RunSummary, Damaged>> = runs
        .iter()
        .map(|directory| {
            RunSummary::load(directory).map_err(|error| Damaged {
                run_id: directory
                    .file_name()
                    .map(|name| name.to_string_lossy().to_string())
                    .unwrap_or_default(),
                problem: error.to_string(),
            })
        })
        .collect();
    match args.format {
        RecordFormat::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| match row {
                    Ok(record) => serde_json::json!({
                        "run_id": record.run_id,
                        "runbook": record.runbook,
                        "started_at": record.started_at,
                        "duration_ms": record.duration_ms,
                        "outcome": record.outcome,
                        "exit_code": record.exit_code,
                        "rehearsal": record.rehearsal,
                        "summary": record.summary,
                        "own": record.own,
                        "later": record.later,
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
                crate::report::escape_c1(&serde_json::to_string_pretty(&list).unwrap_or_default())
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
                // The run's own duration: a later rollback's does not replace it.
                let duration = record
                    .own
                    .as_ref()
                    .map(|end| tenths(Duration::from_millis(end.duration_ms)))
                    .unwrap_or_default();
                let rehearsal = record
                    .rehearsal
                    .as_ref()
                    .map(|step| format!("rehearsal at `{step}`: "))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<24} {:<20} {:<20} {:>9}  {rehearsal}{}",
                    record.run_id, record.runbook, record.started_at, duration, record.story
                );
                if let Some(summary) = &record.summary {
                    write_block(&mut out, &format!("{:>78}", "summary: "), summary);
                }
            }
            if runs.len() < total {
                let _ = writeln!(
                    out,
                    "(the latest {} of {total} runs; `--all` lists every run)",
                    runs.len()
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
            crate::report::escape_c1(&serde_json::to_string_pretty(&record).unwrap_or_default())
        ),
        _ => out!("{}", crate::report::for_stdout(&show_text(&record))),
    }
    EXIT_SUCCESS
}

/// A run step by step, for people. Every multi-line text (a message, a probe's output, a
/// compensation's script) is indented under its row, never flattened or flush left.
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
    if let Some(step) = &record.options.fail_at {
        let _ = writeln!(
            out,
            "  rehearsal: `--fail-at {step}` (the step was failed on purpose after it ran)"
        );
    }
    let _ = writeln!(out, "  outcome: {}", record.outcome());
    write_block(&mut out, "  result: ", &record.story());
    if let Some(summary) = record.summary() {
        write_block(&mut out, "  summary: ", summary);
    }
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
            write_block(
                &mut out,
                &format!("  {} = ", var.name),
                &format!("{value}  ({})", var.source),
            );
        }
    }
    let _ = writeln!(out, "\nsteps");
    for step in &record.steps {
        let forward = &step.forward;
        let _ = writeln!(
            out,
            "  {:<20} {:<18} attempts {:<2} {}",
            step.id,
            forward.status_name(),
            forward.attempts,
            tenths(Duration::from_millis(forward.duration_ms))
        );
        if step.name != step.id && !step.name.is_empty() {
            write_block(&mut out, "      name: ", &step.name);
        }
        if let Some(message) = &forward.message {
            write_block(&mut out, "      ", message);
        }
        for (key, value) in &step.outputs {
            write_block(&mut out, &format!("      output {key}="), value);
        }
        for probe in step.probes.iter().filter(|probe| {
            !forward
                .message
                .as_ref()
                .is_some_and(|message| message.contains(&probe.message))
        }) {
            let phase = if probe.phase == Phase::Compensation {
                "undo "
            } else {
                ""
            };
            write_probe(&mut out, "      ", phase, probe);
        }
        if let Some(command) = &step.compensation_command {
            write_block(&mut out, "      undo: $ ", command);
        }
        if let Some(origin) = record.origins.iter().find(|origin| origin.step == step.id) {
            let _ = writeln!(out, "      {}", crate::report::origin_text(origin));
        }
        if record.irreversible.contains(&step.id) {
            let _ = writeln!(out, "      irreversible: a rollback does not undo it");
        }
        if let Some(compensation) = &step.compensation {
            let _ = writeln!(
                out,
                "      rollback: {} {}",
                compensation.status.name(),
                tenths(Duration::from_millis(compensation.duration_ms)),
            );
            if let Some(message) = &compensation.message {
                write_block(&mut out, "        ", message);
            }
        }
    }
    if !record.rollback_verify.is_empty() {
        let _ = writeln!(out, "\nrollback_verify");
        for probe in &record.rollback_verify {
            write_probe(&mut out, "  ", "", probe);
        }
    }
    if let Some(stopping) = &record.stopping {
        write_block(&mut out, "\nstopped: ", stopping);
    }
    if let Some(end) = &record.end {
        if !end.needs_a_person.is_empty() {
            let _ = writeln!(out, "\nneeds a person:");
            for line in &end.needs_a_person {
                write_block(&mut out, "  - ", line);
            }
        }
        let _ = writeln!(
            out,
            "\n{} (exit {}) after {}",
            end.outcome.words(end.exit_code),
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

/// A probe's result, its message (all of its lines) under it.
fn write_probe(out: &mut String, indent: &str, phase: &str, probe: &RecordedProbe) {
    let verdict = if probe.passed { "passed" } else { "failed" };
    let _ = writeln!(out, "{indent}{phase}probe `{}` {verdict}", probe.name);
    if !probe.message.is_empty() {
        write_block(out, &format!("{indent}  "), &probe.message);
    }
}

/// Writes `text` after `prefix`; its further lines are indented to line up under the first
/// (a prefix that starts with blank lines is laid out after them).
fn write_block(out: &mut String, prefix: &str, text: &str) {
    let blank = prefix.len() - prefix.trim_start_matches('\n').len();
    out.push_str(&prefix[..blank]);
    let prefix = &prefix[blank..];
    let indent = " ".repeat(prefix.chars().count());
    let mut lines = text.trim_end_matches('\n').lines();
    let _ = writeln!(out, "{prefix}{}", lines.next().unwrap_or_default());
    for line in lines {
        let _ = writeln!(out, "{indent}{line}");
    }
}
