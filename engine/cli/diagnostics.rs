//! Renders diagnostics: miette's snippets with a caret and `help:` for people, JSON for
//! editors and CI, and engine errors with their `caused by:` chain.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde_json::{Value, json};

use crate::source::Source;
use crate::validate::{Diagnostic, Severity};

/// Whether output may use colour: not when `--no-color`, `NO_COLOR`, or not a terminal.
pub fn use_color(no_color: bool, stream_is_terminal: bool) -> bool {
    !no_color
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && stream_is_terminal
}

/// One diagnostic in the shape miette renders.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        (!self.labels.is_empty()).then_some(&self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}

fn span(source: &Source, position: crate::document::Position, length: usize) -> SourceSpan {
    let offset = source.offset(position.line, position.column);
    let length = if length == 0 {
        source.token_length(offset)
    } else {
        source.text()[offset..]
            .char_indices()
            .nth(length)
            .map_or(source.text().len() - offset, |(index, _)| index)
    };
    SourceSpan::new(offset.into(), length)
}

/// Renders diagnostics of one file for a terminal or a log.
pub fn render_text(source: &Source, diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_context_lines(1)
        .with_width(100);
    let named = NamedSource::new(source.name(), source.text().to_string()).with_language("yaml");
    let mut out = String::new();
    for diagnostic in diagnostics {
        let mut labels = Vec::new();
        if let Some(position) = diagnostic.position.filter(|position| position.line > 0) {
            labels.push(LabeledSpan::new_primary_with_span(
                diagnostic.label.clone(),
                span(source, position, diagnostic.length),
            ));
        }
        for (position, label) in &diagnostic.related {
            labels.push(LabeledSpan::new_with_span(
                Some(label.clone()),
                span(source, *position, 0),
            ));
        }
        if labels.is_empty() {
            out.push_str(&format!(
                "{}: {}\n  ╭─[{}]\n",
                diagnostic.severity.as_str(),
                diagnostic.message,
                source.name()
            ));
            if let Some(help) = &diagnostic.help {
                out.push_str(&format!("  help: {help}\n"));
            }
            out.push('\n');
            continue;
        }
        let report = Report {
            diagnostic,
            source: named.clone(),
            labels,
        };
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!(
                "{}: {}\n",
                diagnostic.severity.as_str(),
                diagnostic.message
            ));
        }
        out.push('\n');
    }
    out
}

/// One diagnostic as JSON: `file`, `line`, `column` (1-based), `severity`, `code`,
/// `message`, `help`, `related`.
pub fn diagnostic_json(file: &str, diagnostic: &Diagnostic) -> Value {
    let position = diagnostic.position.unwrap_or_default();
    json!({
        "file": file,
        "line": (position.line > 0).then_some(position.line),
        "column": (position.line > 0).then_some(position.column),
        "severity": diagnostic.severity.as_str(),
        "code": diagnostic.code,
        "message": diagnostic.message,
        "help": diagnostic.help,
        "related": diagnostic.related.iter().map(|(position, label)| json!({"line": position.line, "column": position.column, "label": label})).collect::<Vec<_>>(),
    })
}

/// An engine error and its causes, in the house style.
pub fn render_error(error: &dyn std::error::Error) -> String {
    let mut out = format!("error: {error}\n");
    let mut cause = error.source();
    while let Some(inner) = cause {
        out.push_str(&format!("  caused by: {inner}\n"));
        cause = inner.source();
    }
    out
}
