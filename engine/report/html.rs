//! The deployment summary of a recorded run as one self-contained HTML file: inline CSS, an
//! inline SVG Gantt chart, no script and no external resource (a Content-Security-Policy
//! says so to the browser). Every text that comes from the run is escaped, so a step that
//! prints `<script>` shows it as text.

use std::fmt::Write;

use super::escape::escape_html;
use super::view::ReportView;

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
td.message,.multiline{white-space:pre-wrap}
";

fn cell(text: &str) -> String {
    format!("<td>{}</td>", escape_html(text))
}

/// A cell whose text may span lines: its line breaks are kept (`white-space: pre-wrap`).
fn message_cell(text: &str) -> String {
    format!("<td class=\"message\">{}</td>", escape_html(text))
}

fn code(text: &str) -> String {
    format!("<code>{}</code>", escape_html(text))
}

/// Renders the HTML report of `view`, with `chart` (an inline SVG) under "Timeline".
/// A table of class `class`: a header row of `headers`, then `rows` (each a whole `<tr>`).
fn table(out: &mut String, class: &str, headers: &[&str], rows: impl IntoIterator<Item = String>) {
    let header: String = headers
        .iter()
        .map(|header| format!("<th>{header}</th>"))
        .collect();
    let _ = writeln!(out, "<table class=\"{class}\">\n<tr>{header}</tr>");
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out, "</table>");
}

pub(super) fn render(view: &ReportView, chart: &str) -> String {
    let mut out = String::new();
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
        escape_html(view.runbook),
        escape_html(view.run_id),
        escape_html(view.runbook),
        escape_html(&view.outcome),
        escape_html(&view.outcome_text)
    );

    let _ = writeln!(out, r#"<table class="facts">"#);
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    };
    fact("Run", code(view.run_id));
    fact(
        "Runbook",
        format!("{} ({})", code(view.runbook), code(view.file)),
    );
    fact("Digest", code(view.digest));
    fact("Started", escape_html(view.started_at));
    fact(
        "By",
        format!(
            "{} on {} (pid {})",
            code(view.user),
            code(view.host),
            view.pid
        ),
    );
    if let Some(step) = view.rehearsal {
        fact(
            "Rehearsal",
            format!(
                "a failure of {} (<code>--fail-at</code>): the step ran, then was failed on purpose",
                code(step)
            ),
        );
    }
    if let Some(summary) = view.summary {
        fact(
            "Summary",
            format!("<span class=\"multiline\">{}</span>", escape_html(summary)),
        );
    }
    if let Some(stopping) = view.stopping {
        fact(
            "Stopped because",
            format!("<span class=\"multiline\">{}</span>", escape_html(stopping)),
        );
    }
    if view.torn_tail {
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
        view.origin
            .map(|origin| format!(" ({})", escape_html(origin)))
            .unwrap_or_default()
    );
    out.push_str(chart);
    let _ = writeln!(out, "</div>");
    if !view.phases.is_empty() {
        let rows = view.phases.iter().map(|row| {
            let status_class = if row.went_wrong {
                " class=\"status-wrong\""
            } else {
                ""
            };
            format!(
                "<tr data-step=\"{}\" data-phase=\"{}\"><td>{}</td><td>{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td{status_class}>{}</td><td class=\"number\">{}</td>{}</tr>",
                escape_html(row.step),
                row.phase,
                code(row.step),
                row.phase,
                row.start,
                row.duration,
                escape_html(&row.status),
                row.attempts,
                message_cell(row.message)
            )
        });
        let headers = [
            "Step", "Phase", "Start", "Duration", "Status", "Attempts", "Message",
        ];
        table(&mut out, "timeline", &headers, rows);
    }

    let _ = writeln!(out, "<h2>Variables</h2>");
    if view.variables.is_empty() {
        let _ = writeln!(out, "<p>None.</p>");
    } else {
        let rows = view.variables.iter().map(|var| {
            format!(
                "<tr><td>{}</td><td>{}</td>{}</tr>",
                code(var.name),
                code(&var.value),
                cell(var.source)
            )
        });
        table(&mut out, "variables", &["Name", "Value", "Source"], rows);
    }

    let _ = writeln!(out, "<h2>Probes</h2>");
    if view.probes.is_empty() {
        let _ = writeln!(out, "<p>None ran.</p>");
    } else {
        let rows = view.probes.iter().map(|probe| {
            let result_class = if probe.passed {
                ""
            } else {
                " class=\"status-wrong\""
            };
            let result = format!("<td{result_class}>{}</td>", probe.result());
            format!(
                "<tr><td>{}</td>{}{}{result}<td class=\"number\">{}</td>{}</tr>",
                code(probe.step),
                cell(probe.phase),
                cell(probe.name),
                probe.samples,
                message_cell(probe.message)
            )
        });
        let headers = ["Step", "Phase", "Probe", "Result", "Samples", "Message"];
        table(&mut out, "probes", &headers, rows);
    }

    if !view.origins.is_empty() {
        let _ = writeln!(out, "<h2>Modules and instances</h2>");
        let rows = view.origins.iter().map(|origin| {
            format!(
                "<tr><td>{}</td>{}</tr>",
                code(origin.step),
                message_cell(&origin.text)
            )
        });
        table(&mut out, "origins", &["Step", "Written"], rows);
    }

    let _ = writeln!(out, "<h2>Outputs</h2>");
    if view.outputs.is_empty() {
        let _ = writeln!(out, "<p>None recorded.</p>");
    } else {
        let rows = view.outputs.iter().map(|output| {
            format!(
                "<tr><td>{}</td><td>{}</td>{}</tr>",
                code(output.step),
                code(output.key),
                message_cell(output.value)
            )
        });
        table(&mut out, "outputs", &["Step", "Output", "Value"], rows);
    }

    let _ = writeln!(
        out,
        "<h2>Rollback</h2>\n<p class=\"rollback\">{}</p>",
        escape_html(&view.rollback)
    );
    let _ = writeln!(out, "<h2>Needs a person</h2>");
    if view.needs_a_person.is_empty() {
        let _ = writeln!(out, "<p>Nothing.</p>");
    } else {
        let _ = writeln!(out, "<ul class=\"person\">");
        for line in &view.needs_a_person {
            let _ = writeln!(out, "<li class=\"multiline\">{}</li>", escape_html(line));
        }
        let _ = writeln!(out, "</ul>");
    }
    if !view.notices.is_empty() {
        let _ = writeln!(out, "<h2>Notices</h2>\n<ul>");
        for notice in view.notices {
            let _ = writeln!(out, "<li>{}</li>", escape_html(notice));
        }
        let _ = writeln!(out, "</ul>");
    }
    let _ = writeln!(out, "</body>\n</html>");
    out
}
