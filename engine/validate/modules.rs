//! Modules (SPEC §13): a step with `uses: FILE` and `with:` brings the steps of another
//! runbook file into this one's DAG as `call.step`. The module is read and checked here; its
//! templates are rewritten as its steps are checked (`vars.<input>` becomes the `with` value,
//! `steps.<step>` the prefixed step), so the rest of validation, the plan and the run see
//! ordinary steps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::Diagnostic;
use super::call_effects::CallEffects;
use super::module_input_defaults::{DeclaredInput, TemplatedDefault};
use super::module_rewrite::{Replacement, Rewrite, rewrite, var_reads};
use super::module_settings::ModuleSettings;
use super::validator::Validator;
use crate::document::{RawRunbook, RawStep, RawVar, Spanned, parse_reporting_all};
use crate::source::Source;
use crate::suggest::suggest;

/// Modules may use modules, this deep at most.
const MAX_MODULE_DEPTH: usize = 16;

/// A `with` value that is one `{{path}}`.
static ONE_PATH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_.\[\]-]*)\s*\}\}$").ok());

/// A step after modules are brought in, with how its templates are rewritten and the module
/// file it was written in.
#[derive(Debug, Clone)]
pub(super) struct Flattened {
    pub step: RawStep,
    pub rewrites: Vec<Rewrite>,
    pub source: Option<Source>,
    /// The `if` and `on` of the calls it is inside.
    pub effects: CallEffects,
    /// The `env` and `defaults` of the modules it is written in, innermost first.
    pub settings: Vec<ModuleSettings>,
}

impl Validator<'_> {
    /// The steps of `raw` with every call of a module replaced by the module's steps, or
    /// `None` when no step uses a module.
    pub(super) fn expand_modules(&mut self, raw: &RawRunbook) -> Option<Vec<Flattened>> {
        if raw.steps.value.iter().all(|step| step.uses.is_none()) {
            return None;
        }
        let directory = self.source.directory();
        let chain = vec![PathBuf::from(self.source.name())];
        Some(self.flatten(raw, &directory, &chain, None, &[]).0)
    }

    /// The steps of `raw` (the runbook, or the `module` at the end of `chain`, whose inputs
    /// are `outer`'s, innermost call first) with its calls expanded, and the aliases of its
    /// calls' outputs.
    fn flatten(
        &mut self,
        raw: &RawRunbook,
        directory: &Path,
        chain: &[PathBuf],
        module: Option<&Source>,
        outer: &[Rewrite],
    ) -> (Vec<Flattened>, Vec<(String, Replacement)>) {
        let mut out: Vec<Flattened> = Vec::new();
        let mut calls: HashMap<String, Vec<String>> = HashMap::new();
        let mut aliases: Vec<(String, Replacement)> = Vec::new();
        for step in &raw.steps.value {
            let Some(uses) = &step.uses else {
                out.push(Flattened {
                    step: step.clone(),
                    rewrites: Vec::new(),
                    source: module.cloned(),
                    effects: CallEffects::default(),
                    settings: Vec::new(),
                });
                continue;
            };
            let Some((module_raw, module_source)) =
                self.load_module(step, uses, directory, chain, module)
            else {
                calls.insert(step.id.value.clone(), Vec::new());
                continue;
            };
            self.check_module_settings(step, uses, &module_raw, &module_source);
            let inputs = self.module_inputs(step, &module_raw, module, &module_source);
            let local_ids: Vec<String> = module_raw
                .steps
                .value
                .iter()
                .map(|step| step.id.value.clone())
                .collect();
            let table = module_raw
                .snippets
                .iter()
                .flat_map(|snippets| snippets.value.iter())
                .map(|(name, text)| super::snippet::Snippet {
                    name: name.clone(),
                    text: text.clone(),
                    used: true,
                })
                .collect();
            self.module_snippets
                .insert(module_source.name().to_string(), table);
            let call = step.id.value.clone();
            let call_source = module.cloned().unwrap_or_else(|| self.source.clone());
            let module_rewrite = Rewrite::Module {
                call: call.clone(),
                inputs,
                local_ids,
            };
            let mut next_chain = chain.to_vec();
            next_chain.push(PathBuf::from(module_source.name()));
            let next_outer: Vec<Rewrite> = std::iter::once(module_rewrite.clone())
                .chain(outer.iter().cloned())
                .collect();
            let before_vars = self.for_each_vars.len();
            let (inner, inner_aliases) = self.flatten(
                &module_raw,
                &module_source.directory(),
                &next_chain,
                Some(&module_source),
                &next_outer,
            );
            // The module's calls with `for_each` over a list var, by their ids here.
            for each in &mut self.for_each_vars[before_vars..] {
                each.step = format!("{call}.{}", each.step);
            }
            let call_items = self.call_items(step, outer, module);
            let mut ids = Vec::new();
            for mut flat in inner {
                let id = format!("{call}.{}", flat.step.id.value);
                flat.step.id.value = id.clone();
                if let Some(inner_call) = &mut flat.effects.for_each_call {
                    *inner_call = format!("{call}.{inner_call}");
                }
                let needs = flat.step.needs.as_ref().map(|needs| needs.value.clone());
                match needs {
                    Some(needs) if !needs.is_empty() => {
                        if let Some(step_needs) = &mut flat.step.needs {
                            for need in &mut step_needs.value {
                                need.value = format!("{call}.{}", need.value);
                            }
                        }
                    }
                    // A first step of the module waits for what the call waits for.
                    _ => {
                        flat.step.needs = step.needs.clone();
                        flat.effects.needs_source = Some(call_source.clone());
                    }
                }
                flat.rewrites.push(module_rewrite.clone());
                if flat.effects.called_at.is_none() {
                    flat.effects.called_at = Some(format!(
                        "`uses: {}` at {}:{}",
                        uses.value,
                        self.shown_file(&call_source),
                        uses.position.line
                    ));
                }
                self.apply_call_effects(step, &mut flat, &call_source);
                if let Some(items) = &call_items {
                    self.apply_call_for_each(step, items, &mut flat, &call_source);
                }
                ids.push(id);
                out.push(flat);
            }
            // The module's outputs, read by this level as `steps.<call>.outputs.<key>`.
            if let Some(outputs) = &module_raw.outputs {
                for (key, value) in outputs.value.iter() {
                    let text = rewrite(
                        &value.value,
                        &[
                            Rewrite::Outputs(inner_aliases.clone()),
                            module_rewrite.clone(),
                        ],
                    );
                    let from = format!("steps.{call}.outputs.{}", key.value);
                    let replacement = Replacement::of_text(text.trim());
                    // One instance of a call with `for_each`: its steps' instances.
                    for (index, item) in call_items.iter().flatten().enumerate() {
                        let instance = super::for_each_instance::Instance {
                            step: call.clone(),
                            item: item.clone(),
                            index,
                            group: ids.clone(),
                        };
                        let instance = match &replacement {
                            Replacement::Path(path) => Replacement::of_text(
                                &instance.substitute(&format!("{{{{{path}}}}}")),
                            ),
                            Replacement::Template(text) | Replacement::Literal(text) => {
                                Replacement::of_text(&instance.substitute(text))
                            }
                        };
                        aliases.push((
                            format!(
                                "steps.{call}.items.{}.outputs.{}",
                                super::for_each_instance::item_segment(item),
                                key.value
                            ),
                            instance,
                        ));
                    }
                    aliases.push((from, replacement));
                }
            }
            calls.insert(call, ids);
        }
        // `needs: [call]` waits for every step of the module.
        for flat in &mut out {
            // A module's own `env` and `defaults`, read in its context: the rewrites from
            // its own level's on.
            if let Some(source) = module
                && let Some(settings) = ModuleSettings::of(raw, source, flat.rewrites.len())
            {
                flat.settings.push(settings);
            }
            if let Some(needs) = &mut flat.step.needs {
                needs.value = needs
                    .value
                    .iter()
                    .flat_map(|need| match calls.get(&need.value) {
                        Some(ids) => ids
                            .iter()
                            .map(|id| Spanned::new(id.clone(), need.position))
                            .collect(),
                        None => vec![need.clone()],
                    })
                    .collect();
            }
            if !aliases.is_empty() {
                flat.rewrites.push(Rewrite::Outputs(aliases.clone()));
            }
        }
        if module.is_none() && !aliases.is_empty() {
            self.top_rewrites = vec![Rewrite::Outputs(aliases.clone())];
        }
        (out, aliases)
    }

    /// The module file at `path`: from the copies kept with a run when validating one, else
    /// from the disk; each recorded once.
    fn read_module(&mut self, path: &Path) -> Result<Source, crate::source::SourceError> {
        let key = super::module_files::module_key(&self.source.directory(), path);
        let source = match self.kept_modules {
            Some(kept) => match kept.get(&key) {
                Some(text) => {
                    Source::new(path.to_path_buf(), path.display().to_string(), text.clone())
                }
                None => {
                    return Err(crate::source::SourceError::Unreadable {
                        path: path.display().to_string(),
                        cause: std::io::Error::other(
                            "it is not among the module files kept with the run",
                        ),
                    });
                }
            },
            None => Source::read(path)?,
        };
        if !self.modules_read.iter().any(|module| module.path == key) {
            self.modules_read.push(super::ModuleFile {
                path: key,
                source: source.clone(),
            });
        }
        Ok(source)
    }

    /// Reads and parses the module a call uses, reporting why not.
    fn load_module(
        &mut self,
        step: &RawStep,
        uses: &Spanned<String>,
        directory: &Path,
        chain: &[PathBuf],
        module: Option<&Source>,
    ) -> Option<(RawRunbook, Source)> {
        let here = |diagnostic: Diagnostic| match module {
            Some(source) => diagnostic.in_file(source),
            None => diagnostic,
        };
        for (key, present) in [
            ("run", step.run.is_some()),
            ("approve", step.approve.is_some()),
            ("rollback", step.rollback.is_some()),
            ("verify", step.verify.is_some()),
            ("env", step.env.is_some()),
            ("outputs", step.outputs.is_some()),
        ] {
            if present {
                let message = format!(
                    "step `{}` uses a module and has `{key}`: a call takes only `id`, `name`, `description`, `needs`, `if`, `on` and `with`",
                    step.id.value
                );
                self.push(here(Diagnostic::error(
                    "module-call-key",
                    message,
                    Some(uses.position),
                )));
                return None;
            }
        }
        let path = directory.join(&uses.value);
        let shown = path.display().to_string();
        if chain.len() > MAX_MODULE_DEPTH {
            let message = format!(
                "modules use modules more than {MAX_MODULE_DEPTH} deep: {}",
                chain_text(chain, &shown)
            );
            self.push(here(Diagnostic::error(
                "module-depth",
                message,
                Some(uses.position),
            )));
            return None;
        }
        let canonical = std::fs::canonicalize(&path).ok();
        if chain.iter().any(|seen| {
            std::fs::canonicalize(seen)
                .ok()
                .is_some_and(|seen| Some(seen) == canonical)
        }) {
            let message = format!(
                "modules use each other in a cycle: {}",
                chain_text(chain, &shown)
            );
            self.push(here(Diagnostic::error(
                "module-cycle",
                message,
                Some(uses.position),
            )));
            return None;
        }
        let source = match self.read_module(&path) {
            Ok(source) => source,
            Err(error) => {
                let cause = std::error::Error::source(&error)
                    .map(|cause| format!(": {cause}"))
                    .unwrap_or_default();
                let message = format!(
                    "module `{}` of step `{}` cannot be read (tried `{shown}`){cause}",
                    uses.value, step.id.value
                );
                self.push(here(
                    Diagnostic::error("module-missing", message, Some(uses.position))
                        .with_help("a module path is relative to the file that uses it"),
                ));
                return None;
            }
        };
        let module_raw = match parse_reporting_all(source.text()) {
            Ok(raw) => raw,
            Err(errors) => {
                let first = errors
                    .first()
                    .map(|error| match error.position {
                        Some(position) => format!(
                            "{} at {}:{}:{}",
                            error.message, shown, position.line, position.column
                        ),
                        None => error.message.clone(),
                    })
                    .unwrap_or_default();
                let message = format!("module `{}` is not a runbook: {first}", uses.value);
                self.push(here(Diagnostic::error(
                    "module-not-a-runbook",
                    message,
                    Some(uses.position),
                )));
                return None;
            }
        };
        let mut refused = false;
        for (key, position) in [
            (
                "hooks",
                module_raw.hooks.as_ref().map(|value| value.position),
            ),
            (
                "concurrency",
                module_raw.concurrency.as_ref().map(|value| value.position),
            ),
            (
                "timeout",
                module_raw.timeout.as_ref().map(|value| value.position),
            ),
            (
                "rollback_verify",
                module_raw
                    .rollback_verify
                    .as_ref()
                    .map(|value| value.position),
            ),
        ] {
            if let Some(position) = position {
                let message = format!(
                    "module `{}` has `{key}`: a module has no `hooks`, `concurrency`, `timeout` or `rollback_verify` (its caller's apply)",
                    uses.value
                );
                self.push(
                    Diagnostic::error("module-key", message, Some(position))
                        .in_file(&source)
                        .with_help(format!(
                            "used by step `{}` at line {}",
                            step.id.value, uses.position.line
                        )),
                );
                refused = true;
            }
        }
        (!refused).then_some((module_raw, source))
    }

    /// Checks a call's `with` against the module's `vars` and returns what each input
    /// becomes.
    fn module_inputs(
        &mut self,
        step: &RawStep,
        module_raw: &RawRunbook,
        module: Option<&Source>,
        module_source: &Source,
    ) -> Vec<(String, Replacement)> {
        let here = |diagnostic: Diagnostic| match module {
            Some(source) => diagnostic.in_file(source),
            None => diagnostic,
        };
        let uses = step.uses.as_ref().map_or("", |uses| uses.value.as_str());
        let call_position = step
            .uses
            .as_ref()
            .map_or(step.id.position, |uses| uses.position);
        let declared: Vec<(&Spanned<String>, &Spanned<RawVar>)> = module_raw
            .vars
            .iter()
            .flat_map(|vars| vars.value.iter())
            .collect();
        let names: Vec<&str> = declared
            .iter()
            .map(|(name, _)| name.value.as_str())
            .collect();
        let given: Vec<(&Spanned<String>, &Spanned<String>)> = step
            .with
            .iter()
            .flat_map(|with| with.value.iter())
            .collect();
        for (key, _) in &given {
            if !names.contains(&key.value.as_str()) {
                let help = suggest(&key.value, names.iter().copied())
                    .map(|best| format!("did you mean `{best}`?"))
                    .unwrap_or_else(|| format!("module `{uses}` takes: {}", names.join(", ")));
                let message = format!("module `{uses}` has no input `{}`", key.value);
                self.push(here(
                    Diagnostic::error("module-unknown-input", message, Some(key.position))
                        .with_help(help),
                ));
            }
        }
        let described: Vec<DeclaredInput<'_>> = declared
            .iter()
            .map(|(name, var)| match &var.value {
                RawVar::Plain(scalar) => DeclaredInput {
                    name: name.value.as_str(),
                    secret: false,
                    default: scalar.0.as_deref(),
                },
                RawVar::Declared(spec) => DeclaredInput {
                    name: name.value.as_str(),
                    secret: spec.secret.as_ref().is_some_and(|secret| secret.value),
                    default: spec
                        .default
                        .as_ref()
                        .and_then(|default| default.value.0.as_deref()),
                },
            })
            .collect();
        let mut inputs = Vec::new();
        for (name, var) in declared.iter().copied() {
            let (required, default, default_position, choices, secret) = match &var.value {
                RawVar::Plain(scalar) => (false, scalar.0.clone(), var.position, Vec::new(), false),
                RawVar::Declared(spec) => (
                    spec.required
                        .as_ref()
                        .is_some_and(|required| required.value),
                    spec.default
                        .as_ref()
                        .and_then(|default| default.value.0.clone()),
                    spec.default
                        .as_ref()
                        .map_or(var.position, |default| default.position),
                    spec.choices
                        .iter()
                        .flat_map(|choices| choices.value.iter())
                        .filter_map(|choice| choice.value.0.clone())
                        .collect::<Vec<String>>(),
                    spec.secret.as_ref().is_some_and(|secret| secret.value),
                ),
            };
            let value = given
                .iter()
                .find(|(key, _)| key.value == name.value)
                .map(|(_, value)| *value);
            let Some(value) = value else {
                match default {
                    Some(default) if !default.contains("{{") => {
                        inputs.push((name.value.clone(), Replacement::Literal(default)));
                    }
                    Some(text) => {
                        // Written in the module: its problems are the module's, once.
                        let before = self.diagnostics.len();
                        let replacement = self.templated_input_default(
                            &TemplatedDefault {
                                input: name,
                                text: &text,
                                position: default_position,
                                secret,
                            },
                            uses,
                            &described,
                            &inputs,
                            module_source,
                        );
                        self.call_diagnostics(before, module_source, default_position);
                        inputs.push((name.value.clone(), replacement));
                    }
                    None if required => {
                        let message = format!(
                            "step `{}` does not give required input `{}` of module `{uses}`",
                            step.id.value, name.value
                        );
                        self.push(here(
                            Diagnostic::error("module-missing-input", message, Some(call_position))
                                .with_help(format!(
                                    "add `{}: ...` under `with` (declared on line {} of `{uses}`)",
                                    name.value, name.position.line
                                )),
                        ));
                        // Reported once: the module's templates do not report it again.
                        inputs.push((name.value.clone(), Replacement::Literal(String::new())));
                    }
                    None => inputs.push((name.value.clone(), Replacement::Literal(String::new()))),
                }
                continue;
            };
            let text = value.value.trim();
            if !text.contains("{{") {
                if !choices.is_empty() && !choices.iter().any(|choice| choice == text) {
                    let message = format!(
                        "`{text}` is not an allowed value of input `{}` of module `{uses}`",
                        name.value
                    );
                    self.push(here(
                        Diagnostic::error("module-input-choice", message, Some(value.position))
                            .with_help(format!("choices: {}", choices.join(", "))),
                    ));
                }
                if text.contains('"') {
                    let message = format!(
                        "a literal `with` value holds a `\"` (input `{}`)",
                        name.value
                    );
                    self.push(here(Diagnostic::error(
                        "module-input-quote",
                        message,
                        Some(value.position),
                    )));
                }
                inputs.push((name.value.clone(), Replacement::Literal(text.to_string())));
                continue;
            }
            let Some(path) = ONE_PATH
                .as_ref()
                .and_then(|one| one.captures(text))
                .and_then(|captures| captures.get(1))
                .map(|path| path.as_str().to_string())
            else {
                // Text mixed with tags, rendered in the caller's context where the module
                // reads the input: the same secret check for every var it reads.
                for read in var_reads(text) {
                    let path = format!("vars.{read}");
                    if !secret && self.is_secret_path(&path) {
                        self.push(here(secret_into_plain_input(&path, name, uses, value)));
                    }
                }
                inputs.push((name.value.clone(), Replacement::Template(text.to_string())));
                continue;
            };
            if !secret && self.is_secret_path(&path) {
                self.push(here(secret_into_plain_input(&path, name, uses, value)));
            }
            inputs.push((name.value.clone(), Replacement::Path(path)));
        }
        inputs
    }

    /// Whether `path` (`vars.x`, `steps.a.outputs.k`) reads a secret of the caller.
    fn is_secret_path(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('.').collect();
        match parts.as_slice() {
            ["vars", name] => self.vars.iter().any(|var| var.name == *name && var.secret),
            _ => false,
        }
    }

    /// Tags the diagnostics from `from` on that have no file with `source`'s.
    pub(super) fn in_module_file(&mut self, from: usize, source: Option<&Source>) {
        let Some(source) = source else { return };
        for diagnostic in &mut self.diagnostics[from..] {
            if diagnostic.file.is_none() {
                *diagnostic = diagnostic.clone().in_file(source);
            }
        }
    }
}

fn secret_into_plain_input(
    path: &str,
    name: &Spanned<String>,
    uses: &str,
    value: &Spanned<String>,
) -> Diagnostic {
    let message = format!(
        "secret `{path}` is passed into input `{}` of module `{uses}`, which is not `secret: true`",
        name.value
    );
    Diagnostic::error("module-secret-input", message, Some(value.position)).with_help(format!(
        "a secret goes only into an input declared `secret: true` (`{}` is declared on line {} of `{uses}`)",
        name.value, name.position.line
    ))
}

fn chain_text(chain: &[PathBuf], last: &str) -> String {
    let mut parts: Vec<String> = chain
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    parts.push(last.to_string());
    parts.join(" -> ")
}
