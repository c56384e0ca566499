//! Variable resolution (SPEC §3): `--var`, `--vars-file`, `env`, `file`, `default`, highest
//! first; checked against `required` and `choices` before anything runs.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Context;
use crate::bounded_read::read_bounded_text;
use crate::document::{OrderedMap, Scalar, Spanned};
use crate::errors::EngineError;
use crate::model::{Runbook, parse_rendered};
use crate::suggest::suggest;
use crate::template::TemplateEngine;
use crate::validate::Diagnostic;

/// Values given on the command line.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// `--var name=value`, in order; a later one wins.
    pub values: Vec<(String, String)>,
    /// `--vars-file FILE`.
    pub file: Option<PathBuf>,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum VarSource {
    CommandLine,
    VarsFile,
    Env(String),
    File(String),
    Default,
    /// No source gave a value.
    Unset,
}

impl VarSource {
    pub fn describe(&self) -> String {
        match self {
            VarSource::CommandLine => "--var".into(),
            VarSource::VarsFile => "--vars-file".into(),
            VarSource::Env(name) => format!("env {name}"),
            VarSource::File(path) => format!("file {path}"),
            VarSource::Default => "default".into(),
            VarSource::Unset => "unset".into(),
        }
    }
}

/// A variable with its value and where it came from. `Debug` masks secret values, so a
/// panic or a debug print cannot leak them.
#[derive(Clone)]
pub struct ResolvedVar {
    pub name: String,
    pub value: Option<String>,
    pub source: VarSource,
    pub secret: bool,
}

impl std::fmt::Debug for ResolvedVar {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = match &self.value {
            Some(_) if self.secret => Some(crate::secrets::MASK),
            value => value.as_deref(),
        };
        formatter
            .debug_struct("ResolvedVar")
            .field("name", &self.name)
            .field("value", &value)
            .field("source", &self.source)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A `--vars-file` larger than this is refused before it is parsed.
const MAX_VARS_FILE_BYTES: u64 = 4 << 20;
/// A var's `file:` larger than this is refused: a value, not a data set.
const MAX_VAR_FILE_BYTES: u64 = 1 << 20;

/// Reads `--vars-file`: a YAML mapping of names to scalar values.
fn read_vars_file(path: &Path) -> Result<Vec<(Spanned<String>, String)>, EngineError> {
    let name = path.display().to_string();
    let text =
        read_bounded_text(path, MAX_VARS_FILE_BYTES).map_err(|cause| EngineError::VarsFile {
            path: name.clone(),
            cause: cause.into(),
        })?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let map: OrderedMap<Spanned<Scalar>> = serde_saphyr::from_str_with_options(&text, options)
        .map_err(|error| EngineError::VarsFileFormat {
            path: name.clone(),
            message: error.to_string(),
        })?;
    Ok(map
        .entries
        .into_iter()
        // A number keeps its spelling (`1.10`, not `1.1`), as in the runbook itself.
        .map(|(key, value)| (key, value.value.written(&text).unwrap_or_default()))
        .collect())
}

/// The name and value of each entry of a `--vars-file`, in order.
pub fn vars_file_values(path: &Path) -> Result<Vec<(String, String)>, EngineError> {
    Ok(read_vars_file(path)?
        .into_iter()
        .map(|(key, value)| (key.value, value))
        .collect())
}

/// Resolves every variable. `demand_required` is false for `validate`, which checks given
/// values but does not ask for production inputs. Problems come back as diagnostics that
/// name the variable and point at its declaration.
pub fn resolve_vars(
    runbook: &Runbook,
    inputs: &VarInputs,
    context: &mut Context,
    engine: &TemplateEngine,
    demand_required: bool,
) -> Result<Result<Vec<ResolvedVar>, Vec<Diagnostic>>, EngineError> {
    let from_file = match &inputs.file {
        Some(path) => read_vars_file(path)?,
        None => Vec::new(),
    };
    let mut problems = Vec::new();
    let names = || runbook.vars.iter().map(|var| var.name.as_str());
    for (name, _) in &inputs.values {
        if runbook.var(name).is_none() {
            let help = suggest(name, names()).map(|best| format!("did you mean `{best}`?"));
            problems.push(
                Diagnostic::error(
                    "unknown-var",
                    format!("`--var {name}=...`: the runbook declares no variable `{name}`"),
                    None,
                )
                .with_optional_help(help),
            );
        }
    }
    for (key, _) in &from_file {
        if runbook.var(&key.value).is_none() {
            let file = inputs
                .file
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default();
            let help = suggest(&key.value, names()).map(|best| format!("did you mean `{best}`?"));
            let message = format!(
                "`{file}` line {}: the runbook declares no variable `{}`",
                key.position.line, key.value
            );
            problems.push(Diagnostic::error("unknown-var", message, None).with_optional_help(help));
        }
    }
    let mut resolved = Vec::new();
    for var in &runbook.vars {
        let from_command_line = inputs
            .values
            .iter()
            .rev()
            .find(|(name, _)| *name == var.name)
            .map(|(_, value)| value.clone());
        let from_vars_file = from_file
            .iter()
            .find(|(key, _)| key.value == var.name)
            .map(|(_, value)| value.clone());
        let from_env = var
            .env
            .as_ref()
            .and_then(|name| std::env::var(name).ok().map(|value| (name.clone(), value)));
        let mut value = None;
        let mut source = VarSource::Unset;
        if let Some(given) = from_command_line {
            (value, source) = (Some(given), VarSource::CommandLine);
        } else if let Some(given) = from_vars_file {
            (value, source) = (Some(given), VarSource::VarsFile);
        } else if let Some((name, given)) = from_env {
            (value, source) = (Some(given), VarSource::Env(name));
        } else if let Some(file) = &var.file {
            let path = runbook.directory.join(file);
            match read_bounded_text(&path, MAX_VAR_FILE_BYTES) {
                Ok(text) => {
                    (value, source) = (
                        Some(text.trim_end_matches(['\n', '\r']).to_string()),
                        VarSource::File(file.clone()),
                    )
                }
                // A missing file falls back to the default; one that exists but cannot be read is
                // an error, never silently skipped.
                Err(error) if path.exists() || std::fs::symlink_metadata(&path).is_ok() => {
                    let message =
                        format!("cannot read `{file}` for variable `{}`: {error}", var.name);
                    problems.push(Diagnostic::error("var-file", message, Some(var.position)));
                }
                Err(_) => {}
            }
        }
        if value.is_none()
            && let Some(default) = &var.default
        {
            match engine.render(&default.text, context.value()) {
                Ok(rendered) => (value, source) = (Some(rendered), VarSource::Default),
                Err(error) => {
                    let message =
                        format!("cannot compute the default of `vars.{}`: {error}", var.name);
                    problems.push(Diagnostic::error(
                        "var-default",
                        message,
                        Some(default.position),
                    ));
                }
            }
        }
        // A list var's value, from wherever it came, is held as a JSON array text.
        if var.list
            && let Some(text) = &value
        {
            match crate::model::parse_list(text) {
                Ok(items) => value = Some(crate::model::list_text(&items)),
                Err(error) => {
                    let message = format!(
                        "the value of list variable `{}` (from {}) is not a list: {}",
                        var.name,
                        source.describe(),
                        if var.secret {
                            "a secret value".to_string()
                        } else {
                            error
                        }
                    );
                    problems.push(
                        Diagnostic::error("var-list", message, Some(var.position)).with_help(
                            "give items separated by commas (`a,b,c`) or a JSON array (`[\"a\",\"b\"]`)",
                        ),
                    );
                    value = None;
                }
            }
        }
        let items = match &value {
            Some(text) if var.list => crate::model::parse_list(text).unwrap_or_default(),
            Some(text) => vec![text.clone()],
            None => Vec::new(),
        };
        if let Some(text) = &value {
            let outside = items.iter().find(|item| !var.choices.contains(item));
            if text.contains('\0') {
                problems.push(Diagnostic::error(
                    "var-nul",
                    format!("the value of variable `{}` contains a NUL byte", var.name),
                    Some(var.position),
                ));
            } else if let Some(outside) = outside.filter(|_| !var.choices.is_empty()) {
                let shown = if var.secret {
                    crate::secrets::MASK.to_string()
                } else {
                    outside.clone()
                };
                let message = format!(
                    "`{shown}` is not an allowed value of variable `{}` (from {})",
                    var.name,
                    source.describe()
                );
                let help = format!("choices: {}", var.choices.join(", "));
                problems.push(
                    Diagnostic::error("var-choice", message, Some(var.position)).with_help(help),
                );
            } else if var.required
                && (text.is_empty() || var.list && items.is_empty())
                && demand_required
            {
                let message = format!("required variable `{}` is empty", var.name);
                problems.push(Diagnostic::error(
                    "var-required",
                    message,
                    Some(var.position),
                ));
            }
        } else if var.required && demand_required {
            let mut ways = vec![format!("`--var {}=...`", var.name)];
            if let Some(env) = &var.env {
                ways.push(format!("the environment variable `{env}`"));
            }
            if let Some(file) = &var.file {
                ways.push(format!("the file `{file}`"));
            }
            let description = var
                .description
                .as_ref()
                .map(|description| format!(" ({description})"))
                .unwrap_or_default();
            let message = format!("required variable `{}`{description} has no value", var.name);
            problems.push(
                Diagnostic::error("var-required", message, Some(var.position))
                    .with_help(format!("give it with {}", ways.join(" or "))),
            );
        }
        context.set_var(&var.name, value.clone(), var.secret, var.list);
        resolved.push(ResolvedVar {
            name: var.name.clone(),
            value,
            source,
            secret: var.secret,
        });
    }
    if problems.is_empty() {
        problems.extend(check_durations(runbook, context, engine, demand_required));
    }
    if problems.is_empty() {
        Ok(Ok(resolved))
    } else {
        Ok(Err(problems))
    }
}

/// Checks every duration written as a template once the variables are known (SPEC §2), so a
/// bad value (`--var timeout=banana`) is refused before anything runs, not when the step is
/// reached. Templates that read what only a run knows (`steps.*`, `run.*`) wait for it.
fn check_durations(
    runbook: &Runbook,
    context: &Context,
    engine: &TemplateEngine,
    demand_required: bool,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut checked = std::collections::HashSet::new();
    for template in runbook.duration_templates() {
        // A default is shared by every step that does not set its own: checked once.
        if template.needs_run() || !checked.insert(template.place.as_str()) {
            continue;
        }
        let message = match engine.render(&template.text, context.value()) {
            Ok(text) => match parse_rendered(template, &text) {
                Ok(_) => continue,
                Err(message) => message,
            },
            // `validate` does not demand every value: a template reading an unset var is
            // checked when it has one.
            Err(_) if !demand_required => continue,
            Err(error) => format!("cannot render `{}`: {error}", template.place),
        };
        problems.push(
            Diagnostic::error("invalid-duration", message, Some(template.position))
                .with_help("give a duration such as `500ms`, `30s`, `10m` or `1h30m`"),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::{ResolvedVar, VarSource};

    #[test]
    fn debug_never_shows_a_secret_value() {
        let var = ResolvedVar {
            name: "db_password".into(),
            value: Some("Tr0ub4dor&3".into()),
            source: VarSource::Default,
            secret: true,
        };
        let shown = format!("{var:?}");
        assert!(!shown.contains("Tr0ub4dor"), "{shown}");
        assert!(shown.contains("••••••"), "{shown}");
    }
}
