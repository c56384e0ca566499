//! YAML text to `RawRunbook`, with the parser's budgets set against hostile input and its
//! errors turned into messages that name a position.

use serde_saphyr::{Budget, DuplicateKeyPolicy, Options};

use super::{Position, RawRunbook};

/// Why the text is not a runbook document.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    pub position: Option<Position>,
    pub help: Option<String>,
}

/// Parses one runbook document. Aliases, nesting and sizes are bounded so that a small
/// hostile file (an alias bomb, 20,000 nested brackets) is refused quickly.
pub fn parse(text: &str) -> Result<RawRunbook, ParseError> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
    {
        return Err(ParseError {
            message: "the runbook is empty".into(),
            position: None,
            help: Some(
                "a runbook needs at least `version: 1`, a `name` and `steps` (try `runbook init`)"
                    .into(),
            ),
        });
    }
    if let Some(offset) = text.find('\0') {
        let line = text[..offset].matches('\n').count() + 1;
        let column = text[..offset]
            .rsplit('\n')
            .next()
            .map_or(1, |prefix| prefix.chars().count() + 1);
        return Err(ParseError {
            message: "the runbook contains a NUL byte".into(),
            position: Some(Position { line, column }),
            help: None,
        });
    }
    let mut budget = Budget::default();
    budget.max_depth = 64;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 2_000_000;
    budget.max_nodes = 2_000_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.strict_booleans = true;
    let mut raw = serde_saphyr::from_str_with_options::<RawRunbook>(text, options)
        .map_err(|error| convert_error(text, error))?;
    restore_number_texts(&mut raw, text);
    Ok(raw)
}

/// Variables are text, so a number written in a var (`1.10`, `0755`, `0x1F`) keeps its
/// spelling instead of the parser's rendering of its value (`1.1`, `755`, `31`).
fn restore_number_texts(raw: &mut RawRunbook, text: &str) {
    let Some(vars) = &mut raw.vars else { return };
    for (_, var) in &mut vars.value.entries {
        for scalar in var.value.scalars_mut() {
            if let Some(written) = scalar.1.clone().and_then(|range| text.get(range)) {
                scalar.0 = Some(written.to_owned());
            }
        }
    }
}

fn convert_error(text: &str, error: serde_saphyr::Error) -> ParseError {
    let position = error.location().and_then(|location| {
        let line = usize::try_from(location.line()).ok()?;
        let column = usize::try_from(location.column()).ok()?;
        (line > 0).then_some(Position { line, column })
    });
    let full = error.to_string();
    let message = strip_position_suffix(full.lines().next().unwrap_or_default()).to_string();
    let (message, mut help) = explain(&message);
    let value_is_template = position.is_some_and(|position| {
        let line = text.lines().nth(position.line - 1).unwrap_or_default();
        let rest: String = line.chars().skip(position.column - 1).collect();
        rest.starts_with("{{")
    });
    if value_is_template {
        help = Some("a value that starts with `{` is read as a YAML mapping: quote the template, e.g. `if: \"{{eq vars.env 'prod'}}\"`".into());
    }
    ParseError {
        message,
        position,
        help,
    }
}

/// The parser appends " at line L, column C"; we show positions in our own format.
fn strip_position_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(index) if message[index..].contains(", column ") => &message[..index],
        _ => message,
    }
}

/// Rewords the parser's messages where a runbook author needs a hint.
fn explain(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .split(", ")
            .map(|name| name.trim_matches('`'))
            .filter(|name| !name.is_empty())
            .collect();
        let help = crate::validate::suggest(field, known.iter().copied())
            .map(|best| format!("did you mean `{best}`?"))
            .or_else(|| {
                (!known.is_empty()).then(|| format!("known keys here: {}", known.join(", ")))
            });
        return (format!("unknown key `{field}`"), help);
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return (
            format!("duplicate key `{key}`"),
            Some("each key may appear once in a mapping".into()),
        );
    }
    if message.contains("multiple YAML documents") {
        return (
            "multiple YAML documents in one file (a `---` separator): a runbook is one document"
                .into(),
            Some("remove the `---` line, or split the runbooks into separate files".into()),
        );
    }
    if message.starts_with("missing field `") {
        let field = message
            .trim_start_matches("missing field `")
            .trim_end_matches('`');
        return (format!("missing required key `{field}`"), None);
    }
    if message.contains("recursion limit exceeded")
        || message.contains("depth") && message.contains("exceed")
    {
        return (
            "the document is nested too deeply".into(),
            Some("a runbook needs only a few levels of nesting".into()),
        );
    }
    if message.contains("alias") && (message.contains("limit") || message.contains("budget")) {
        return ("alias expansion limit exceeded".into(), None);
    }
    if message.contains("budget") {
        return (
            format!("the document is too large or complex: {message}"),
            None,
        );
    }
    if message.contains("tabs disallowed") {
        return (
            message.to_string(),
            Some("indent with spaces; YAML does not allow tabs for indentation".into()),
        );
    }
    (message.to_string(), None)
}
