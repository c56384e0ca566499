//! The deployment summary of a recorded run as one self-contained HTML file: inline CSS, an
//! inline SVG Gantt chart, no script and no external resource (a Content-Security-Policy
//! says so to the browser). Every text that comes from the run is escaped, so a step that
//! prints `<script>` shows it as text.

use std::fmt::Write;

use super::gantt::{Timeline, gantt_svg};
use super::markdown::{needs_a_person, outcome_text, rollback_text, status_text, variable_value};
use crate::state::RunRecord;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const STYLE: &str = "
:root{color-scheme:light;--ink:#1d2330;--muted:#5b6475;--line:#d8dbe0}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);margin:2rem auto;max-width:1000px;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;border-bottom:1px solid var(--line);padding-bottom:.2rem}
code{font:12.5px ui-monospace,'DejaVu Sans Mono',monospace;background:#f1f3f6;padding:0 .25rem;border-radius:3px;overflow-wrap:break-word}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.number{text-align:right;white-space:nowrap}
table.timeline td:first-child,table.probes td:first-child{white-space:nowrap}
table.facts th{width:9rem}
.outcome{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600;color:#fff;background:#6b7280}
.outcome.succeeded{background:#1f8a4c}.outcome.rolled_back{background:#b76e00}
.outcome.rollback_incomplete,.outcome.failed_after_pivot,.outcome.failed_not_rolled_back{background:#c81e1e}
.status-wrong{color:#c81e1e;font-weight:600}
.chart{overflow-x:auto}
.gantt{max-width:100%;height:auto}
.gantt .row{fill:#f4f5f7}
.gantt .grid{stroke:var(--line);stroke-width:1}
.gantt .tick{fill:var(--muted)}
.gantt .label{fill:var(--ink)}
.gantt .key{fill:#fff;stroke:#8a919e}
.gantt .forward{fill:#2f6fdb}
.gantt .compensation{fill:#e8871e}
.gantt .wrong{stroke:#c81e1e;stroke-width:2.5}
.gantt .unfinished{stroke:#1d2330;stroke-dasharray:4 3;fill-opacity:.5}
ul.person li{color:#c81e1e;font-weight:600}
";

fn cell(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

/// Renders the HTML report of `record`.
pub(crate) fn html_report(record: &RunRecord, timeline: &Timeline) -> String {
    let mut out = String::new();
    let outcome = record.outcome();
    let _ = writeln!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run report: {} ({})</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Run report: {}</h1>
<p><span class="outcome {}">{}</span></p>"#,
        escape(&record.runbook),
        escape(&record.run_id),
        escape(&record.runbook),
        escape(&outcome),
        escape(&outcome_text(record))
    );

    let _ = writeln!(out, r#"<table class="facts">"#);
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    };
    fact("Run", code(&record.run_id));
    fact(
        "Runbook",
        format!("{} ({})", code(&record.runbook), code(&record.file)),
    );
    fact("Digest", code(&record.digest));
    fact("Started", escape(&record.started_at));
    fact(
        "By",
        format!(
            "{} on {} (pid {})",
            code(&record.user),
            code(&record.host),
            record.pid
        ),
    );
    if let Some(stopping) = &record.stopping {
        fact("Stopped because", escape(stopping));
    }
    if record.torn_tail {
        fact(
            "Note",
            "the journal's last record was torn (the engine died while writing it) and is ignored"
                .to_string(),
        );
    }
    let _ = writeln!(out, "</table>");

    let _ = writeln!(
        out,
        "<h2>Timeline</h2>\n<p>Seconds from the run's start{}.</p>\n<div class=\"chart\">",
        timeline
            .origin
            .as_ref()
            .map(|origin| format!(" ({})", escape(origin)))
            .unwrap_or_default()
    );
    out.push_str(&gantt_svg(record, timeline));
    let _ = writeln!(out, "</div>");
    if !timeline.entries.is_empty() {
        let _ = writeln!(
            out,
            "<table class=\"timeline\">\n<tr><th>Step</th><th>Phase</th><th>Start</th><th>Duration</th><th>Status</th><th>Attempts</th><th>Message</th></tr>"
        );
        for entry in &timeline.entries {
            let start = entry.start_text();
            let duration = entry.duration_text();
            let attempts = entry.attempts_text();
            let status_class = if entry.went_wrong() {
                " class=\"status-wrong\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<tr data-step=\"{}\" data-phase=\"{}\"><td>{}</td><td>{}</td><td class=\"number\">{start}</td><td class=\"number\">{duration}</td><td{status_class}>{}</td><td class=\"number\">{attempts}</td>{}</tr>",
                escape(&entry.step),
                entry.phase,
                code(&entry.step),
                entry.phase,
                escape(&status_text(entry.status)),
                cell(entry.message.as_deref().unwrap_or_default())
            );
        }
        let _ = writeln!(out, "</table>");
    }

    let _ = writeln!(out, "<h2>Variables</h2>");
    if record.vars.is_empty() {
        let _ = writeln!(out, "<p>None.</p>");
    } else {
        let _ = writeln!(
            out,
            "<table class=\"variables\">\n<tr><th>Name</th><th>Value</th><th>Source</th></tr>"
        );
        for var in &record.vars {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td>{}</tr>",
                code(&var.name),
                code(&variable_value(var)),
                cell(&var.source)
            );
        }
        let _ = writeln!(out, "</table>");
    }

    let _ = writeln!(out, "<h2>Probes</h2>");
    let probes: Vec<_> = record
        .steps
        .iter()
        .flat_map(|step| step.probes.iter().map(move |probe| (step, probe)))
        .collect();
    if probes.is_empty() {
        let _ = writeln!(out, "<p>None ran.</p>");
    } else {
        let _ = writeln!(
            out,
            "<table class=\"probes\">\n<tr><th>Step</th><th>Phase</th><th>Probe</th><th>Result</th><th>Samples</th><th>Message</th></tr>"
        );
        for (step, probe) in probes {
            let result = if probe.passed {
                "<td>passed</td>"
            } else {
                "<td class=\"status-wrong\">failed</td>"
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td>{}{}{result}<td class=\"number\">{}</td>{}</tr>",
                code(&step.id),
                cell(probe.phase.name()),
                cell(&probe.name),
                probe.samples,
                cell(&probe.message)
            );
        }
        let _ = writeln!(out, "</table>");
    }

    let _ = writeln!(
        out,
        "<h2>Rollback</h2>\n<p class=\"rollback\">{}</p>",
        escape(&rollback_text(record))
    );
    let _ = writeln!(out, "<h2>Needs a person</h2>");
    let lines = needs_a_person(record);
    if lines.is_empty() {
        let _ = writeln!(out, "<p>Nothing.</p>");
    } else {
        let _ = writeln!(out, "<ul class=\"person\">");
        for line in &lines {
            let _ = writeln!(out, "<li>{}</li>", escape(line));
        }
        let _ = writeln!(out, "</ul>");
    }
    if !record.notices.is_empty() {
        let _ = writeln!(out, "<h2>Notices</h2>\n<ul>");
        for notice in &record.notices {
            let _ = writeln!(out, "<li>{}</li>", escape(notice));
        }
        let _ = writeln!(out, "</ul>");
    }
    let _ = writeln!(out, "</body>\n</html>");
    out
}
