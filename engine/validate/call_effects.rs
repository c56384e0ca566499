//! What a module call's `if` and `on` do to the module's steps (SPEC §13): each step gets the
//! call's `on`, and runs only when the call's `if` holds as well as its own. Data and text
//! only: the checks are in `modules.rs` and `steps.rs`.

use std::sync::LazyLock;

use regex::Regex;

use crate::document::Spanned;
use crate::model::Template;
use crate::source::Source;

/// One `{{ ... }}` tag and nothing else.
static ONE_TAG: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\{\{\s*([^{}~]*?)\s*\}\}$").ok());
/// A path that is a helper argument as it is (`vars.on`, `steps.a.outputs.k`).
static PATH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_@][A-Za-z0-9_.\[\]@-]*$").ok());

/// The `if` of a call enclosing a module's step.
#[derive(Debug, Clone)]
pub(super) struct CallCondition {
    pub call: String,
    pub text: Spanned<String>,
    /// The step's rewrites from this index on apply to it (those of the call's own level
    /// and above, not the module's).
    pub rewrites_from: usize,
    /// The file the call is written in.
    pub source: Source,
}

/// The effects of the calls enclosing one module step.
#[derive(Debug, Clone, Default)]
pub(super) struct CallEffects {
    /// Innermost call first.
    pub conditions: Vec<CallCondition>,
    /// The step's `on` is its call's, written in this file.
    pub on_source: Option<Source>,
    /// The step's `for_each` is that of this module call (its id after expansion).
    pub for_each_call: Option<String>,
    /// The step's `needs` are its call's (a first step of the module), written in this file.
    pub needs_source: Option<Source>,
    /// The call that uses the module the step is written in: `` `uses: FILE` at FILE:LINE ``.
    pub called_at: Option<String>,
}

/// A condition as a helper argument: a literal's truthiness, or the argument text.
enum Argument {
    Literal(bool),
    Expression(String),
}

fn argument(text: &str) -> Option<Argument> {
    let text = text.trim();
    if !text.contains("{{") {
        return Some(Argument::Literal(crate::template::is_truthy(text)));
    }
    let inner = ONE_TAG
        .as_ref()?
        .captures(text)?
        .get(1)
        .map(|inner| inner.as_str().trim())?;
    let is_path = PATH.as_ref().is_some_and(|path| path.is_match(inner));
    Some(Argument::Expression(if is_path {
        inner.to_string()
    } else {
        format!("({inner})")
    }))
}

/// `first` and `second` both holding, as one condition; `None` when either is more than one
/// `{{ ... }}` (it cannot be an argument of `and`).
pub(super) fn both(first: &Template, second: &Template) -> Option<Template> {
    let text = match (argument(&first.text)?, argument(&second.text)?) {
        (Argument::Literal(false), _) | (_, Argument::Literal(false)) => "false".to_string(),
        (Argument::Literal(true), _) => second.text.clone(),
        (_, Argument::Literal(true)) => first.text.clone(),
        (Argument::Expression(one), Argument::Expression(other)) => {
            format!("{{{{and {one} {other}}}}}")
        }
    };
    let mut runtime_paths = first.runtime_paths.clone();
    runtime_paths.extend(second.runtime_paths.iter().cloned());
    Some(Template {
        text,
        place: first.place.clone(),
        position: first.position,
        runtime_paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> Template {
        Template::literal(text, "if")
    }

    #[test]
    fn conditions_combine_as_and() {
        let combined = |one: &str, other: &str| {
            both(&template(one), &template(other)).map(|template| template.text)
        };
        assert_eq!(
            combined("{{vars.on}}", "{{eq vars.env \"prod\"}}").as_deref(),
            Some("{{and vars.on (eq vars.env \"prod\")}}")
        );
        assert_eq!(
            combined("true", "{{vars.on}}").as_deref(),
            Some("{{vars.on}}")
        );
        assert_eq!(combined("{{vars.on}}", "no").as_deref(), Some("false"));
        assert_eq!(combined("a {{vars.on}}", "true"), None);
    }
}
