//! Renders diagnostics: miette's snippets with a caret and `help:` for people, JSON for
//! editors and CI, and engine errors with their `caused by:` chain.

use std::collections::HashMap;
use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteSpanContents, SourceSpan};
use serde_json::{Value, json};

use crate::source::Source;
use crate::validate::{Diagnostic, Severity};

/// Whether output may use colour: not when `--no-color`, `NO_COLOR`, or not a terminal.
pub fn use_color(no_color: bool, stream_is_terminal: bool) -> bool {
    !no_color
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && stream_is_terminal
}

/// Warnings of one kind (one `code`) shown before the rest are summed up in one line.
pub const WARNINGS_SHOWN_PER_KIND: usize = 10;

/// The runbook text as miette reads snippets from it, with an index of where each line starts
/// (by miette's rule: `\n`, `\r\n` or a lone `\r` ends a line), built once per file.
/// miette's own `SourceCode` for text scans from the start of the file to the snippet, which
/// made rendering every diagnostic of a big file quadratic.
struct Snippets<'a> {
    name: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Snippets<'a> {
    fn new(source: &'a Source) -> Snippets<'a> {
        let text = source.text();
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        for (index, byte) in bytes.iter().enumerate() {
            let ends_line = match byte {
                b'\n' => true,
                b'\r' => bytes.get(index + 1) != Some(&b'\n'),
                _ => false,
            };
            if ends_line {
                line_starts.push(index + 1);
            }
        }
        Snippets {
            name: source.name(),
            text,
            line_starts,
        }
    }

    /// The 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }
}

impl miette::SourceCode for Snippets<'_> {
    /// Hands miette a window of whole lines around the span, a line wider than the context
    /// on each side, and shifts its answer back to file offsets and line numbers: the same
    /// answer as reading the whole file, in time that does not grow with the file.
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'b> + 'b>, miette::MietteError> {
        let start = span.offset();
        let end = start.saturating_add(span.len());
        let first_line = self.line_of(start);
        let window_line = first_line.saturating_sub(context_lines_before + 1);
        let window_start = self.line_starts[window_line];
        let last_line = self.line_of(end);
        let window_end = self
            .line_starts
            .get(last_line.saturating_add(context_lines_after + 2))
            .copied()
            .unwrap_or(self.text.len());
        let window = &self.text.as_bytes()[window_start..window_end];
        let relative = SourceSpan::new(start.saturating_sub(window_start).into(), span.len());
        let contents = <[u8] as miette::SourceCode>::read_span(
            window,
            &relative,
            context_lines_before,
            context_lines_after,
        )?;
        let found = contents.span();
        let contents = MietteSpanContents::new_named(
            self.name.to_string(),
            contents.data(),
            SourceSpan::new((found.offset() + window_start).into(), found.len()),
            contents.line() + window_line,
            contents.column(),
            contents.line_count() + window_line,
        )
        .with_language("yaml");
        Ok(Box::new(contents))
    }
}

/// One diagnostic in the shape miette renders.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: &'a Snippets<'a>,
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
        (!self.labels.is_empty()).then_some(self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}

fn span(source: &Source, position: crate::document::Position, length: usize) -> SourceSpan {
    let offset = source.offset(position.line(), position.column());
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

/// Which warnings to show: errors are always all shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warnings {
    /// Every warning (`--all-warnings`).
    All,
    /// The first `WARNINGS_SHOWN_PER_KIND` of each kind, then one line counting the rest.
    Capped,
}

impl Warnings {
    pub fn from_flag(all_warnings: bool) -> Warnings {
        if all_warnings {
            Warnings::All
        } else {
            Warnings::Capped
        }
    }
}

/// Renders diagnostics of one file for a terminal or a log, in time linear in their number
/// and the size of the file.
pub fn render_text(
    source: &Source,
    diagnostics: &[Diagnostic],
    color: bool,
    warnings: Warnings,
) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_context_lines(1)
        .with_width(100);
    let snippets = Snippets::new(source);
    let mut totals: HashMap<&str, usize> = HashMap::new();
    if warnings == Warnings::Capped {
        for diagnostic in diagnostics.iter().filter(|found| !found.is_error()) {
            *totals.entry(diagnostic.code).or_default() += 1;
        }
    }
    let mut shown: HashMap<&str, usize> = HashMap::new();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let mut hidden_after = None;
        if warnings == Warnings::Capped && !diagnostic.is_error() {
            let count = shown.entry(diagnostic.code).or_default();
            *count += 1;
            if *count > WARNINGS_SHOWN_PER_KIND {
                continue;
            }
            let total = totals.get(diagnostic.code).copied().unwrap_or_default();
            if *count == WARNINGS_SHOWN_PER_KIND && total > WARNINGS_SHOWN_PER_KIND {
                hidden_after = Some(total - WARNINGS_SHOWN_PER_KIND);
            }
        }
        match &diagnostic.file {
            // A diagnostic in another file (an inventory) is rare: its snippets are built
            // for it alone.
            Some(other) => {
                let other_snippets = Snippets::new(&other.0);
                render_one(&mut out, &handler, &other.0, &other_snippets, diagnostic);
            }
            None => render_one(&mut out, &handler, source, &snippets, diagnostic),
        }
        if let Some(hidden) = hidden_after {
            out.push_str(&format!(
                "  and {} more like this (`--all-warnings` shows them)\n\n",
                thousands(hidden)
            ));
        }
    }
    out
}

fn render_one(
    out: &mut String,
    handler: &GraphicalReportHandler,
    source: &Source,
    snippets: &Snippets<'_>,
    diagnostic: &Diagnostic,
) {
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
        return;
    }
    let report = Report {
        diagnostic,
        source: snippets,
        labels,
    };
    if handler.render_report(out, &report).is_err() {
        out.push_str(&format!(
            "{}: {}\n",
            diagnostic.severity.as_str(),
            diagnostic.message
        ));
    }
    out.push('\n');
}

/// A count with thousands separators: `19,990`.
fn thousands(count: usize) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One diagnostic as JSON: `file`, `line`, `column` (1-based), `severity`, `code`,
/// `message`, `help`, `related`.
pub fn diagnostic_json(file: &str, diagnostic: &Diagnostic) -> Value {
    let position = diagnostic.position.unwrap_or_default();
    let file = diagnostic
        .file
        .as_ref()
        .map_or(file, |other| other.0.name());
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use miette::SourceCode;

    use super::*;

    fn source(text: &str) -> Source {
        Source::new(PathBuf::from("x.yaml"), "x.yaml".into(), text.into())
    }

    /// The windowed reading gives miette exactly what reading the whole text gives, for
    /// every span inside texts with each kind of line end.
    #[test]
    fn snippets_read_spans_as_the_whole_text_does() {
        let texts = [
            "",
            "a",
            "a: 1\nb: 2\nc: 3\n",
            "a: 1\r\nb: 2\r\n\r\nc: 3",
            "a\rb\r\rc\n\nd: é\n",
            "\n\n\nx: y\n\n\n",
        ];
        for text in texts {
            let source = source(text);
            let snippets = Snippets::new(&source);
            for offset in 0..=text.len() {
                for length in 0..=text.len() - offset {
                    for context in 0..3 {
                        let span = SourceSpan::new(offset.into(), length);
                        let whole = text.as_bytes().read_span(&span, context, context);
                        let windowed = snippets.read_span(&span, context, context);
                        match (whole, windowed) {
                            (Ok(whole), Ok(windowed)) => {
                                let what = format!("{text:?} {offset}+{length} ({context})");
                                assert_eq!(whole.data(), windowed.data(), "{what}");
                                assert_eq!(whole.span(), windowed.span(), "{what}");
                                assert_eq!(whole.line(), windowed.line(), "{what}");
                                assert_eq!(whole.column(), windowed.column(), "{what}");
                                assert_eq!(whole.line_count(), windowed.line_count(), "{what}");
                            }
                            (Err(_), Err(_)) => {}
                            (whole, windowed) => panic!(
                                "{text:?} {offset}+{length}: whole ok {}, windowed ok {}",
                                whole.is_ok(),
                                windowed.is_ok()
                            ),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(19_990), "19,990");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
