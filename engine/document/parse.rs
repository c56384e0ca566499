//! YAML text to `RawRunbook`, with the parser's budgets set against hostile input and its
//! errors turned into messages that name a position.

use serde::de::IgnoredAny;
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options};

use super::extensions::WithExtensions;
use super::{Position, RawHosts, RawRunbook};

/// Why the text is not a runbook document.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    pub position: Option<Position>,
    /// Characters to underline from `position`; 0 for the whole token there.
    pub length: usize,
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
            length: 0,
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
            position: Some(Position::new(line, column)),
            length: 0,
            help: None,
        });
    }
    let mut raw = serde_saphyr::from_str_with_options::<WithExtensions>(text, options())
        .map_err(|error| convert_error(text, alias_limit_error(text).unwrap_or(error)))?
        .0;
    restore_number_texts(&mut raw, text);
    // The steps' `Vec` grew by doubling: up to half of it unused, for as long as the
    // document lives (a `RawStep` is over a kilobyte).
    raw.steps.value.shrink_to_fit();
    Ok(raw)
}

/// Parses an inventory file (SPEC §12): the same map as a runbook's `hosts`, name -> host,
/// under the same budgets as a runbook.
pub fn parse_inventory(text: &str) -> Result<RawHosts, ParseError> {
    if text.trim().is_empty() {
        return Ok(RawHosts::default());
    }
    serde_saphyr::from_str_with_options::<RawHosts>(text, options())
        .map_err(|error| convert_error(text, alias_limit_error(text).unwrap_or(error)))
}

/// Parses like `parse`, but does not stop at the first unknown key or wrongly typed value:
/// it blanks that entry (keeping every other line and column where it was) and parses
/// again, so that one pass reports every such problem, each at its place. Other errors
/// (syntax, a missing key) end the search.
pub fn parse_reporting_all(text: &str) -> Result<RawRunbook, Vec<ParseError>> {
    const MOST: usize = 50;
    let mut current = text.to_string();
    let mut errors: Vec<ParseError> = Vec::new();
    loop {
        let error = match parse(&current) {
            Ok(raw) if errors.is_empty() => return Ok(raw),
            Ok(_) => return Err(errors),
            Err(error) => error,
        };
        // Once an entry was blanked, a missing required key is most likely that entry (a
        // misspelt `steps:`): it adds nothing.
        if !errors.is_empty() && error.message.starts_with("missing required key") {
            return Err(errors);
        }
        let repeated = errors
            .iter()
            .any(|seen| seen.position == error.position && seen.message == error.message);
        if repeated {
            return Err(errors);
        }
        let recoverable = error.message.starts_with("unknown key `")
            || error.message.starts_with("invalid type")
            || error.message.starts_with("invalid value")
            || error.message.starts_with("invalid boolean")
            || error.message.starts_with("expected ");
        let blanked = match (recoverable, error.position) {
            (true, Some(position)) if errors.len() < MOST => blank_entry(&current, position),
            _ => None,
        };
        errors.push(error);
        match blanked {
            Some(next) => current = next,
            None => return Err(errors),
        }
    }
}

/// `text` with the block-style mapping entry on `position`'s line blanked out: its key, its
/// value and every more indented line after it become spaces, newlines kept. `None` when the
/// line is not a plain `key: value` entry (flow style, for instance).
fn blank_entry(text: &str, position: Position) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let line = *lines.get(position.line().checked_sub(1)?)?;
    let indent = line.len() - line.trim_start().len();
    let after_dash = line[indent..]
        .strip_prefix("- ")
        .map_or(indent, |rest| line.len() - rest.trim_start().len());
    let entry = &line[after_dash..];
    let key_end = entry.find(':')?;
    let key = &entry[..key_end];
    if key.is_empty() || key.contains(['{', '[', ',', '"', '\'']) || key.trim() != key {
        return None;
    }
    let blank = |text: &str| " ".repeat(text.chars().count());
    let mut out: Vec<String> = lines.iter().map(|line| (*line).to_string()).collect();
    let index = position.line() - 1;
    out[index] = format!("{}{}", &line[..after_dash], blank(entry));
    for (offset, next) in lines.iter().enumerate().skip(index + 1) {
        let next_indent = next.len() - next.trim_start().len();
        if !next.trim().is_empty() && next_indent <= after_dash {
            break;
        }
        out[offset] = blank(next);
    }
    Some(out.join("\n"))
}

/// The parser's limits: generous for any real runbook, small enough that a hostile file is
/// refused in milliseconds.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = 64;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 2_000_000;
    budget.max_nodes = 2_000_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.strict_booleans = true;
    options
}

/// Events that aliases may add in all: an alias bomb of a few hundred bytes expands to
/// hundreds of millions.
const MAX_REPLAYED_EVENTS: usize = 100_000;

/// The runbook types stop at the first value of the wrong type, which in an alias bomb comes
/// before the nested aliases are expanded (`needs: [&a [*b, *b, ...]]` fails as "expected
/// string scalar"). So a refused document with aliases is expanded once more in full, without
/// types and under the same limits, to tell whether those limits are what it breaks.
fn alias_limit_error(text: &str) -> Option<serde_saphyr::Error> {
    if !text.contains('*') {
        return None;
    }
    let error = serde_saphyr::from_str_with_options::<IgnoredAny>(text, options()).err()?;
    let mut inner = &error;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let is_alias_limit = matches!(
        inner,
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
            | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
            | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
            | serde_saphyr::Error::AliasReplayCounterOverflow { .. }
    );
    is_alias_limit.then_some(error)
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
        (line > 0).then_some(Position::new(line, column))
    });
    let full = error.to_string();
    let message = strip_position_suffix(full.lines().next().unwrap_or_default()).to_string();
    // A tab indenting the line after a plain value is reported where that value starts, one
    // line too early; the tab itself is what the author has to find.
    if message.starts_with("while scanning a plain scalar, found a tab")
        && let Some(tab) = position.and_then(|position| indenting_tab(text, position.line()))
    {
        return ParseError {
            message: "a tab is used for indentation".into(),
            position: Some(tab),
            length: 1,
            help: Some(TAB_HELP.into()),
        };
    }
    let (message, mut help) = explain(&message);
    let value_is_template = position.is_some_and(|position| {
        let line = text.lines().nth(position.line() - 1).unwrap_or_default();
        let rest: String = line.chars().skip(position.column() - 1).collect();
        rest.starts_with("{{")
    });
    if value_is_template {
        help = Some("a value that starts with `{` is read as a YAML mapping: quote the template, e.g. `if: \"{{eq vars.env 'prod'}}\"`".into());
    }
    ParseError {
        message,
        position,
        length: 0,
        help,
    }
}

const TAB_HELP: &str = "indent with spaces; YAML does not allow tabs for indentation";

/// The first tab in the indentation of line `from` or a later line.
fn indenting_tab(text: &str, from: usize) -> Option<Position> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(index, line)| {
            let indentation = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
            let column = indentation.find('\t')? + 1;
            Some(Position::new(index + 1, column))
        })
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
        let help = crate::suggest::suggest(field, known.iter().copied())
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
        return (
            "alias expansion limit exceeded".into(),
            Some("YAML aliases (`*name`) are bounded, so that a small file cannot expand into a huge one: write the values out".into()),
        );
    }
    if message.contains("budget") {
        return (
            format!("the document is too large or complex: {message}"),
            None,
        );
    }
    if message.starts_with("invalid boolean") {
        return (
            "invalid boolean: a boolean here is true/false".into(),
            Some("YAML 1.1 words such as `yes`, `no`, `on` are not booleans here".into()),
        );
    }
    if message.contains("tabs disallowed") {
        return (message.to_string(), Some(TAB_HELP.into()));
    }
    (message.to_string(), None)
}
