//! A module input's templated default (SPEC §13, §3): when a call does not give the input, its
//! default is a template of the module's own context (`{{run.timestamp}}`, inputs declared
//! above it: `"{{vars.backup_dir}}/db.sql.gz"`), rewritten into the caller's context with the
//! values of those inputs. Reading an input declared below it (or a cycle of defaults), a var
//! the module does not declare, a step, or a secret input from a plain one is an error in the
//! module's file.

use std::sync::LazyLock;

use regex::Regex;

use super::Diagnostic;
use super::module_rewrite::{Replacement, Rewrite, rewrite, var_reads};
use super::validator::Validator;
use crate::document::{Position, Spanned};
use crate::source::Source;

/// A `{{ ... }}` tag that reads a step (`steps.` as the start of a word).
static READS_STEP: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\{\{([^{}]*[\s(=~#])?steps\.").ok());

/// What the checks of one templated default need to know about the module's inputs.
pub(super) struct DeclaredInput<'a> {
    pub name: &'a str,
    pub secret: bool,
    /// Its default's text, when it has one.
    pub default: Option<&'a str>,
}

/// One templated default to resolve.
pub(super) struct TemplatedDefault<'a> {
    pub input: &'a Spanned<String>,
    pub text: &'a str,
    pub position: Position,
    pub secret: bool,
}

impl Validator<'_> {
    /// What input `default.input` of module `uses` becomes: its default rewritten with the
    /// inputs resolved so far (`resolved`, those declared above it), checked.
    pub(super) fn templated_input_default(
        &mut self,
        default: &TemplatedDefault<'_>,
        uses: &str,
        declared: &[DeclaredInput<'_>],
        resolved: &[(String, Replacement)],
        module: &Source,
    ) -> Replacement {
        let name = default.input.value.as_str();
        let problem = |code: &'static str, message: String, help: String| {
            Diagnostic::error(code, message, Some(default.position))
                .with_help(help)
                .in_file(module)
        };
        if let Err(error) = self.engine.analyze(default.text) {
            self.push(problem(
                "module-input-default",
                format!(
                    "the default of input `{name}` of module `{uses}` is not a valid template: {error}"
                ),
                "a default is checked like any template (SPEC §6)".to_string(),
            ));
            return Replacement::Literal(String::new());
        }
        let mut ok = true;
        if READS_STEP
            .as_ref()
            .is_some_and(|reads| reads.is_match(default.text))
        {
            self.push(problem(
                "module-input-default",
                format!("the default of input `{name}` of module `{uses}` reads a step"),
                "a default is known before any step runs: give the value in `with`".to_string(),
            ));
            ok = false;
        }
        let own = declared.iter().position(|input| input.name == name);
        for read in var_reads(default.text) {
            let Some(at) = declared.iter().position(|input| input.name == read) else {
                self.push(problem(
                    "module-input-default",
                    format!(
                        "the default of input `{name}` of module `{uses}` reads `vars.{read}`, which is not an input of the module"
                    ),
                    format!(
                        "a default reads the module's own inputs: {}",
                        declared
                            .iter()
                            .map(|input| input.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                ok = false;
                continue;
            };
            if !resolved.iter().any(|(input, _)| *input == read) {
                let message = match cycle(declared, name, &read) {
                    Some(chain) => format!(
                        "the defaults of the inputs of module `{uses}` read each other in a cycle: {}",
                        chain
                            .iter()
                            .map(|input| format!("`{input}`"))
                            .collect::<Vec<_>>()
                            .join(" -> ")
                    ),
                    None if Some(at) == own => {
                        format!("the default of input `{name}` of module `{uses}` reads itself")
                    }
                    None => format!(
                        "the default of input `{name}` of module `{uses}` reads `vars.{read}`, which is declared below it"
                    ),
                };
                self.push(problem(
                    "module-input-default-order",
                    message,
                    "a default may use only inputs declared above it".to_string(),
                ));
                ok = false;
                continue;
            }
            let read_secret = declared.get(at).is_some_and(|input| input.secret);
            if read_secret && !default.secret {
                self.push(problem(
                    "module-secret-input",
                    format!(
                        "the default of input `{name}` of module `{uses}` reads secret input `{read}`, and `{name}` is not `secret: true`"
                    ),
                    format!("declare `{name}` with `secret: true`"),
                ));
                ok = false;
            }
        }
        if !ok {
            return Replacement::Literal(String::new());
        }
        let text = rewrite(
            default.text,
            &[Rewrite::Module {
                call: String::new(),
                inputs: resolved.to_vec(),
                local_ids: Vec::new(),
            }],
        );
        Replacement::of_text(text.trim())
    }
}

/// The chain `from -> to -> ... -> from` when the default of `to` reads, through other
/// defaults, the default of `from`.
fn cycle(declared: &[DeclaredInput<'_>], from: &str, to: &str) -> Option<Vec<String>> {
    let mut chain = vec![from.to_string(), to.to_string()];
    let mut seen = vec![from.to_string()];
    if walk(declared, from, to, &mut chain, &mut seen) {
        Some(chain)
    } else {
        None
    }
}

fn walk(
    declared: &[DeclaredInput<'_>],
    target: &str,
    at: &str,
    chain: &mut Vec<String>,
    seen: &mut Vec<String>,
) -> bool {
    if seen.iter().any(|name| name == at) {
        return false;
    }
    seen.push(at.to_string());
    let reads = declared
        .iter()
        .find(|input| input.name == at)
        .and_then(|input| input.default)
        .map(var_reads)
        .unwrap_or_default();
    for read in reads {
        chain.push(read.clone());
        if read == target || walk(declared, target, &read, chain, seen) {
            return true;
        }
        chain.pop();
    }
    false
}
