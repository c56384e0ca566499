//! The deployment summary of a recorded run as Markdown: who ran which runbook where, the
//! variables (secrets masked), a timeline table of every step and compensation, probes, the
//! rollback outcome and what needs a person. It lays out the report view; the words come
//! from there, so the HTML report says the same thing.

use std::fmt::Write;

use super::view::ReportView;

/// Escapes text for Markdown: nothing in it may become markup, a link, raw HTML or a new
/// table cell, and it stays on one line: its line breaks become `<br>`, the only markup
/// it gets.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(character);
            }
            // A line break stays one inside a table cell.
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '\t' => out.push(' '),
            other => out.push(other),
        }
    }
    out
}

/// A code span that holds `value` literally, also inside a table cell.
fn code(value: &str) -> String {
    let value = value.replace(['\n', '\r', '\t'], " ").replace('|', "\\|");
    let longest = value
        .split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if value.starts_with('`') || value.ends_with('`') {
        format!("{fence} {value} {fence}")
    } else {
        format!("{fence}{value}{fence}")
    }
}

/// Renders the Markdown report of `view`.
/// A table: the header row of `headers`, the alignment row `rule` (`|---|--:|`: `--:` for a
/// number), then one row a item of `rows`.
fn table<const N: usize>(
    out: &mut String,
    headers: [&str; N],
    rule: &str,
    rows: impl IntoIterator<Item = [String; N]>,
) {
    let _ = writeln!(out, "| {} |\n{rule}", headers.join(" | "));
    for cells in rows {
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

pub(super) fn render(view: &ReportView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run report: {}\n", text(view.runbook));
    let _ = writeln!(out, "**{}**\n", text(&view.outcome_text));
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Run | {} |", code(view.run_id));
    let _ = writeln!(
        out,
        "| Runbook | {} ({}) |",
        code(view.runbook),
        code(view.file)
    );
    let _ = writeln!(out, "| Digest | {} |", code(view.digest));
    let _ = writeln!(out, "| Started | {} |", text(view.started_at));
    let _ = writeln!(
        out,
        "| By | {} on {} (pid {}) |",
        code(view.user),
        code(view.host),
        view.pid
    );
    if let Some(step) = view.rehearsal {
        let _ = writeln!(
            out,
            "| Rehearsal | a failure of {} (`--fail-at`): the step ran, then was failed on purpose |",
            code(step)
        );
    }
    if let Some(summary) = view.summary {
        let _ = writeln!(out, "| Summary | {} |", text(summary));
    }
    if let Some(stopping) = view.stopping {
        let _ = writeln!(out, "| Stopped because | {} |", text(stopping));
    }
    if view.torn_tail {
        let _ = writeln!(
            out,
            "| Note | the journal's last record was torn (the engine died while writing it) and is ignored |"
        );
    }

    let _ = writeln!(out, "\n## Variables\n");
    if view.variables.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let rows = view
            .variables
            .iter()
            .map(|var| [code(var.name), code(&var.value), text(var.source)]);
        table(&mut out, ["Name", "Value", "Source"], "|---|---|---|", rows);
    }

    let _ = writeln!(out, "\n## Timeline\n");
    if view.phases.is_empty() {
        let _ = writeln!(out, "No step started.");
    } else {
        let _ = writeln!(
            out,
            "Offsets are from the run's start{}.\n",
            view.origin
                .map(|origin| format!(" ({origin})"))
                .unwrap_or_default()
        );
        let rows = view.phases.iter().map(|row| {
            [
                code(row.step),
                row.phase.to_string(),
                row.start.to_string(),
                row.duration.to_string(),
                text(&row.status),
                row.attempts.to_string(),
                text(row.message),
            ]
        });
        let headers = [
            "Step", "Phase", "Start", "Duration", "Status", "Attempts", "Message",
        ];
        table(&mut out, headers, "|---|---|--:|--:|---|--:|---|", rows);
    }

    let _ = writeln!(out, "\n## Probes\n");
    if view.probes.is_empty() {
        let _ = writeln!(out, "None ran.");
    } else {
        let rows = view.probes.iter().map(|probe| {
            [
                code(probe.step),
                text(probe.phase),
                text(probe.name),
                probe.result().to_string(),
                probe.samples.to_string(),
                text(probe.message),
            ]
        });
        let headers = ["Step", "Phase", "Probe", "Result", "Samples", "Message"];
        table(&mut out, headers, "|---|---|---|---|--:|---|", rows);
    }

    if !view.origins.is_empty() {
        let _ = writeln!(out, "\n## Modules and instances\n");
        let rows = view
            .origins
            .iter()
            .map(|origin| [code(origin.step), text(&origin.text)]);
        table(&mut out, ["Step", "Written"], "|---|---|", rows);
    }

    let _ = writeln!(out, "\n## Outputs\n");
    if view.outputs.is_empty() {
        let _ = writeln!(out, "None recorded.");
    } else {
        let rows = view
            .outputs
            .iter()
            .map(|output| [code(output.step), code(output.key), text(output.value)]);
        table(&mut out, ["Step", "Output", "Value"], "|---|---|---|", rows);
    }

    let _ = writeln!(out, "\n## Rollback\n\n{}", text(&view.rollback));

    let _ = writeln!(out, "\n## Needs a person\n");
    if view.needs_a_person.is_empty() {
        let _ = writeln!(out, "Nothing.");
    }
    for line in &view.needs_a_person {
        let _ = writeln!(out, "- {}", text(line));
    }
    if !view.notices.is_empty() {
        let _ = writeln!(out, "\n## Notices\n");
        for notice in view.notices {
            let _ = writeln!(out, "- {}", text(notice));
        }
    }
    out
}
