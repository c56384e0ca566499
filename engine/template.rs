//! The one Handlebars registry of the engine: strict mode, no HTML escaping, the `quote`,
//! `default`, `lower`, `upper` and `json` helpers, and its own conditions and comparisons
//! (`conditions`). It also analyses a template without rendering it, so validation can check
//! every referenced path and helper and point at its exact bytes.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, Output, RenderContext, RenderError, RenderErrorReason,
    Renderable, ScopedJson,
};
use serde_json::Value;

mod conditions;

pub use conditions::Decision;
use conditions::{Comparison, ConditionBlock, Logic};
pub(crate) use conditions::{PLAN_RUN_ID, as_number, is_truthy, undecided};

/// Context roots; a path under one of them is checkable even inside `each`/`with` blocks.
const ROOTS: [&str; 5] = ["vars", "env", "runbook", "run", "steps"];

const MAX_SUBEXPRESSION_DEPTH: usize = 64;

const HELPER_NAMES: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len", "quote", "default", "lower", "upper", "json",
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template does not parse; `offset` is a byte offset into the template.
    #[error("{message}")]
    Syntax {
        message: String,
        offset: Option<usize>,
    },
    /// Rendering failed; `missing_path` is the undefined path as written (`vars.nope`).
    #[error("{message}")]
    Render {
        message: String,
        missing_path: Option<String>,
        offset: Option<usize>,
    },
    #[error("a value with a NUL byte cannot be quoted for the shell")]
    NulByte { offset: Option<usize> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateAnalysis {
    pub references: Vec<Reference>,
    pub helpers: Vec<HelperUse>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub path: Vec<String>,
    /// Byte range of the path text inside the template.
    pub span: Range<usize>,
    pub usage: ReferenceUsage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceUsage {
    /// Printed as is: `{{vars.x}}`.
    Direct,
    /// An argument of `quote`, directly or inside one of its subexpressions.
    Quoted,
    /// An argument of any other helper or block: `if`, `eq`, `json`, `default`, ...
    HelperArgument,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperUse {
    pub name: String,
    pub span: Range<usize>,
}

/// A template context in the renderer's own form, built once and rendered against many times.
#[derive(Debug)]
pub struct PreparedContext(handlebars::Context);

impl PreparedContext {
    pub fn new(context: &Value) -> Result<PreparedContext, TemplateError> {
        handlebars::Context::wraps(context)
            .map(PreparedContext)
            .map_err(|error| TemplateError::Render {
                message: error.to_string(),
                missing_path: None,
                offset: None,
            })
    }
}

/// A context borrowed as JSON and converted to the renderer's own form only if a template
/// needs handlebars itself: most templates render straight from the JSON, and converting a
/// large context (a plan of thousands of steps) copies all of it.
#[derive(Debug)]
pub struct BorrowedContext<'a> {
    value: &'a Value,
    prepared: std::cell::OnceCell<PreparedContext>,
}

impl<'a> BorrowedContext<'a> {
    pub fn new(value: &'a Value) -> BorrowedContext<'a> {
        BorrowedContext {
            value,
            prepared: std::cell::OnceCell::new(),
        }
    }

    fn prepared(&self) -> Result<&PreparedContext, TemplateError> {
        match self.prepared.get() {
            Some(prepared) => Ok(prepared),
            None => {
                let prepared = PreparedContext::new(self.value)?;
                Ok(self.prepared.get_or_init(|| prepared))
            }
        }
    }
}

#[derive(Debug)]
pub struct TemplateEngine {
    registry: Handlebars<'static>,
    /// Compiled templates by text: compiling (a pest parse) costs far more than rendering, and
    /// the same text is often rendered many times (probes, hooks, a run's retries).
    compiled: Mutex<HashMap<String, Arc<handlebars::Template>>>,
}

impl Default for TemplateEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateEngine {
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        let helpers: [(&str, HelperFunction); 5] = [
            ("quote", quote_helper),
            ("default", default_helper),
            ("lower", |helper| {
                Ok(Value::String(text_argument(helper)?.to_lowercase()))
            }),
            ("upper", |helper| {
                Ok(Value::String(text_argument(helper)?.to_uppercase()))
            }),
            ("json", |helper| {
                let text = serde_json::to_string(argument(helper, 0)?)
                    .map_err(|error| RenderErrorReason::Other(error.to_string()))?;
                Ok(Value::String(text))
            }),
        ];
        for (name, function) in helpers {
            registry.register_helper(name, Box::new(ValueHelper(function)));
        }
        // Ours replace handlebars' built-ins: numbers compare as numbers, and every condition
        // uses one truthiness (SPEC §6).
        for (name, comparison) in [
            ("eq", Comparison::Equal),
            ("ne", Comparison::NotEqual),
            ("gt", Comparison::Greater),
            ("gte", Comparison::GreaterOrEqual),
            ("lt", Comparison::Less),
            ("lte", Comparison::LessOrEqual),
        ] {
            registry.register_helper(name, Box::new(comparison));
        }
        for (name, logic) in [("not", Logic::Not), ("and", Logic::And), ("or", Logic::Or)] {
            registry.register_helper(name, Box::new(logic));
        }
        registry.register_helper("if", Box::new(ConditionBlock { negated: false }));
        registry.register_helper("unless", Box::new(ConditionBlock { negated: true }));
        Self {
            registry,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// Every helper a template may call: Handlebars' built-ins and ours.
    pub fn helper_names() -> &'static [&'static str] {
        HELPER_NAMES
    }

    /// Renders in one pass: a value that looks like `{{...}}` is output literally, never rendered.
    pub fn render(&self, template: &str, context: &Value) -> Result<String, TemplateError> {
        if let Some(text) = render_simple(template, context) {
            return Ok(text);
        }
        self.registry
            .render_template(template, context)
            .map_err(|error| self.render_error(template, context, &error))
    }

    /// Renders against a context converted once: rendering many templates against the same
    /// large context (a plan of thousands of steps) must not copy it for each template.
    pub fn render_prepared(
        &self,
        template: &str,
        context: &PreparedContext,
    ) -> Result<String, TemplateError> {
        if let Some(text) = render_simple(template, context.0.data()) {
            return Ok(text);
        }
        let Some(compiled) = self.compiled(template) else {
            // Does not compile: let handlebars report it the way it always does.
            return self
                .registry
                .render_template_with_context(template, &context.0)
                .map_err(|error| self.render_error(template, context.0.data(), &error));
        };
        let mut output = TextOutput(String::new());
        let mut render_context = RenderContext::new(None);
        compiled
            .render(&self.registry, &context.0, &mut render_context, &mut output)
            .map(|()| output.0)
            .map_err(|error| self.render_error(template, context.0.data(), &error))
    }

    /// Renders against a borrowed context, converting it only for a template that needs it.
    pub fn render_borrowed(
        &self,
        template: &str,
        context: &BorrowedContext<'_>,
    ) -> Result<String, TemplateError> {
        match render_simple(template, context.value) {
            Some(text) => Ok(text),
            None => self.render_prepared(template, context.prepared()?),
        }
    }

    /// Renders for a plan: a `{{#if}}` on what only a run knows shows both branches, each
    /// such block also returned as a `Decision`, outermost first.
    pub fn render_for_plan(
        &self,
        template: &str,
        context: &BorrowedContext<'_>,
    ) -> Result<(String, Vec<Decision>), TemplateError> {
        conditions::start_collecting();
        let rendered = self.render_borrowed(template, context);
        let decisions = conditions::take_collected();
        rendered.map(|text| (text, decisions))
    }

    /// The compiled form of `template`, compiled on first use; `None` when it does not compile.
    fn compiled(&self, template: &str) -> Option<Arc<handlebars::Template>> {
        // A panic elsewhere cannot leave the map half-updated: entries are inserted whole.
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = compiled.get(template) {
            return Some(Arc::clone(found));
        }
        let fresh = Arc::new(handlebars::Template::compile(template).ok()?);
        compiled.insert(template.to_owned(), Arc::clone(&fresh));
        Some(fresh)
    }

    /// Parses `template` and lists the paths and helpers it uses, without rendering it.
    pub fn analyze(&self, template: &str) -> Result<TemplateAnalysis, TemplateError> {
        let scanned = Scanner::scan(template);
        // Text with plain `{{path}}` and `{{quote path}}` tags always compiles, so the slow
        // grammar check is needed only for anything richer.
        if !is_simple(template)
            && let Err(error) = handlebars::template::Template::compile(template)
        {
            // Our scanner names unclosed and mismatched blocks better than the grammar does.
            let offset = error
                .pos()
                .and_then(|(line, column)| byte_offset(template, line, column));
            let message = error.reason().to_string();
            return Err(scanned
                .err()
                .unwrap_or(TemplateError::Syntax { message, offset }));
        }
        let scanner = scanned?;
        Ok(TemplateAnalysis {
            references: scanner.references,
            helpers: scanner.helpers,
        })
    }

    fn render_error(&self, template: &str, context: &Value, error: &RenderError) -> TemplateError {
        let offset = error.line_no.zip(error.column_no);
        let offset = offset.and_then(|(line, column)| byte_offset(template, line, column));
        let not_defined = |path: String| TemplateError::Render {
            message: format!("`{path}` is not defined"),
            missing_path: Some(path),
            offset,
        };
        let message = match error.reason() {
            RenderErrorReason::TemplateError(_) => {
                let message = format!("invalid handlebars syntax: {}", error.reason());
                return self
                    .analyze(template)
                    .err()
                    .unwrap_or(TemplateError::Syntax {
                        message,
                        offset: None,
                    });
            }
            RenderErrorReason::MissingVariable(Some(path)) => return not_defined(path.clone()),
            // Built-ins like `eq` and `not` reject a missing argument without naming its path,
            // so find the undefined reference inside the failing tag ourselves.
            RenderErrorReason::MissingVariable(None)
            | RenderErrorReason::ParamNotFoundForIndex(..)
            | RenderErrorReason::ParamNotFoundForName(..) => {
                if let Some(path) = undefined_reference(template, context, offset) {
                    return not_defined(path);
                }
                match error.reason() {
                    RenderErrorReason::MissingVariable(None) => {
                        "a value this tag uses is not defined".to_owned()
                    }
                    reason => lowercase(&reason.to_string()),
                }
            }
            RenderErrorReason::NestedError(inner) => {
                if let Some(TemplateError::NulByte { .. }) = inner.downcast_ref() {
                    return TemplateError::NulByte { offset };
                }
                lowercase(&inner.to_string())
            }
            RenderErrorReason::HelperNotFound(name) => format!("unknown helper `{name}`"),
            RenderErrorReason::InvalidJsonIndex(segment) => {
                format!("cannot look up `{segment}` in a list, only numeric indexes work")
            }
            RenderErrorReason::Other(message) => message.clone(),
            reason => lowercase(&reason.to_string()),
        };
        TemplateError::Render {
            message,
            missing_path: None,
            offset,
        }
    }
}

/// Handlebars output into a `String` that starts empty (its own `StringOutput` reserves 8 KiB
/// for every render, which thousands of short scripts pay for in allocation).
struct TextOutput(String);

impl Output for TextOutput {
    fn write(&mut self, segment: &str) -> Result<(), std::io::Error> {
        self.0.push_str(segment);
        Ok(())
    }
}

/// A piece of a simple template: text, or a tag naming a path under one of the context roots,
/// maybe quoted.
enum SimplePart<'a> {
    Text(&'a str),
    Tag { path: &'a str, quoted: bool },
}

/// Splits a simple template into its text and tags, calling `visit` for each in order, or
/// returns `None` when the template is not simple. Simple means: no `\{{` escapes, and every
/// tag is `{{ root.path }}` or `{{ quote root.path }}` with plain segments (letters, digits,
/// `_`, `-`). Handlebars renders such a template as its text with each tag replaced by the
/// value, which `render_simple` does without compiling it; anything richer goes to handlebars.
fn simple_parts<'a>(
    template: &'a str,
    mut visit: impl FnMut(SimplePart<'a>) -> Option<()>,
) -> Option<()> {
    const WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];
    let is_path_character =
        |character: char| character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.');
    let mut rest = template;
    while let Some(open) = find_tag(rest) {
        let text = &rest[..open];
        if text.ends_with('\\') {
            return None;
        }
        visit(SimplePart::Text(text))?;
        let inside = rest[open + 2..].trim_start_matches(WHITESPACE);
        let first_end = inside.find(|character| !is_path_character(character))?;
        let (first, after_first) = inside.split_at(first_end);
        let after_first_trimmed = after_first.trim_start_matches(WHITESPACE);
        let (path, quoted, after_tag) = if after_first_trimmed.starts_with("}}") {
            (first, false, after_first_trimmed)
        } else {
            let separated = after_first_trimmed.len() < after_first.len();
            if first != "quote" || !separated {
                return None;
            }
            let second_end = after_first_trimmed.find(|character| !is_path_character(character))?;
            let (second, after_second) = after_first_trimmed.split_at(second_end);
            (second, true, after_second.trim_start_matches(WHITESPACE))
        };
        let mut segments = path.split('.');
        let rooted = segments.next().is_some_and(|root| ROOTS.contains(&root));
        let mut count = 1;
        for segment in segments {
            if segment.is_empty() {
                return None;
            }
            count += 1;
        }
        if !rooted || count < 2 {
            return None;
        }
        rest = after_tag.strip_prefix("}}")?;
        visit(SimplePart::Tag { path, quoted })?;
    }
    visit(SimplePart::Text(rest))
}

/// The byte offset of the first `{{`. Searching for one byte first is much cheaper than a
/// substring search on the short texts templates are, and most have no tag at all.
pub fn find_tag(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find('{') {
        let at = from + found;
        if text.as_bytes().get(at + 1) == Some(&b'{') {
            return Some(at);
        }
        // `{` is one byte, so the next byte starts a character.
        from = at + 1;
    }
    None
}

/// Whether `text` has a `{{` and so may render to something other than itself.
pub fn has_tag(text: &str) -> bool {
    find_tag(text).is_some()
}

fn is_simple(template: &str) -> bool {
    simple_parts(template, |_| Some(())).is_some()
}

/// Renders a simple template (see `simple_parts`) whose every path is a string in `context`;
/// `None` for anything else, including errors, which handlebars then reports in its words.
fn render_simple(template: &str, context: &Value) -> Option<String> {
    let mut rendered = String::with_capacity(template.len() + 32);
    simple_parts(template, |part| {
        match part {
            SimplePart::Text(text) => rendered.push_str(text),
            SimplePart::Tag { path, quoted } => {
                let value = path
                    .split('.')
                    .try_fold(context, |value, segment| value.as_object()?.get(segment))?;
                let text = value.as_str()?;
                if quoted {
                    rendered.push_str(&shell_quote(text).ok()?);
                } else {
                    rendered.push_str(text);
                }
            }
        }
        Some(())
    })?;
    Some(rendered)
}

/// POSIX single-quoting: safe for any string without NUL, including `{`, `\u{a0}` and newlines
/// (the characters RUSTSEC-2024-0006 left unquoted).
pub fn shell_quote(value: &str) -> Result<String, TemplateError> {
    if value.contains('\0') {
        return Err(TemplateError::NulByte { offset: None });
    }
    Ok(format!("'{}'", value.replace('\'', r"'\''")))
}

type HelperFunction = fn(&Helper<'_>) -> Result<Value, RenderError>;

/// A helper that computes a value, so it also works inside subexpressions.
struct ValueHelper(HelperFunction);

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        (self.0)(helper).map(ScopedJson::Derived)
    }
}

fn quote_helper(helper: &Helper<'_>) -> Result<Value, RenderError> {
    let quoted = shell_quote(&text_argument(helper)?)
        .map_err(|error| RenderErrorReason::NestedError(Box::new(error)))?;
    Ok(Value::String(quoted))
}

/// Handlebars calls helpers with missing arguments even in strict mode (only the built-ins
/// check `is_value_missing`), so `default` sees an undefined VALUE and can fall back.
fn default_helper(helper: &Helper<'_>) -> Result<Value, RenderError> {
    let value = helper
        .param(0)
        .filter(|parameter| !parameter.is_value_missing());
    match value.map(|parameter| parameter.value()) {
        Some(value) if !value.is_null() && value.as_str() != Some("") => Ok(value.clone()),
        _ => argument(helper, 1).cloned(),
    }
}

/// Argument `index`, where an undefined path is an error naming that path.
fn argument<'a>(helper: &'a Helper<'_>, index: usize) -> Result<&'a Value, RenderError> {
    let Some(parameter) = helper.param(index) else {
        let name = helper.name();
        let message = format!("helper `{name}` needs {} argument(s)", index + 1);
        return Err(RenderErrorReason::Other(message).into());
    };
    if parameter.is_value_missing() {
        let path = parameter.relative_path().cloned();
        return Err(RenderErrorReason::MissingVariable(path).into());
    }
    Ok(parameter.value())
}

/// The first argument as text; numbers and booleans use their JSON spelling.
fn text_argument(helper: &Helper<'_>) -> Result<String, RenderError> {
    match argument(helper, 0)? {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        value @ (Value::Number(_) | Value::Bool(_)) => Ok(value.to_string()),
        Value::Array(_) | Value::Object(_) => {
            let name = helper.name();
            let message =
                format!("helper `{name}` needs a string, number or boolean, not a list or map");
            Err(RenderErrorReason::Other(message).into())
        }
    }
}

fn lowercase(message: &str) -> String {
    let mut characters = message.trim_end_matches('.').chars();
    characters.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(characters).collect()
    })
}

/// Handlebars positions are 1-based lines and 1-based columns counted in characters.
fn byte_offset(template: &str, line: usize, column: usize) -> Option<usize> {
    let line_start = match line {
        0 | 1 => 0,
        _ => template.match_indices('\n').nth(line - 2)?.0 + 1,
    };
    let offsets = template[line_start..]
        .char_indices()
        .map(|(index, _)| line_start + index);
    offsets
        .chain(std::iter::once(template.len()))
        .nth(column.saturating_sub(1))
}

/// The first reference inside the tag starting at `offset` that `context` does not define.
fn undefined_reference(template: &str, context: &Value, offset: Option<usize>) -> Option<String> {
    let scanner = Scanner::scan(template).ok()?;
    let tag = scanner.tags.iter().find(|tag| Some(tag.start) == offset)?;
    let resolves = |path: &[String]| {
        path.iter().try_fold(context, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(list) => segment
                .parse()
                .ok()
                .and_then(|index: usize| list.get(index)),
            _ => None,
        })
    };
    let mut references = scanner
        .references
        .iter()
        .filter(|reference| tag.contains(&reference.span.start));
    let missing = references.find(|reference| resolves(&reference.path).is_none())?;
    Some(template[missing.span.clone()].to_owned())
}

/// An open block; `relative` is true where bare paths resolve against an `each`/`with` item.
struct Frame {
    name: String,
    open: usize,
    outer_relative: bool,
    relative: bool,
}

/// A hand scanner over the template text: handlebars' AST keeps no byte spans for paths.
/// It mirrors the grammar of handlebars 6 (`src/grammar.pest`) closely enough for templates
/// the grammar accepts; `analyze` compiles with handlebars as well, so both must agree.
struct Scanner<'a> {
    text: &'a str,
    position: usize,
    tag_start: usize,
    depth: usize,
    frames: Vec<Frame>,
    references: Vec<Reference>,
    helpers: Vec<HelperUse>,
    tags: Vec<Range<usize>>,
}

impl<'a> Scanner<'a> {
    fn scan(text: &'a str) -> Result<Self, TemplateError> {
        let mut scanner = Scanner {
            text,
            position: 0,
            tag_start: 0,
            depth: 0,
            frames: Vec::new(),
            references: Vec::new(),
            helpers: Vec::new(),
            tags: Vec::new(),
        };
        while let Some(found) = find_tag(&text[scanner.position..]) {
            let start = scanner.position + found;
            let backslashes = text[scanner.position..start]
                .bytes()
                .rev()
                .take_while(|&byte| byte == b'\\');
            if backslashes.count() == 1 {
                // `\{{` is literal text (two or more backslashes do not escape).
                let braces = if text[start..].starts_with("{{{{") {
                    4
                } else {
                    2
                };
                scanner.position = start + braces;
                continue;
            }
            scanner.tag_start = start;
            scanner.position = start;
            scanner.tag()?;
            scanner.tags.push(start..scanner.position);
        }
        match scanner.frames.last() {
            Some(frame) => Err(scanner.error(
                format!("unclosed `{{{{#{}}}}}` block", frame.name),
                frame.open,
            )),
            None => Ok(scanner),
        }
    }

    fn error(&self, message: impl Into<String>, offset: usize) -> TemplateError {
        let message = message.into();
        TemplateError::Syntax {
            message,
            offset: Some(offset),
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.position += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn eat(&mut self, expected: &str) -> bool {
        let found = self.rest().starts_with(expected);
        if found {
            self.position += expected.len();
        }
        found
    }

    fn record_helper(&mut self, name: &str, span: Range<usize>) {
        self.helpers.push(HelperUse {
            name: name.to_owned(),
            span,
        });
    }

    fn relative(&self) -> bool {
        self.frames.last().is_some_and(|frame| frame.relative)
    }

    fn tag(&mut self) -> Result<(), TemplateError> {
        let start = self.tag_start;
        // A `{{!--` without `--}}` is still a short comment up to the next `}}`.
        for (open, close) in [("{{!--", "--}}"), ("{{!", "}}")] {
            if !self.rest().starts_with(open) {
                continue;
            }
            if let Some(end) = self.rest().find(close) {
                self.position += end + close.len();
                return Ok(());
            }
        }
        if self.rest().starts_with("{{!") {
            return Err(self.error("unclosed `{{!` comment", start));
        }
        if self.rest().starts_with("{{{{") {
            return Err(self.error("raw blocks are not supported", start));
        }
        self.position += 2;
        let (mut triple, mut ampersand) = (false, false);
        for token in ["~", "{", "~", "&"] {
            self.skip_whitespace();
            let eaten = self.eat(token);
            triple |= eaten && token == "{";
            ampersand |= eaten && token == "&";
        }
        self.skip_whitespace();
        // Only a plain `{{else}}` inside a block is an inverse; `{{{else}}}` prints a value.
        let inverse = !triple && !ampersand && !self.frames.is_empty();
        match self.peek() {
            Some('#') => {
                self.position += 1;
                self.skip_whitespace();
                if matches!(self.peek(), Some('*' | '>')) {
                    return Err(self.error("partials and decorators are not supported", start));
                }
                let (name, span) = self.word();
                self.record_helper(name, span);
                self.parameters(name == "quote")?;
                let outer_relative = self.relative();
                let relative = outer_relative || matches!(name, "each" | "with");
                self.frames.push(Frame {
                    name: name.to_owned(),
                    open: start,
                    outer_relative,
                    relative,
                });
            }
            Some('/') => {
                self.position += 1;
                self.skip_whitespace();
                let (name, _) = self.word();
                match self.frames.pop() {
                    Some(frame) if frame.name == name => {}
                    Some(frame) => {
                        let message = format!(
                            "`{{{{/{name}}}}}` does not close the open `{{{{#{}}}}}` block",
                            frame.name
                        );
                        return Err(self.error(message, start));
                    }
                    None => {
                        return Err(
                            self.error(format!("`{{{{/{name}}}}}` closes no open block"), start)
                        );
                    }
                }
            }
            Some('>') => {
                return Err(self.error(
                    "`{{> name}}` inserts a snippet only into a script (a `run`), not here",
                    start,
                ));
            }
            Some('*') => {
                return Err(self.error("decorators are not supported", start));
            }
            Some('^') if inverse => {
                self.position += 1;
                self.else_tag()?;
            }
            _ if inverse && self.word_ahead() == "else" => {
                self.position += 4;
                self.else_tag()?;
            }
            _ => self.expression()?,
        }
        self.close(triple)
    }

    fn close(&mut self, triple: bool) -> Result<(), TemplateError> {
        // The grammar allows whitespace around each of `~` and the extra `}` of `{{{x}}}`.
        for (token, wanted) in [("~", true), ("}", triple), ("~", triple)] {
            self.skip_whitespace();
            if wanted {
                self.eat(token);
            }
        }
        self.skip_whitespace();
        match self.eat("}}") {
            true => Ok(()),
            false if self.rest().is_empty() => Err(self.error("unclosed `{{` tag", self.tag_start)),
            false => Err(self.error("expected `}}` to end the tag", self.position)),
        }
    }

    /// `{{else}}` switches an `each`/`with` block back to the outer context; `{{else if x}}`
    /// evaluates its condition there too.
    fn else_tag(&mut self) -> Result<(), TemplateError> {
        let outer_relative = self.frames.last().is_some_and(|frame| frame.outer_relative);
        self.set_relative(outer_relative);
        self.skip_whitespace();
        if !matches!(self.peek(), Some('~' | '}')) {
            let (name, span) = self.word();
            self.record_helper(name, span);
            self.parameters(name == "quote")?;
            self.set_relative(outer_relative || matches!(name, "each" | "with"));
        }
        Ok(())
    }

    fn set_relative(&mut self, relative: bool) {
        if let Some(frame) = self.frames.last_mut() {
            frame.relative = relative;
        }
    }

    /// A `{{name params}}` or `{{path}}` tag; a bare known helper name is a call, not a path.
    fn expression(&mut self) -> Result<(), TemplateError> {
        if self.peek() == Some('(') {
            return self.parameters(false);
        }
        let (name, span) = self.word();
        self.skip_whitespace();
        let has_parameters = !matches!(self.peek(), Some('~' | '}') | None);
        if has_parameters || HELPER_NAMES.contains(&name) {
            self.record_helper(name, span);
            self.parameters(name == "quote")
        } else {
            // In name position even `true` or `12` is a path, as in the grammar.
            self.reference(name, span, ReferenceUsage::Direct);
            Ok(())
        }
    }

    /// Parameters up to the end of the tag or subexpression; `quoted` means inside `quote`.
    fn parameters(&mut self, quoted: bool) -> Result<(), TemplateError> {
        let usage = if quoted {
            ReferenceUsage::Quoted
        } else {
            ReferenceUsage::HelperArgument
        };
        loop {
            self.skip_whitespace();
            match self.peek() {
                None => return Err(self.error("unclosed `{{` tag", self.tag_start)),
                Some('~' | '}' | ')') => return Ok(()),
                Some('(') => self.subexpression(quoted, usage)?,
                Some(quote @ ('"' | '\'')) => self.string_literal(quote)?,
                Some('{') => {
                    let message = "object literals are not supported";
                    return Err(self.error(message, self.position));
                }
                Some('=' | '|') => self.position += 1,
                Some(_) => {
                    let (word, span) = self.word();
                    if word.is_empty() {
                        return Err(self.error("unexpected character in tag", self.position));
                    }
                    self.skip_whitespace();
                    let hash_key = self.peek() == Some('=');
                    if word == "as" && self.peek() == Some('|') {
                        // Block parameters (`as |item index|`) name values, they read none.
                        self.position += 1;
                        let end = self
                            .rest()
                            .find('|')
                            .map_or(self.text.len(), |end| self.position + end + 1);
                        self.position = end;
                    } else if !hash_key && !is_literal(word) {
                        self.reference(word, span, usage);
                    }
                }
            }
        }
    }

    fn subexpression(&mut self, quoted: bool, usage: ReferenceUsage) -> Result<(), TemplateError> {
        // A bound on recursion, so a hostile template cannot overflow the stack.
        self.depth += 1;
        if self.depth > MAX_SUBEXPRESSION_DEPTH {
            let message =
                format!("subexpressions nest deeper than {MAX_SUBEXPRESSION_DEPTH} levels");
            return Err(self.error(message, self.position));
        }
        self.position += 1;
        self.skip_whitespace();
        let (name, span) = self.word();
        self.skip_whitespace();
        if self.peek() == Some(')') && !HELPER_NAMES.contains(&name) {
            self.reference(name, span, usage);
        } else {
            self.record_helper(name, span);
            self.parameters(quoted || name == "quote")?;
        }
        self.depth -= 1;
        if self.eat(")") {
            return Ok(());
        }
        Err(self.error("unclosed `(` subexpression", self.position))
    }

    fn string_literal(&mut self, quote: char) -> Result<(), TemplateError> {
        let mut characters = self.rest().char_indices().skip(1);
        while let Some((index, character)) = characters.next() {
            if character == '\\' {
                characters.next();
            } else if character == quote {
                self.position += index + 1;
                return Ok(());
            }
        }
        Err(self.error("unclosed string literal", self.position))
    }

    /// A path or name: symbol characters, `.`, `/`, `@`, and `[...]` segments.
    fn word(&mut self) -> (&'a str, Range<usize>) {
        let start = self.position;
        let rest = self.rest();
        let mut end = 0;
        while let Some(character) = rest[end..].chars().next() {
            // `[segment]` and `@` start a path or follow a separator, as in the grammar.
            let segment_start = end == 0 || rest[..end].ends_with(['.', '/']);
            if character == '[' && segment_start {
                end += rest[end..]
                    .find(']')
                    .map_or(rest.len() - end, |close| close + 1);
                // After `[segment]` only a separator continues the path.
                if !rest[end..].starts_with(['.', '/']) {
                    break;
                }
            } else if character.is_ascii_alphanumeric()
                || !character.is_ascii()
                || matches!(character, '-' | '_' | '$' | ':' | '.' | '/')
                || (character == '@' && segment_start)
            {
                end += character.len_utf8();
            } else {
                break;
            }
        }
        self.position += end;
        (&rest[..end], start..start + end)
    }

    fn word_ahead(&mut self) -> &'a str {
        let position = self.position;
        let (word, _) = self.word();
        self.position = position;
        word
    }

    /// Records `text` unless it is relative to an `each`/`with` item or a local like `@index`.
    fn reference(&mut self, text: &str, span: Range<usize>, usage: ReferenceUsage) {
        let mut rest = text;
        let mut absolute = false;
        let after_root = text.strip_prefix("@root");
        if let Some(after_root) =
            after_root.filter(|after| after.is_empty() || after.starts_with(['.', '/']))
        {
            rest = after_root.trim_start_matches(['.', '/']);
            absolute = true;
        } else if text.starts_with('@') {
            return;
        } else if text.starts_with("..") {
            // A parent path climbs out of `each`/`with` items, towards the whole context: a
            // rooted rest (`../vars.x`) is checked as that path, the context itself
            // (`..`, `../this`) is recorded as the whole context (an empty path).
            let mut parent = text;
            while let Some(after) = parent.strip_prefix("..") {
                parent = after.trim_start_matches('/');
                parent = parent.strip_prefix("./").unwrap_or(parent);
            }
            let parent = parent.trim_start_matches(['.', '/']);
            if parent.is_empty() || parent == "this" {
                self.references.push(Reference {
                    path: Vec::new(),
                    span,
                    usage,
                });
                return;
            }
            rest = parent;
            absolute = path_segments(rest)
                .first()
                .is_some_and(|first| ROOTS.contains(&first.as_str()));
            if !absolute {
                return;
            }
        } else if let Some(after_this) = ["this.", "this/", "./"]
            .iter()
            .find_map(|prefix| text.strip_prefix(prefix))
        {
            if self.relative() {
                return;
            }
            rest = after_this;
        }
        if rest.is_empty() || rest == "this" || rest == "." {
            // Outside an `each`/`with` item, `this` is the whole context (every var, the
            // engine's environment, step outputs): recorded as an empty path.
            if absolute || !self.relative() {
                self.references.push(Reference {
                    path: Vec::new(),
                    span,
                    usage,
                });
            }
            return;
        }
        let path = path_segments(rest);
        let rooted = path
            .first()
            .is_some_and(|first| ROOTS.contains(&first.as_str()));
        if absolute || rooted || !self.relative() {
            self.references.push(Reference { path, span, usage });
        }
    }
}

fn path_segments(text: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start_matches(['.', '/']);
        if let Some(bracketed) = rest.strip_prefix('[') {
            let close = bracketed.find(']').unwrap_or(bracketed.len());
            segments.push(bracketed[..close].to_owned());
            rest = bracketed.get(close + 1..).unwrap_or("");
        } else if !rest.is_empty() {
            let end = rest.find(['.', '/', '[']).unwrap_or(rest.len());
            segments.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    segments
}

/// Literals as the grammar reads them: `-?digits(.digits)?(E-?digits)?`, `[..]`, `true`, ...
fn is_literal(word: &str) -> bool {
    let digits =
        |text: &str| text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let unsigned = word.strip_prefix('-').unwrap_or(word);
    let integer = digits(unsigned);
    let mut rest = unsigned[integer..]
        .strip_prefix('.')
        .unwrap_or(&unsigned[integer..]);
    rest = &rest[digits(rest)..];
    if let Some(exponent) = rest.strip_prefix('E') {
        let exponent = exponent.strip_prefix('-').unwrap_or(exponent);
        rest = if digits(exponent) > 0 {
            &exponent[digits(exponent)..]
        } else {
            "E"
        };
    }
    let number = integer > 0 && rest.is_empty();
    let array = word.starts_with('[') && serde_json::from_str::<Vec<Value>>(word).is_ok();
    number || array || matches!(word, "true" | "false" | "null")
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str) -> Result<String, TemplateError> {
        let context = json!({
            "vars": {"env": "production", "name": "MiXed", "empty": "", "none": null, "count": 3,
                     "flag": true, "list": [1, "two"], "braces": "{{vars.env}}"},
            "steps": {"backup": {"outputs": {"file": "/b/db.sql.gz"}}},
        });
        TemplateEngine::new().render(template, &context)
    }

    fn with_x(template: &str, x: &str) -> Result<String, TemplateError> {
        TemplateEngine::new().render(template, &json!({"vars": {"x": x}}))
    }

    /// Checks `template => expected` lines, where `describe` says what the right side shows.
    fn check_table(table: &str, describe: fn(&str) -> String) {
        for line in table.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let (template, expected) = line.split_once(" => ").unwrap();
            assert_eq!(describe(template), expected, "{template}");
        }
    }

    /// Each reference as `text at its span=dotted path:usage`, then each helper as `#name`.
    fn analysis(template: &str) -> String {
        let analysis = TemplateEngine::new().analyze(template).unwrap();
        let references = analysis.references.into_iter().map(|reference| {
            let text = &template[reference.span];
            format!("{text}={}:{:?}", reference.path.join("."), reference.usage)
        });
        let helpers = analysis
            .helpers
            .into_iter()
            .map(|helper| format!("#{}", &template[helper.span]));
        references.chain(helpers).collect::<Vec<_>>().join(" ")
    }

    fn syntax_error(template: &str) -> String {
        match TemplateEngine::new().analyze(template) {
            Err(TemplateError::Syntax {
                message,
                offset: Some(offset),
            }) => format!("{offset}: {message}"),
            other => panic!("expected a syntax error with an offset, got {other:?}"),
        }
    }

    #[test]
    fn renders_values_byte_for_byte_without_html_escaping() {
        let value = "a&b<c>\"d'e\\f$g";
        let rendered = with_x("{{vars.x}}|{{{vars.x}}}|{{&vars.x}}", value).unwrap();
        assert_eq!(rendered, [value; 3].join("|"));
    }

    #[test]
    fn helpers_render() {
        // `if` and `unless` never check strict mode: a missing path is just false.
        check_table(
            "{{#if vars.maybe}}yes{{else}}no{{/if}} => no
            {{#unless steps.x.outputs.y}}no{{/unless}} => no
            {{default steps.backup.outputs.nope 'none'}} {{default steps.x.outputs.y 'n'}} => none n
            {{default vars.none 'n'}}{{default vars.empty 'e'}} => ne
            {{default vars.env 'x'}} {{default vars.count 1}} => production 3
            {{quote (default vars.nope vars.env)}} => 'production'
            {{quote vars.count}} {{quote vars.flag}} => '3' 'true'
            {{lower vars.name}} {{upper vars.name}} {{quote (upper (lower vars.name))}} => mixed MIXED 'MIXED'
            {{json vars.list}} {{json vars.env}} => [1,\"two\"] \"production\"
            {{eq vars.env 'production'}} {{eq vars.env 'staging'}} => true false
            {{#if (eq vars.env 'production')}}p{{else}}s{{/if}} => p
            {{and (gt vars.count 2) (not (ne vars.env 'production'))}} => true
            {{vars.braces}} {{quote vars.braces}} => {{vars.env}} '{{vars.env}}'",
            |template| render(template).unwrap(),
        );
    }

    #[test]
    fn render_errors_name_the_missing_path_and_its_offset() {
        check_table(
            "rm -rf {{dir}}/data => 7 dir
            x {{#if true}}{{vars.nope}}{{/if}} => 14 vars.nope
            {{steps.other.outputs.file}} => 0 steps.other.outputs.file
            {{quote vars.nope}} => 0 vars.nope
            ok {{eq vars.nope 'x'}} => 3 vars.nope
            {{#each vars.nope}}{{/each}} => 0 vars.nope
            {{default vars.nope vars.also_nope}} => 0 vars.also_nope",
            |template| {
                let error = render(template).unwrap_err();
                let TemplateError::Render {
                    missing_path: Some(path),
                    offset: Some(offset),
                    ..
                } = &error
                else {
                    panic!("expected a missing path with an offset, got {error:?}");
                };
                assert_eq!(error.to_string(), format!("`{path}` is not defined"));
                format!("{offset} {path}")
            },
        );
        check_table(
            "{{qoute vars.env}} => unknown helper `qoute`
            {{lower vars.list}} => helper `lower` needs a string, number or boolean, not a list or map
            {{lookup vars 'nope'}} => a value this tag uses is not defined",
            |template| render(template).unwrap_err().to_string(),
        );
    }

    #[test]
    fn quote_escapes_tricky_strings_and_rejects_nul() {
        let cases = [
            ("", "''"),
            ("'", r"''\'''"),
            ("a\nb", "'a\nb'"),
            ("$(x) `id`", "'$(x) `id`'"),
        ];
        let unicode = [
            ("é 日 🦀", "'é 日 🦀'"),
            ("a\u{a0}b", "'a\u{a0}b'"),
            ("{a,b}", "'{a,b}'"),
        ];
        for (value, quoted) in cases.into_iter().chain(unicode) {
            assert_eq!(shell_quote(value).unwrap(), quoted);
            assert_eq!(with_x("{{quote vars.x}}", value).unwrap(), quoted);
        }
        assert!(matches!(
            shell_quote("a\0b"),
            Err(TemplateError::NulByte { offset: None })
        ));
        let error = with_x("x {{quote vars.x}}", "a\0b");
        assert!(matches!(
            error,
            Err(TemplateError::NulByte { offset: Some(2) })
        ));
    }

    #[test]
    fn quoted_values_survive_bash_byte_for_byte() {
        let pool: Vec<char> =
            "aZ0 '\"\\$`{}[]()*?!#~;&|<>-=%\n\t\r\u{1}\u{1b}\u{7f}\u{a0}é日🦀\u{2028}"
                .chars()
                .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % 0x3_0000).unwrap()
        };
        for case in 0..300 {
            let value: String = (0..next() % 16)
                .map(|_| match next() % 4 {
                    0 => char::from_u32(u32::try_from(next()).unwrap()).unwrap_or('x'),
                    _ => pool[next() % pool.len()],
                })
                .filter(|&character| character != '\0')
                .collect();
            let script = with_x("printf %s {{quote vars.x}}", &value).unwrap();
            let output = std::process::Command::new("bash")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert!(output.status.success(), "case {case}: {script:?}");
            assert_eq!(output.stdout, value.as_bytes(), "case {case}: {script:?}");
        }
    }

    #[test]
    fn the_fast_path_renders_exactly_what_handlebars_renders() {
        let pieces = [
            "a",
            " ",
            "\n",
            "}",
            "{",
            "\\",
            "'",
            "é",
            "{{vars.env}}",
            "{{ vars.env }}",
            "{{quote vars.name}}",
            "{{quote\nvars.braces}}",
            "{{ quote  vars.env }}",
            "{{vars.none}}",
            "{{vars.nope}}",
            "{{quote vars.nope}}",
            "{{vars.count}}",
            "{{steps.backup.outputs.file}}",
            "{{~vars.env}}",
            "{{vars.env~}}",
            "{{{vars.env}}}",
            "\\{{vars.env}}",
            "{{#if vars.flag}}y{{/if}}",
            "{{quotevars.env}}",
            "{{vars.env.}}",
            "{{vars..env}}",
            "{{vars}}",
            "{{quote}}",
            "{{lower vars.name}}",
            "{{vars.list.0}}",
            "{{vars.env}}}",
            "{{vars.e-nv}}",
            "{{env.x}}",
            "{{",
            "}}",
        ];
        let context = json!({
            "vars": {"env": "production", "name": "it's", "none": null, "count": 3,
                     "flag": true, "list": ["zero"], "braces": "{{vars.env}}", "e-nv": "dash"},
            "steps": {"backup": {"outputs": {"file": "/b/db.sql.gz"}}},
            "env": {"x": "a\0b"},
        });
        let engine = TemplateEngine::new();
        let prepared = PreparedContext::new(&context).unwrap();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % u64::try_from(bound).unwrap()).unwrap()
        };
        let mut simple = 0;
        for _ in 0..3000 {
            let template: String = (0..1 + next(6))
                .map(|_| pieces[next(pieces.len())])
                .collect();
            let expected = engine.registry.render_template(&template, &context);
            if is_simple(&template) {
                simple += 1;
                assert!(
                    handlebars::Template::compile(&template).is_ok(),
                    "{template:?}"
                );
            }
            for rendered in [
                engine.render(&template, &context),
                engine.render_prepared(&template, &prepared),
            ] {
                match (&expected, rendered) {
                    (Ok(expected), Ok(rendered)) => assert_eq!(expected, &rendered, "{template:?}"),
                    (Err(_), Err(_)) => {}
                    (expected, rendered) => panic!("{template:?}: {expected:?} vs {rendered:?}"),
                }
            }
        }
        assert!(simple > 300, "only {simple} simple templates were tried");
    }

    #[test]
    fn every_listed_helper_exists() {
        for name in TemplateEngine::helper_names() {
            let error = render(&format!("{{{{{name} 1 2}}}}"))
                .err()
                .map(|error| error.to_string());
            assert!(
                !error.is_some_and(|error| error.contains("unknown helper")),
                "{name}"
            );
        }
    }

    #[test]
    fn analysis_reports_paths_spans_usage_and_helpers() {
        check_table(
            "cd {{quote vars.dir}} {{ vars.x }} => vars.dir=vars.dir:Quoted vars.x=vars.x:Direct #quote
            {{~steps.a.outputs.f~}}{{{env.HOME}}} => steps.a.outputs.f=steps.a.outputs.f:Direct env.HOME=env.HOME:Direct
            {{quote (lower vars.x)}} {{default vars.y \"a b\"}} => vars.x=vars.x:Quoted vars.y=vars.y:HelperArgument #quote #lower #default
            {{#if (eq vars.e 'p')}}{{json run.id}}{{/if}} => vars.e=vars.e:HelperArgument run.id=run.id:HelperArgument #if #eq #json
            {{#if a}}{{else if vars.z}}{{dir}}{{/if}} => a=a:HelperArgument vars.z=vars.z:HelperArgument dir=dir:Direct #if #if
            {{! {{vars.c}} }}{{!-- {{vars.c}} --}}\\{{vars.c}} {{vars}} => vars=vars:Direct
            {{@root.vars.a.[b c]}} {{upper}} => @root.vars.a.[b c]=vars.a.b c:Direct #upper
            {{qoute 1 true 'x' -2.5 [1, 2] key=vars.h}} => vars.h=vars.h:HelperArgument #qoute",
            analysis,
        );
    }

    #[test]
    fn analysis_skips_paths_relative_to_each_and_with() {
        let each = "{{#each vars.list as |item|}}{{this}} {{item}} {{@index}} {{../dir}} {{name}} \
            {{this.x}} {{vars.x}}{{else}}{{outside}}{{/each}}";
        let with = "{{#with steps.a}}{{status}}{{/with}}{{after}}";
        let expected =
            "vars.list=vars.list:HelperArgument vars.x=vars.x:Direct outside=outside:Direct #each";
        assert_eq!(analysis(each), expected);
        assert_eq!(
            analysis(with),
            "steps.a=steps.a:HelperArgument after=after:Direct #with"
        );
    }

    #[test]
    fn syntax_errors_carry_an_offset() {
        check_table(
            "ab {{#if vars.x}}yes => 3: unclosed `{{#if}}` block
            {{#if x}}{{/each}} => 9: `{{/each}}` does not close the open `{{#if}}` block
            é{{foo bar)}} => 11: expected `}}` to end the tag
            a {{ vars.x => 2: unclosed `{{` tag
            {{> partial}} => 0: `{{> name}}` inserts a snippet only into a script (a `run`), not here
            {{* decorator}} => 0: decorators are not supported",
            syntax_error,
        );
        let grammar = syntax_error("{{foo bar=}}");
        assert!(
            grammar.starts_with("10: invalid handlebars syntax: "),
            "{grammar}"
        );
        assert!(matches!(
            render("{{#if x}}"),
            Err(TemplateError::Syntax {
                offset: Some(0),
                ..
            })
        ));
    }
}
