//! The validation driver: parse, then check the top level, variables, the step graph and
//! every step, collecting diagnostics; a `Runbook` comes out only when none is an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::Diagnostic;
use super::templates::{
    Scope, TemplateFacts, TemplateOwner, VarFacts, reads_own_outputs_unguarded,
};
use super::values::{is_env_name, is_identifier, parse_duration};
use crate::document::{self, OrderedMap, Position, RawHook, RawRunbook, Spanned};
use crate::model::{
    DurationValue, EnvEntry, Hook, Hooks, Inventory, Runbook, StepGraph, Template, find_cycles,
};
use crate::source::Source;
use crate::suggest::suggest;
use crate::template::TemplateEngine;

/// What validation found: the runbook when it is valid, and every diagnostic either way.
#[derive(Debug)]
pub struct Validation {
    pub runbook: Option<Runbook>,
    pub diagnostics: Vec<Diagnostic>,
    /// The module files read, each once, in the order first used.
    pub modules: Vec<super::ModuleFile>,
}

impl Validation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// State shared by the checks of one runbook.
pub(super) struct Validator<'a> {
    pub source: &'a Source,
    pub engine: TemplateEngine,
    pub diagnostics: Vec<Diagnostic>,
    pub vars: Vec<VarFacts>,
    pub step_ids: HashMap<String, usize>,
    pub step_names: Vec<String>,
    pub declared_outputs: Vec<Option<Vec<String>>>,
    /// Per step, the outputs declared `secret: true`: allowed only where secrets are.
    pub secret_outputs: Vec<Vec<String>>,
    pub graph: Option<StepGraph>,
    /// Every declared var name, so a default reading a var declared below it is told so.
    pub all_var_names: Vec<String>,
    /// Hosts, `ssh` and rollouts, read before the steps that name them.
    pub inventory: Inventory,
    /// Per step, whether it has `on`.
    pub steps_on: Vec<bool>,
    /// Per step, the hosts its `on` names (directly or by group), in inventory order.
    pub step_hosts: Vec<Vec<String>>,
    /// Every `host.vars.*` name some host defines.
    pub host_vars: Vec<String>,
    pub host_inputs: &'a HostInputs,
    /// Every name some step's `on` uses.
    pub on_names: Vec<String>,
    /// An inventory file could not be read: names it may hold are not reported unknown.
    pub inventory_failed: bool,
    /// The inventory files read, for diagnostics found after reading them.
    pub inventory_sources: Vec<Source>,
    /// The `snippets` map, with whether some script included each.
    pub(super) snippets: Vec<super::snippet::Snippet>,
    /// While a script with snippets inserted is checked: how its text maps to the file.
    pub(super) expansion: Option<super::expansion::Expansion>,
    /// The items of each step with `for_each`, by its id.
    pub(super) for_each: HashMap<String, Vec<String>>,
    /// While expanding: per step as written, its `for_each` items.
    pub(super) for_each_by_index: Vec<Option<Vec<String>>>,
    /// Per step (after expansion), the instance it is: (step id, item, index); empty when no
    /// step has `for_each`.
    pub(super) instances: Vec<Option<super::for_each_instance::Instance>>,
    /// The instance whose templates are being checked: `item` is replaced in them.
    pub(super) current_instance: Option<super::for_each_instance::Instance>,
    /// Per step (after expansion), how a module step's templates are rewritten.
    pub(super) step_rewrites: Vec<Vec<super::module_rewrite::Rewrite>>,
    /// Per step (after expansion), the module file it was written in.
    pub(super) step_sources: Vec<Option<Source>>,
    /// Per step (after expansion), the `env` and `defaults` of the modules it is written in.
    pub(super) step_settings: Vec<Vec<super::module_settings::ModuleSettings>>,
    /// Per step (after expansion), the `if` and `on` of the module calls it is inside.
    pub(super) step_effects: Vec<super::call_effects::CallEffects>,
    /// The module calls' `if` and `on` already checked (file, line, column): checked for each
    /// step of the module, reported once.
    pub(super) checked_call_parts: std::collections::HashSet<(String, usize, usize)>,
    /// The rewrites of the step being checked, or of templates outside steps.
    pub(super) current_rewrites: Vec<super::module_rewrite::Rewrite>,
    /// Module outputs read outside steps (hooks, summary).
    pub(super) top_rewrites: Vec<super::module_rewrite::Rewrite>,
    /// A step's templates are being checked.
    pub(super) in_step: bool,
    /// The file the templates being checked are written in, when it is not the runbook (a
    /// module's): positions inside a template are found in its text.
    pub(super) template_file: Option<Source>,
    /// Each module's own `snippets`, by its file: its steps include those, not the caller's.
    pub(super) module_snippets: HashMap<String, Vec<super::snippet::Snippet>>,
    /// The items of `list` vars, when known: a `for_each` reading one is expanded into them.
    pub(super) list_values: &'a ListValues,
    /// Each step whose `for_each` reads a `list` var.
    pub(super) for_each_vars: Vec<crate::model::ForEachVar>,
    /// Module texts to read instead of the files (a run's kept copies).
    pub(super) kept_modules: Option<&'a super::KeptModules>,
    /// The module files read, each once.
    pub(super) modules_read: Vec<super::ModuleFile>,
}

/// The items of `list` vars by name, given to validation once the vars are resolved, so that
/// `for_each: "{{vars.x}}"` is expanded into its instances (SPEC §13).
pub type ListValues = HashMap<String, Vec<String>>;

/// Inputs of a run that add hosts: `--inventory FILE`s, read after the runbook's own.
#[derive(Debug, Clone, Default)]
pub struct HostInputs {
    pub inventories: Vec<PathBuf>,
}

/// Validates a runbook file's text.
pub fn validate(source: &Source) -> Validation {
    validate_with(source, &HostInputs::default())
}

/// Validates a runbook file's text with the hosts of `--inventory` files.
pub fn validate_with(source: &Source, host_inputs: &HostInputs) -> Validation {
    validate_with_lists(source, host_inputs, &ListValues::new())
}

/// Validates a runbook file's text with the hosts of `--inventory` files and the items of
/// its `list` vars: each `for_each` over one of them is expanded into its instances.
pub fn validate_with_lists(
    source: &Source,
    host_inputs: &HostInputs,
    list_values: &ListValues,
) -> Validation {
    validate_all(source, host_inputs, list_values, None)
}

/// Validates a runbook kept with a run, reading the modules it uses from `kept` (the copies
/// kept with the run) instead of the disk.
pub fn validate_kept(
    source: &Source,
    host_inputs: &HostInputs,
    list_values: &ListValues,
    kept: &super::KeptModules,
) -> Validation {
    validate_all(source, host_inputs, list_values, Some(kept))
}

fn validate_all(
    source: &Source,
    host_inputs: &HostInputs,
    list_values: &ListValues,
    kept_modules: Option<&super::KeptModules>,
) -> Validation {
    let raw = match document::parse_reporting_all(source.text()) {
        Ok(raw) => raw,
        Err(errors) => {
            let diagnostics = errors
                .into_iter()
                .map(|error| {
                    // Also in the message itself, for logs that drop the snippet.
                    let message = match error.position {
                        Some(position) => format!(
                            "{} at line {}, column {}",
                            error.message, position.line, position.column
                        ),
                        None => error.message,
                    };
                    Diagnostic::error("yaml", message, error.position)
                        .with_length(error.length)
                        .with_optional_help(error.help)
                })
                .collect();
            return Validation {
                runbook: None,
                diagnostics,
                modules: Vec::new(),
            };
        }
    };
    let mut validator = Validator {
        source,
        engine: TemplateEngine::new(),
        diagnostics: Vec::new(),
        vars: Vec::new(),
        step_ids: HashMap::new(),
        step_names: Vec::new(),
        declared_outputs: Vec::new(),
        secret_outputs: Vec::new(),
        graph: None,
        all_var_names: Vec::new(),
        inventory: Inventory::default(),
        steps_on: Vec::new(),
        step_hosts: Vec::new(),
        host_vars: Vec::new(),
        host_inputs,
        on_names: Vec::new(),
        inventory_failed: false,
        inventory_sources: Vec::new(),
        snippets: Vec::new(),
        expansion: None,
        for_each: HashMap::new(),
        for_each_by_index: Vec::new(),
        instances: Vec::new(),
        current_instance: None,
        step_rewrites: Vec::new(),
        step_sources: Vec::new(),
        step_effects: Vec::new(),
        step_settings: Vec::new(),
        checked_call_parts: std::collections::HashSet::new(),
        current_rewrites: Vec::new(),
        top_rewrites: Vec::new(),
        in_step: false,
        template_file: None,
        module_snippets: HashMap::new(),
        list_values,
        for_each_vars: Vec::new(),
        kept_modules,
        modules_read: Vec::new(),
    };
    let runbook = validator.runbook(&raw);
    let modules = validator.modules_read;
    let mut diagnostics = validator.diagnostics;
    // The runbook's own problems first, then each inventory file's, each by position.
    diagnostics.sort_by_key(|diagnostic| {
        let position = diagnostic.position.unwrap_or_default();
        let file = diagnostic
            .file
            .as_ref()
            .map(|other| other.0.name().to_string());
        (diagnostic.severity, file, position.line, position.column)
    });
    let runbook = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(runbook)
    };
    Validation {
        runbook,
        diagnostics,
        modules,
    }
}

impl Validator<'_> {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Checks one template in `scope` and returns it as a model value.
    pub fn template(&mut self, value: &Spanned<String>, scope: &Scope) -> Template {
        let substituted;
        let value = if value.value.contains("{{") {
            let rewrites = if self.in_step {
                &self.current_rewrites
            } else {
                &self.top_rewrites
            };
            let mut text = super::module_rewrite::rewrite(&value.value, rewrites);
            if let Some(instance) = &self.current_instance {
                text = instance.substitute(&text);
            }
            if text == value.value {
                value
            } else {
                substituted = Spanned::new(text, value.position);
                &substituted
            }
        } else {
            value
        };
        let graph = self.graph.as_ref();
        let is_upstream = |target, step| graph.is_none_or(|graph| graph.is_upstream(target, step));
        let facts = TemplateFacts {
            source: self.template_file.as_ref().unwrap_or(self.source),
            expansion: self.expansion.as_ref(),
            for_each: &self.for_each,
            for_each_vars: &self.for_each_vars,
            engine: &self.engine,
            vars: &self.vars,
            all_var_names: &self.all_var_names,
            step_ids: &self.step_ids,
            step_names: &self.step_names,
            declared_outputs: &self.declared_outputs,
            secret_outputs: &self.secret_outputs,
            is_upstream: &is_upstream,
            steps_on: &self.steps_on,
            step_hosts: &self.step_hosts,
            graph,
            host_vars: &self.host_vars,
        };
        facts.template(value, scope, &mut self.diagnostics)
    }

    /// Whether the rollback script `text` of `step` reads its own outputs unguarded.
    pub fn reads_own_outputs_unguarded(&self, text: &str, step: usize) -> bool {
        reads_own_outputs_unguarded(&self.engine, text, &self.step_names[step])
    }

    /// The position in the file of byte `offset` inside a template value.
    pub fn locate(&self, value: &Spanned<String>, offset: usize) -> Position {
        super::templates::locate_through(self.source, self.expansion.as_ref(), value, offset)
    }

    pub fn duration(&mut self, value: Option<&Spanned<String>>, key: &str) -> Option<Duration> {
        match parse_duration(value?, key) {
            Ok(duration) => Some(duration),
            Err(diagnostic) => {
                self.push(diagnostic);
                None
            }
        }
    }

    fn runbook(&mut self, raw: &RawRunbook) -> Runbook {
        if raw.version.value != 1 {
            let message = format!(
                "unsupported `version` {}: this engine reads version 1",
                raw.version.value
            );
            self.push(
                Diagnostic::error("version", message, Some(raw.version.position))
                    .with_help("set `version: 1`"),
            );
        }
        if !is_identifier(&raw.name.value) {
            let message = format!("runbook `name` `{}` is not a valid name", raw.name.value);
            self.push(
                Diagnostic::error("invalid-name", message, Some(raw.name.position)).with_help(
                    "use lowercase letters, digits, `_` and `-`, starting with a letter or digit",
                ),
            );
        }
        if let Some(lock) = raw.lock.as_ref().filter(|lock| !is_identifier(&lock.value)) {
            let message = format!("runbook `lock` `{}` is not a valid name", lock.value);
            self.push(
                Diagnostic::error("invalid-lock", message, Some(lock.position)).with_help(
                    "use lowercase letters, digits, `_` and `-`, starting with a letter or digit",
                ),
            );
        }
        let concurrency = match &raw.concurrency {
            Some(value) if value.value < 1 || value.value > 10_000 => {
                let message = format!(
                    "`concurrency` must be between 1 and 10000, not {}",
                    value.value
                );
                self.push(Diagnostic::error(
                    "invalid-concurrency",
                    message,
                    Some(value.position),
                ));
                1
            }
            Some(value) => usize::try_from(value.value).unwrap_or(1),
            None => 4,
        };
        let vars = self.vars(raw.vars.as_ref());
        self.snippet_table(raw.snippets.as_ref());
        // Modules, then `for_each`: the rest sees ordinary steps.
        let with_modules = self.expand_modules(raw).map(|flattened| {
            let mut expanded = raw.clone();
            expanded.steps.value = flattened.iter().map(|flat| flat.step.clone()).collect();
            self.step_rewrites = flattened.iter().map(|flat| flat.rewrites.clone()).collect();
            self.step_effects = flattened.iter().map(|flat| flat.effects.clone()).collect();
            self.step_settings = flattened.iter().map(|flat| flat.settings.clone()).collect();
            self.step_sources = flattened.into_iter().map(|flat| flat.source).collect();
            expanded
        });
        let raw = with_modules.as_ref().unwrap_or(raw);
        let with_instances = self.expand_for_each(raw);
        let raw = with_instances.as_ref().unwrap_or(raw);
        self.inventory(raw);
        let timeout = self.duration_value(
            raw.timeout.as_ref(),
            "timeout",
            &Scope::new("timeout", TemplateOwner::Runbook),
        );
        let env = match &raw.env {
            Some(env) => self.env_entries(
                &env.value,
                "env",
                &Scope::new("env", TemplateOwner::Runbook).allow_secrets(),
            ),
            None => Vec::new(),
        };
        let steps = self.steps(raw);
        self.rollouts(raw.rollout.as_ref());
        let hooks = self.hooks(raw.hooks.as_ref());
        let rollback_verify = match &raw.rollback_verify {
            Some(probes) => {
                self.probes(&probes.value, "rollback_verify", TemplateOwner::Hook, None)
            }
            None => Vec::new(),
        };
        let summary = raw
            .summary
            .as_ref()
            .map(|summary| self.template(summary, &Scope::new("summary", TemplateOwner::Hook)));
        // Only a runbook with errors (a cycle) has no graph, and it is never handed out.
        // A module's outputs: checked like a hook's templates (any step may be read).
        for (key, value) in raw.outputs.iter().flat_map(|outputs| outputs.value.iter()) {
            self.template(
                value,
                &Scope::new(format!("outputs.{}", key.value), TemplateOwner::Hook),
            );
        }
        self.lint_unused_snippets();
        let has_graph = self.graph.is_some();
        let graph = self
            .graph
            .take()
            .unwrap_or_else(|| StepGraph::new(vec![Vec::new(); steps.len()]));
        let runbook = Runbook {
            name: raw.name.value.clone(),
            lock: raw
                .lock
                .as_ref()
                .map_or_else(|| raw.name.value.clone(), |lock| lock.value.clone()),
            description: raw
                .description
                .as_ref()
                .map(|description| description.value.clone()),
            source_name: self.source.name().to_string(),
            directory: self.source.directory(),
            vars,
            env,
            concurrency,
            timeout,
            steps,
            graph,
            hooks,
            rollback_verify,
            summary,
            inventory: std::mem::take(&mut self.inventory),
            for_each_vars: std::mem::take(&mut self.for_each_vars),
        };
        if has_graph {
            self.check_output_reads(&runbook);
            self.lint_after_skipped(raw, &runbook);
        }
        runbook
    }

    /// Checks an `env` mapping: variable names and templated values.
    pub fn env_entries(
        &mut self,
        env: &OrderedMap<Spanned<String>>,
        place: &str,
        scope: &Scope,
    ) -> Vec<EnvEntry> {
        for (name, _) in env.iter() {
            if !is_env_name(&name.value) {
                let message = format!(
                    "`{}` is not a valid environment variable name in `{place}`",
                    name.value
                );
                self.push(
                    Diagnostic::error("invalid-env-name", message, Some(name.position))
                        .with_help("use letters, digits and `_`, not starting with a digit"),
                );
            }
        }
        self.templated_mapping(env, place, scope)
    }

    /// A mapping of names to templates (`env`, HTTP headers), each value checked in its place.
    pub fn templated_mapping(
        &mut self,
        entries: &OrderedMap<Spanned<String>>,
        place: &str,
        scope: &Scope,
    ) -> Vec<EnvEntry> {
        entries
            .iter()
            .map(|(name, value)| {
                let value = self.template(value, &scope.at(format!("{place}.{}", name.value)));
                EnvEntry {
                    name: name.value.clone(),
                    value,
                }
            })
            .collect()
    }

    fn hooks(&mut self, raw: Option<&Spanned<document::RawHooks>>) -> Hooks {
        let Some(raw) = raw else {
            return Hooks::default();
        };
        let mut list = |hooks: &Option<Spanned<Vec<RawHook>>>, moment: &str| -> Vec<Hook> {
            let Some(hooks) = hooks else {
                return Vec::new();
            };
            hooks
                .value
                .iter()
                .enumerate()
                .map(|(index, hook)| self.hook(hook, &format!("hooks.{moment}[{index}]")))
                .collect()
        };
        Hooks {
            on_start: list(&raw.value.on_start, "on_start"),
            on_success: list(&raw.value.on_success, "on_success"),
            on_failure: list(&raw.value.on_failure, "on_failure"),
            always: list(&raw.value.always, "always"),
        }
    }

    fn hook(&mut self, hook: &RawHook, place: &str) -> Hook {
        let scope = Scope::new(format!("{place}.run"), TemplateOwner::Hook).shell();
        let run = self.script(&hook.run, place, &scope);
        let env = match &hook.env {
            Some(env) => self.env_entries(
                &env.value,
                &format!("{place}.env"),
                &Scope::new(place, TemplateOwner::Hook).allow_secrets(),
            ),
            None => Vec::new(),
        };
        let timeout = self
            .duration_value(
                hook.timeout.as_ref(),
                "timeout",
                &Scope::new(format!("{place}.timeout"), TemplateOwner::Hook),
            )
            .unwrap_or(DurationValue::Fixed(Duration::from_secs(60)));
        let name = hook
            .name
            .as_ref()
            .map_or_else(|| place.to_string(), |name| name.value.clone());
        Hook {
            name,
            run,
            env,
            timeout,
        }
    }

    /// Resolves `needs` names to indices, reporting unknown and self references.
    pub fn resolve_needs(&mut self, raw: &RawRunbook) -> Vec<Vec<usize>> {
        let mut all = Vec::new();
        for (index, step) in raw.steps.value.iter().enumerate() {
            let before = self.diagnostics.len();
            let mut needs = Vec::new();
            for need in step.needs.iter().flat_map(|needs| &needs.value) {
                match self.step_ids.get(&need.value) {
                    Some(&target) if needs.contains(&target) => {
                        let message = format!(
                            "step `{}` lists `{}` twice in `needs`",
                            step.id.value, need.value
                        );
                        self.push(Diagnostic::warning(
                            "duplicate-need",
                            message,
                            Some(need.position),
                        ));
                    }
                    Some(&target) => needs.push(target),
                    None => {
                        let message = format!(
                            "step `{}` needs unknown step `{}`",
                            step.id.value, need.value
                        );
                        let help = suggest(&need.value, self.step_names.iter().map(String::as_str))
                            .map(|best| format!("did you mean `{best}`?"));
                        self.push(
                            Diagnostic::error("unknown-need", message, Some(need.position))
                                .with_optional_help(help),
                        );
                    }
                }
            }
            all.push(needs);
            // A module's step: its `needs` are written in the module's (or its call's) file.
            let file = self.needs_file(index);
            self.in_module_file(before, file.as_ref());
            // A first step of a module has its call's `needs`: reported for one step only.
            if self
                .step_effects
                .get(index)
                .is_some_and(|effects| effects.needs_source.is_some())
            {
                let found: Vec<Diagnostic> = self.diagnostics.drain(before..).collect();
                for diagnostic in found {
                    let position = diagnostic.position.unwrap_or_default();
                    let file = diagnostic.file.as_ref().map_or_else(
                        || self.source.name().to_string(),
                        |file| file.0.name().to_string(),
                    );
                    if self
                        .checked_call_parts
                        .insert((file, position.line(), position.column()))
                    {
                        self.diagnostics.push(diagnostic);
                    }
                }
            }
        }
        all
    }

    /// Reports cycles with their full path; returns the graph when there are none.
    pub fn build_graph(&mut self, raw: &RawRunbook, needs: Vec<Vec<usize>>) {
        let cycles = find_cycles(&needs);
        for cycle in &cycles {
            let path: Vec<&str> = cycle
                .iter()
                .map(|&step| self.step_names[step].as_str())
                .collect();
            let first = &raw.steps.value[cycle[0]];
            let position = first
                .needs
                .as_ref()
                .map_or(first.id.position, |needs| needs.position);
            let message = if cycle.len() == 2 {
                format!("step `{}` needs itself: a dependency cycle", path[0])
            } else {
                format!(
                    "dependency cycle: {}",
                    path.iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                )
            };
            let mut diagnostic = Diagnostic::error("cycle", message, Some(position))
                .with_help("steps and their `needs` must form a DAG: remove one of these `needs`");
            let file = self.needs_file(cycle[0]);
            for &step in &cycle[1..cycle.len() - 1] {
                let other = &raw.steps.value[step];
                let at = other
                    .needs
                    .as_ref()
                    .map_or(other.id.position, |needs| needs.position);
                // Another file's place cannot be shown beside this one: named instead.
                diagnostic = if self
                    .needs_file(step)
                    .map(|source| source.name().to_string())
                    == file.as_ref().map(|source| source.name().to_string())
                {
                    diagnostic
                        .with_related(at, format!("`{}` is part of the cycle", other.id.value))
                } else {
                    diagnostic
                };
            }
            if let Some(file) = &file {
                diagnostic = diagnostic.in_file(file);
            }
            self.push(diagnostic);
        }
        if cycles.is_empty() {
            self.graph = Some(StepGraph::new(needs));
        }
    }

    pub fn position_or(&self, position: Position, fallback: Position) -> Position {
        if position.line == 0 {
            fallback
        } else {
            position
        }
    }
}

impl Validator<'_> {
    /// A duration that may be a template (SPEC §2): a literal is parsed now, naming `key` in
    /// the error; a template is checked in `scope` and parsed once its values are known.
    pub(super) fn duration_value(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
        scope: &Scope,
    ) -> Option<DurationValue> {
        let value = value?;
        if value.value.contains("{{") {
            return Some(DurationValue::Template(Box::new(
                self.template(value, scope),
            )));
        }
        self.duration(Some(value), key).map(DurationValue::Fixed)
    }
}
