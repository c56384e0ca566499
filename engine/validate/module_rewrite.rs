//! How a module's templates are rewritten for its call (SPEC §13): `vars.<input>` becomes the
//! `with` value, the module's own step ids get the call's prefix, and a read of a var the
//! module does not declare is marked so that it is reported. Data and text only: the checks
//! are in `modules.rs`.

use std::sync::LazyLock;

use regex::Regex;

/// The prefix a module's read of a var it does not declare gets, so that it is reported
/// instead of reading the caller's var of that name.
pub(super) const UNDECLARED: &str = "not_an_input_of_the_module__";

/// The prefix a module's read of an input given a template gets where the template cannot be
/// inlined (inside a helper or a block), so that it is reported.
pub(super) const TEMPLATED: &str = "input_given_a_template__";

/// The prefix a read of a module output given as a template gets where the template cannot be
/// inlined (inside a helper or a block), so that it is reported.
pub(super) const OUTPUT_TEMPLATED: &str = "module_output_given_a_template__";

/// A `{{ ... }}` tag (no braces inside).
static TAG: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\{\{([^{}]*)\}\}").ok());
/// `vars.<name>` as a word of a tag.
static VAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(^|[\s(=~])vars\.([A-Za-z_][A-Za-z0-9_]*)").ok());
/// `steps.<id>.` as the start of a word of a tag.
static STEP: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(^|[\s(=~])steps\.([a-z0-9][a-z0-9_-]*)\.").ok());
/// What a module input becomes in the module's templates.
#[derive(Debug, Clone)]
pub(super) enum Replacement {
    /// Another path of the caller's context (`vars.db`, `steps.x.outputs.y`).
    Path(String),
    /// A literal text.
    Literal(String),
    /// A template of the caller's context (`http://{{vars.host}}:{{vars.port}}/health`),
    /// inlined where the module reads the input as a whole `{{vars.<input>}}`.
    Template(String),
}

/// A template that is one `{{path}}`.
static ONE_PATH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_.\[\]-]*)\s*\}\}$").ok());

impl Replacement {
    /// What a text of the caller's context becomes: a literal, one path, or a template.
    pub(super) fn of_text(text: &str) -> Replacement {
        if !text.contains("{{") {
            return Replacement::Literal(text.to_string());
        }
        match ONE_PATH
            .as_ref()
            .and_then(|one| one.captures(text))
            .and_then(|captures| captures.get(1))
        {
            Some(path) => Replacement::Path(path.as_str().to_string()),
            None => Replacement::Template(text.to_string()),
        }
    }
}

/// One rewrite of a module step's templates, innermost first.
#[derive(Debug, Clone)]
pub(super) enum Rewrite {
    /// A call of a module: its inputs and its own step ids, which get the call's prefix.
    Module {
        call: String,
        inputs: Vec<(String, Replacement)>,
        local_ids: Vec<String>,
    },
    /// `steps.<call>.outputs.<key>` read at one level: the module step output it names (a
    /// path), or the module's output template (inlined where it is read whole).
    Outputs(Vec<(String, Replacement)>),
}

/// Applies `rewrites` to a template text, in order.
pub(super) fn rewrite(text: &str, rewrites: &[Rewrite]) -> String {
    let Some(tag) = TAG.as_ref() else {
        return text.to_string();
    };
    let mut text = text.to_string();
    for one in rewrites {
        if !text.contains("{{") {
            break;
        }
        text = tag
            .replace_all(&text, |captures: &regex::Captures<'_>| {
                let inner = captures.get(1).map_or("", |found| found.as_str());
                match one {
                    Rewrite::Module {
                        call,
                        inputs,
                        local_ids,
                    } => rewrite_module_tag(inner, call, inputs, local_ids),
                    Rewrite::Outputs(aliases) => rewrite_outputs_tag(inner, aliases),
                }
            })
            .into_owned();
    }
    text
}

/// The vars a template reads (`vars.<name>` words of its tags), in order, each once.
pub(super) fn var_reads(text: &str) -> Vec<String> {
    let (Some(tag), Some(var)) = (TAG.as_ref(), VAR.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for inner in tag.captures_iter(text).filter_map(|found| found.get(1)) {
        for found in var.captures_iter(inner.as_str().trim_start_matches(['#', '~', '^', '/'])) {
            if let Some(name) = found.get(2).map(|name| name.as_str().to_string())
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names
}

fn rewrite_outputs_tag(inner: &str, aliases: &[(String, Replacement)]) -> String {
    let trimmed =
        inner.trim_matches(|character: char| character == '~' || character.is_whitespace());
    for (from, to) in aliases {
        if let Replacement::Literal(text) | Replacement::Template(text) = to
            && trimmed == from
        {
            // Its own tags are this level's: the rewrites of outer levels map them on.
            return text.clone();
        }
    }
    let mut inner = format!("{inner} ");
    for (from, to) in aliases {
        let to = match to {
            Replacement::Path(path) => path.clone(),
            Replacement::Literal(text) => format!("\"{text}\""),
            Replacement::Template(_) => {
                // A var name: `.` written `__` (shown again as `.`), anything else `_`.
                let shown: String = from
                    .chars()
                    .map(|character| match character {
                        '.' => "__".to_string(),
                        character if character.is_ascii_alphanumeric() || character == '_' => {
                            character.to_string()
                        }
                        _ => "_".to_string(),
                    })
                    .collect();
                format!("vars.{OUTPUT_TEMPLATED}{shown}")
            }
        };
        inner = inner.replace(&format!("{from} "), &format!("{to} "));
        inner = inner.replace(&format!("{from})"), &format!("{to})"));
    }
    format!("{{{{{}}}}}", &inner[..inner.len() - 1])
}

fn rewrite_module_tag(
    inner: &str,
    call: &str,
    inputs: &[(String, Replacement)],
    local_ids: &[String],
) -> String {
    let (Some(var), Some(step)) = (VAR.as_ref(), STEP.as_ref()) else {
        return format!("{{{{{inner}}}}}");
    };
    let trimmed =
        inner.trim_matches(|character: char| character == '~' || character.is_whitespace());
    if let Some(name) = trimmed.strip_prefix("vars.")
        && let Some((_, Replacement::Literal(text) | Replacement::Template(text))) =
            inputs.iter().find(|(input, _)| input == name)
    {
        // A template's own tags are the caller's: the rewrites of outer levels map them on.
        return text.clone();
    }
    // One pass: a replacement is never rewritten again (it is the caller's path).
    let replace_vars = |text: &str| {
        var.replace_all(text, |found: &regex::Captures<'_>| {
            let before = found.get(1).map_or("", |part| part.as_str());
            let name = found.get(2).map_or("", |part| part.as_str());
            let after = "";
            match inputs.iter().find(|(input, _)| input == name) {
                Some((_, Replacement::Path(path))) => format!("{before}{path}{after}"),
                Some((_, Replacement::Literal(text))) => format!("{before}\"{text}\"{after}"),
                Some((_, Replacement::Template(_))) => {
                    format!("{before}vars.{TEMPLATED}{name}{after}")
                }
                // Never the caller's var of that name: a module sees only its inputs.
                None if name.starts_with(UNDECLARED)
                    || name.starts_with(TEMPLATED)
                    || name.starts_with(OUTPUT_TEMPLATED) =>
                {
                    format!("{before}vars.{name}{after}")
                }
                None => format!("{before}vars.{UNDECLARED}{name}{after}"),
            }
        })
        .into_owned()
    };
    let inner = replace_vars(inner);
    let inner = step
        .replace_all(&inner, |found: &regex::Captures<'_>| {
            let before = found.get(1).map_or("", |part| part.as_str());
            let id = found.get(2).map_or("", |part| part.as_str());
            if local_ids.iter().any(|local| local == id) {
                format!("{before}steps.{call}.{id}.")
            } else {
                found
                    .get(0)
                    .map_or(String::new(), |whole| whole.as_str().to_string())
            }
        })
        .into_owned();
    format!("{{{{{inner}}}}}")
}
