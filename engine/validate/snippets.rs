//! `snippets` and `{{> name}}` (SPEC §13): script text written once and inserted into any
//! script before the script is checked, so the quoting lint, the secret rules and the run all
//! see the inserted text in the including script's context.

use std::sync::LazyLock;

use regex::Regex;

use super::Diagnostic;
use super::expansion::{Expansion, Insertion};
use super::snippet::Snippet;
use super::templates::Scope;
use super::validator::Validator;
use crate::document::{OrderedMap, Spanned};
use crate::model::Template;
use crate::suggest::suggest;

/// `{{> name}}`, with optional spaces; any other partial form is left to the template parser,
/// which refuses it.
static INCLUDE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\{\{>\s*([A-Za-z0-9_.-]+)\s*\}\}").ok());

/// Snippets may include snippets, this deep at most (a cycle is reported before that).
const MAX_SNIPPET_DEPTH: usize = 8;

/// A snippet name: letters, digits, `_`, `-` and `.`.
fn is_snippet_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.')
        })
}

impl Validator<'_> {
    /// Reads the `snippets` map: names are checked here, texts where they are used.
    pub(super) fn snippet_table(&mut self, raw: Option<&Spanned<OrderedMap<Spanned<String>>>>) {
        let Some(raw) = raw else {
            return;
        };
        for (name, text) in raw.value.iter() {
            if !is_snippet_name(&name.value) {
                let message = format!("snippet name `{}` is not a valid name", name.value);
                self.push(
                    Diagnostic::error("invalid-snippet-name", message, Some(name.position))
                        .with_help("use letters, digits, `_`, `-` and `.`"),
                );
                continue;
            }
            self.snippets.push(Snippet {
                name: name.clone(),
                text: text.clone(),
                used: false,
            });
        }
    }

    /// Checks a script (`run` of a step, compensation, probe or hook): its snippets inserted,
    /// then linted and checked as a template in `scope`.
    pub(super) fn script(&mut self, run: &Spanned<String>, place: &str, scope: &Scope) -> Template {
        let Some(expansion) = self.expand_snippets(run, &scope.place) else {
            self.lint_script(run, place);
            return self.template(run, scope);
        };
        let expanded = Spanned::new(expansion.expanded.clone(), run.position);
        let before = self.diagnostics.len();
        let include_positions: Vec<(crate::document::Position, String, crate::document::Position)> =
            expansion
                .insertions
                .iter()
                .map(|insertion| {
                    let at = super::templates::locate(self.source, run, insertion.original.start);
                    (at, insertion.snippet.clone(), insertion.written_at)
                })
                .collect();
        self.expansion = Some(expansion);
        self.lint_script(&expanded, place);
        let template = self.template(&expanded, scope);
        self.expansion = None;
        // A problem found in an inserted snippet points at its include and at its text.
        for diagnostic in &mut self.diagnostics[before..] {
            let Some(position) = diagnostic.position else {
                continue;
            };
            if let Some((_, name, written_at)) =
                include_positions.iter().find(|(at, _, _)| *at == position)
            {
                diagnostic
                    .related
                    .push((*written_at, format!("in snippet `{name}`, written here")));
            }
        }
        template
    }

    /// The script with every `{{> name}}` replaced by its snippet's text, or `None` when it
    /// includes none. Problems (an unknown name, a cycle) are reported and the include is left
    /// out.
    fn expand_snippets(&mut self, run: &Spanned<String>, place: &str) -> Option<Expansion> {
        let include = INCLUDE.as_ref()?;
        if !include.is_match(&run.value) {
            return None;
        }
        let mut chain = Vec::new();
        let mut insertions = Vec::new();
        let expanded =
            self.expand_text(run, &run.value, place, &mut chain, include, &mut insertions);
        Some(Expansion {
            original: run.clone(),
            expanded,
            insertions,
        })
    }

    fn expand_text(
        &mut self,
        run: &Spanned<String>,
        text: &str,
        place: &str,
        chain: &mut Vec<String>,
        include: &Regex,
        insertions: &mut Vec<Insertion>,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for found in include.captures_iter(text) {
            let (Some(whole), Some(name)) = (found.get(0), found.get(1)) else {
                continue;
            };
            out.push_str(&text[last..whole.start()]);
            last = whole.end();
            let name = name.as_str();
            // Positions point at the include as written in the script; an include inside a
            // snippet points at the script's include of that snippet.
            let position = if chain.is_empty() {
                self.locate(run, whole.start())
            } else {
                run.position
            };
            let Some(index) = self
                .snippets
                .iter()
                .position(|snippet| snippet.name.value == name)
            else {
                let known: Vec<&str> = self
                    .snippets
                    .iter()
                    .map(|snippet| snippet.name.value.as_str())
                    .collect();
                let help = suggest(name, known.iter().copied())
                    .map(|best| format!("did you mean `{best}`?"))
                    .unwrap_or_else(|| {
                        if known.is_empty() {
                            "declare it under the top-level `snippets:` map".to_string()
                        } else {
                            format!("known snippets: {}", known.join(", "))
                        }
                    });
                let message = format!("`{place}` includes unknown snippet `{name}`");
                self.push(
                    Diagnostic::error("unknown-snippet", message, Some(position)).with_help(help),
                );
                continue;
            };
            if chain.iter().any(|seen| seen == name) || chain.len() >= MAX_SNIPPET_DEPTH {
                let mut shown = chain.clone();
                shown.push(name.to_string());
                let message = format!(
                    "snippets include each other in a cycle or too deep (over {MAX_SNIPPET_DEPTH}): {}",
                    shown.join(" -> ")
                );
                self.push(Diagnostic::error("snippet-cycle", message, Some(position)));
                continue;
            }
            self.snippets[index].used = true;
            let body = self.snippets[index].text.value.clone();
            let body = body.strip_suffix('\n').unwrap_or(&body);
            chain.push(name.to_string());
            let inner = self.expand_text(run, body, place, chain, include, &mut Vec::new());
            chain.pop();
            // An include alone on its (indented) line: the snippet's later lines get the same
            // indentation, so the script reads as written (plan shows it).
            let line_start = text[..whole.start()]
                .rfind('\n')
                .map_or(0, |index| index + 1);
            let indent = &text[line_start..whole.start()];
            let inner = if !indent.is_empty() && indent.chars().all(|c| c == ' ' || c == '\t') {
                inner.replace('\n', &format!("\n{indent}"))
            } else {
                inner
            };
            if chain.is_empty() {
                insertions.push(Insertion {
                    expanded: out.len()..out.len() + inner.len(),
                    original: whole.range(),
                    snippet: name.to_string(),
                    written_at: self.snippets[index].text.position,
                });
            }
            out.push_str(&inner);
        }
        out.push_str(&text[last..]);
        out
    }

    /// Warns about declared snippets no script includes.
    pub(super) fn lint_unused_snippets(&mut self) {
        let unused: Vec<Spanned<String>> = self
            .snippets
            .iter()
            .filter(|snippet| !snippet.used)
            .map(|snippet| snippet.name.clone())
            .collect();
        for name in unused {
            let message = format!("snippet `{}` is not used by any script", name.value);
            self.push(
                Diagnostic::warning("unused-snippet", message, Some(name.position)).with_help(
                    format!("include it as `{{{{> {}}}}}` or remove it", name.value),
                ),
            );
        }
    }
}
