//! Checks of every template: syntax, helpers, and each path it reads (declared var, step
//! upstream, secret kept out of argv), plus the unquoted-in-shell warning. The checks see the
//! runbook through `TemplateFacts`, which the validator lends them, not the validator itself.

use std::collections::HashMap;

use super::Diagnostic;
use super::expansion::Expansion;
use crate::document::{Position, Spanned};
use crate::model::Template;
use crate::source::Source;
use crate::suggest::suggest;
use crate::template::{
    HelperUse, ReferenceUsage, TemplateAnalysis, TemplateEngine, TemplateError, as_number, has_tag,
};

/// The facts about variables that template checks need.
#[derive(Debug, Clone)]
pub(super) struct VarFacts {
    pub name: String,
    pub secret: bool,
    /// The environment variable it is read from (`env:`), which is as secret as the var.
    pub env_source: Option<String>,
    /// For a var secret because its default reads a secret: what it reads (`vars.tok`).
    pub derived_from: Option<String>,
    /// Every allowed value is safe to paste into a shell unquoted.
    pub shell_safe: bool,
    /// `type: list`: read by `#each` and helpers, never pasted whole.
    pub list: bool,
}

/// What the checks know of the runbook so far, borrowed from the validator.
pub(super) struct TemplateFacts<'a> {
    pub source: &'a Source,
    /// The script being checked had snippets inserted: positions map back through it.
    pub expansion: Option<&'a Expansion>,
    /// The items of each step with `for_each`, by its id (its instances are `id[item]`).
    pub for_each: &'a HashMap<String, Vec<String>>,
    /// The steps whose `for_each` reads a `list` var (undecided: checked once, any item read).
    pub for_each_vars: &'a [crate::model::ForEachVar],
    pub engine: &'a TemplateEngine,
    /// The variables checked so far, in declaration order.
    pub vars: &'a [VarFacts],
    /// Every declared var name, so a default reading a var declared below it is told so.
    pub all_var_names: &'a [String],
    pub step_ids: &'a HashMap<String, usize>,
    pub step_names: &'a [String],
    pub declared_outputs: &'a [Option<Vec<String>>],
    /// Per step, the outputs declared `secret: true`: allowed only where secrets are.
    pub secret_outputs: &'a [Vec<String>],
    /// Whether step `target` (first) runs before step `step` (second) on every path; true for
    /// every pair while the graph is unknown (it has a cycle), so no second error is reported.
    pub is_upstream: &'a dyn Fn(usize, usize) -> bool,
    /// Per step, whether it has `on` (so its templates may read `host.*`).
    pub steps_on: &'a [bool],
    /// Per step, the hosts its `on` names: `steps.<id>.hosts.<host>` reads one's instance.
    pub step_hosts: &'a [Vec<String>],
    /// The step graph, once known (none while it has a cycle).
    pub graph: Option<&'a crate::model::StepGraph>,
    /// Every `host.vars.*` name some host defines.
    pub host_vars: &'a [String],
}

/// Whose template it is, which decides the paths it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TemplateOwner {
    /// A var default: `env`, `runbook`, `run` and the first `visible` vars.
    VarDefault { visible: usize },
    /// Runbook-level `env`: vars, env, runbook, run; no step outputs.
    Runbook,
    /// A step's template; `own` also allows the step's own outputs (verify, rollback).
    Step { step: usize, own: bool },
    /// Hooks and `rollback_verify`: any step, and `run.status`.
    Hook,
    /// A rollout's `verify`: run for each host of a batch, so `host.*` too.
    Rollout,
}

/// Where a template sits and what it may do.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub place: String,
    pub owner: TemplateOwner,
    /// Script text given to a shell: pasted values should be quoted.
    pub shell: bool,
    /// Secrets may appear only in `env` mappings (and HTTP headers), never in argv.
    pub secrets_allowed: bool,
}

impl Scope {
    pub fn new(place: impl Into<String>, owner: TemplateOwner) -> Scope {
        Scope {
            place: place.into(),
            owner,
            shell: false,
            secrets_allowed: false,
        }
    }

    pub fn shell(mut self) -> Scope {
        self.shell = true;
        self
    }

    pub fn allow_secrets(mut self) -> Scope {
        self.secrets_allowed = true;
        self
    }

    pub fn at(&self, place: impl Into<String>) -> Scope {
        Scope {
            place: place.into(),
            ..self.clone()
        }
    }
}

const ROOTS: [&str; 6] = ["vars", "env", "runbook", "run", "steps", "host"];

impl TemplateFacts<'_> {
    /// The position in the file of byte `offset` of `value`, through the snippet expansion
    /// when `value` is an expanded script.
    fn locate(&self, value: &Spanned<String>, offset: usize) -> Position {
        locate_through(self.source, self.expansion, value, offset)
    }

    /// Checks one template, adding its problems to `diagnostics`, and returns it as a model
    /// value.
    pub(super) fn template(
        &self,
        value: &Spanned<String>,
        scope: &Scope,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Template {
        let mut runtime_paths = Vec::new();
        if value.value.contains('\0') {
            let message = format!("`{}` contains a NUL byte", scope.place);
            diagnostics.push(Diagnostic::error("nul-byte", message, Some(value.position)));
        } else if has_tag(&value.value) {
            match self.engine.analyze(&value.value) {
                Ok(analysis) => {
                    runtime_paths = self.check_analysis(value, scope, &analysis, diagnostics);
                }
                Err(error) => {
                    let offset = match &error {
                        TemplateError::Syntax { offset, .. }
                        | TemplateError::Render { offset, .. }
                        | TemplateError::NulByte { offset } => *offset,
                    };
                    let position =
                        offset.map_or(value.position, |offset| self.locate(value, offset));
                    let message = format!("invalid template in `{}`: {error}", scope.place);
                    diagnostics.push(Diagnostic::error(
                        "template-syntax",
                        message,
                        Some(position),
                    ));
                }
            }
        }
        Template {
            text: value.value.clone(),
            place: scope.place.clone(),
            position: value.position,
            runtime_paths,
        }
    }

    /// Returns the paths the template reads that only a run knows.
    fn check_analysis(
        &self,
        value: &Spanned<String>,
        scope: &Scope,
        analysis: &TemplateAnalysis,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Vec<Vec<String>> {
        for helper in &analysis.helpers {
            if !TemplateEngine::helper_names().contains(&helper.name.as_str()) {
                let message = format!(
                    "unknown template helper `{}` in `{}`",
                    helper.name, scope.place
                );
                let help = suggest(&helper.name, TemplateEngine::helper_names().iter().copied())
                    .map_or_else(
                        || format!("helpers: {}", TemplateEngine::helper_names().join(", ")),
                        |best| format!("did you mean `{best}`?"),
                    );
                let position = self.locate(value, helper.span.start);
                diagnostics.push(
                    Diagnostic::error("unknown-helper", message, Some(position))
                        .with_length(helper.name.chars().count())
                        .with_help(help),
                );
            }
        }
        for helper in &analysis.helpers {
            if let Some(diagnostic) = literal_comparison(&value.value, helper, &scope.place) {
                let position = self.locate(value, helper.span.start);
                diagnostics.push(Diagnostic {
                    position: Some(position),
                    length: helper.name.chars().count(),
                    ..diagnostic
                });
            }
        }
        let mut runtime_paths = Vec::new();
        for reference in &analysis.references {
            let path: Vec<&str> = reference.path.iter().map(String::as_str).collect();
            if path.is_empty() {
                let text = value.value.get(reference.span.clone()).unwrap_or("this");
                let message = format!(
                    "`{text}` reads the whole template context in `{}`: every var, the engine's environment and step outputs, secrets included",
                    scope.place
                );
                let position = self.locate(value, reference.span.start);
                diagnostics.push(
                    Diagnostic::error("whole-context", message, Some(position))
                        .with_length(text.chars().count())
                        .with_help("name the value you need (`vars.<name>`, `env.<NAME>`, `steps.<id>.outputs.<key>`)"),
                );
                continue;
            }
            if matches!(path.first(), Some(&"steps") | Some(&"run")) {
                runtime_paths.push(reference.path.clone());
            }
            if let Some(diagnostic) = self.check_reference(&path, scope, reference.usage) {
                // Locating scans the source, so it is done only for a reference with a problem.
                let position = self.locate(value, reference.span.start);
                let length = value
                    .value
                    .get(reference.span.clone())
                    .map_or(0, |text| text.chars().count());
                // A module's template is checked rewritten: never past the line as written.
                let room = self
                    .source
                    .lines_from(position.line().max(1))
                    .next()
                    .map_or(0, |line| {
                        line.chars()
                            .count()
                            .saturating_sub(position.column().saturating_sub(1))
                    });
                let length = length.min(room);
                diagnostics.push(Diagnostic {
                    position: Some(position),
                    length,
                    ..diagnostic
                });
            }
        }
        runtime_paths
    }

    fn check_reference(
        &self,
        path: &[&str],
        scope: &Scope,
        usage: ReferenceUsage,
    ) -> Option<Diagnostic> {
        let dotted = path.join(".");
        let place = &scope.place;
        let error = |code, message: String| Some(Diagnostic::error(code, message, None));
        match path {
            ["vars", name, rest @ ..] => {
                let visible = match scope.owner {
                    TemplateOwner::VarDefault { visible } => visible,
                    _ => self.vars.len(),
                };
                let not_yet_seen = self.vars.iter().all(|var| var.name != *name);
                if not_yet_seen && self.all_var_names.iter().any(|var| var == name) {
                    return error("var-order", format!("`vars.{name}` is declared after the variable whose default uses it (`{place}`)"))
                        .map(|diagnostic| diagnostic.with_help("a default may use only variables declared above it: move it up"));
                }
                let Some(position) = self.vars.iter().position(|var| var.name == *name) else {
                    let help = suggest(name, self.vars.iter().map(|var| var.name.as_str()))
                        .map(|best| format!("did you mean `vars.{best}`?"));
                    let help =
                        help.or_else(|| Some(format!("declare it under `vars:` (`{name}: ...`)")));
                    if let Some(name) = name.strip_prefix(super::module_rewrite::TEMPLATED) {
                        return error(
                            "module-input-template",
                            format!(
                                "a module's `{place}` reads input `{name}` inside an expression, and the call gives it a template: only a whole `{{{{vars.{name}}}}}` takes a template"
                            ),
                        )
                        .map(|diagnostic| {
                            diagnostic.with_help(format!(
                                "pass it through `env:` (`NAME: \"{{{{vars.{name}}}}}\"`) and use \"$NAME\" in the script"
                            ))
                        });
                    }
                    if let Some(name) = name.strip_prefix(super::module_rewrite::OUTPUT_TEMPLATED) {
                        let name = name.replace("__", ".");
                        return error(
                            "module-output-template",
                            format!(
                                "`{place}` reads a module output that is a template (`{name}`) inside an expression: only a whole `{{{{steps.<call>.outputs.<key>}}}}` takes a template"
                            ),
                        )
                        .map(|diagnostic| {
                            diagnostic.with_help(
                                "pass it through `env:` (`NAME: \"{{steps.<call>.outputs.<key>}}\"`) and use \"$NAME\" in the script",
                            )
                        });
                    }
                    if let Some(name) = name.strip_prefix(super::module_rewrite::UNDECLARED) {
                        return error(
                            "module-undeclared-var",
                            format!(
                                "a module's `{place}` reads `vars.{name}`, which the module does not declare: a module sees only its own inputs"
                            ),
                        );
                    }
                    return Some(
                        Diagnostic::error(
                            "undefined-var",
                            format!("`vars.{name}` is not declared (used in `{place}`)"),
                            None,
                        )
                        .with_optional_help(help),
                    );
                };
                if position >= visible {
                    return error("var-order", format!("`vars.{name}` is declared after the variable whose default uses it (`{place}`)"))
                        .map(|diagnostic| diagnostic.with_help("a default may use only variables declared above it"));
                }
                let var = &self.vars[position];
                if !rest.is_empty() {
                    return error(
                        "var-path",
                        format!("`{dotted}`: variables are plain values, they have no fields"),
                    );
                }
                if var.list && usage != ReferenceUsage::HelperArgument {
                    return Some(
                        Diagnostic::error("list-pasted", format!("`vars.{name}` is a list, pasted whole into `{place}` (it would print `[a, b]`)"), None)
                            .with_help(format!("read its items with `{{{{#each vars.{name}}}}}{{{{quote this}}}} {{{{/each}}}}`, or all of it as JSON with `{{{{json vars.{name}}}}}`")),
                    );
                }
                if var.secret && !scope.secrets_allowed {
                    let env_name = name.to_ascii_uppercase();
                    let what = match &var.derived_from {
                        Some(source) => format!(
                            "`vars.{name}` carries secret `{source}` (its default reads it) and"
                        ),
                        None => format!("secret `vars.{name}`"),
                    };
                    return Some(
                        Diagnostic::error("secret-inlined", format!("{what} is pasted into `{place}`, where it would reach argv, logs or the terminal"), None)
                            .with_help(format!("pass it through `env:` (`{env_name}: \"{{{{vars.{name}}}}}\"`) and use \"${env_name}\" in the script")),
                    );
                }
                if scope.shell && usage == ReferenceUsage::Direct && !var.shell_safe {
                    return Some(
                        Diagnostic::warning("unquoted-template", format!("`{{{{vars.{name}}}}}` is pasted into a shell script without `quote` (`{place}`)"), None)
                            .with_help(format!("write `{{{{quote vars.{name}}}}}`, or pass it through `env:` and use \"$NAME\" in the script")),
                    );
                }
                None
            }
            ["vars"] => error(
                "var-path",
                format!(
                    "`vars` alone is not a value (in `{place}`): name a variable, `vars.<name>`"
                ),
            ),
            ["env", env_name] => {
                let source = self
                    .vars
                    .iter()
                    .find(|var| var.secret && var.env_source.as_deref() == Some(*env_name));
                match source {
                    Some(var) if !scope.secrets_allowed => Some(
                        Diagnostic::error("secret-inlined", format!("`env.{env_name}` is the source of secret `vars.{}` and is pasted into `{place}`, where it would reach argv, logs or the terminal", var.name), None)
                            .with_help(format!("pass it through `env:` (`{env_name}: \"{{{{vars.{}}}}}\"`) and use \"${env_name}\" in the script", var.name)),
                    ),
                    _ => None,
                }
            }
            ["env", ..] => error(
                "env-path",
                format!("`{dotted}` is not an environment variable path (in `{place}`)"),
            ),
            ["runbook", "name" | "dir" | "description"] => None,
            ["runbook", ..] => error(
                "runbook-path",
                format!("unknown template variable `{dotted}` in `{place}`"),
            )
            .map(|diagnostic| {
                diagnostic.with_help("`runbook` has `name`, `dir` and `description`")
            }),
            ["run", "id" | "started_at" | "timestamp" | "dir"] => None,
            ["run", "status"] if scope.owner == TemplateOwner::Hook => None,
            ["run", "status"] => error(
                "run-path",
                format!("`run.status` is known only in hooks (used in `{place}`)"),
            ),
            ["run", ..] => error(
                "run-path",
                format!("unknown template variable `{dotted}` in `{place}`"),
            )
            .map(|diagnostic| {
                diagnostic.with_help(
                    "`run` has `id`, `started_at`, `timestamp`, `dir` (and `status` in hooks)",
                )
            }),
            ["steps", id, rest @ ..] => self.check_step_reference(id, rest, &dotted, scope, usage),
            ["host", rest @ ..] => self.check_host_reference(rest, &dotted, scope),
            // A step with `for_each` has them replaced by each instance's values.
            ["item" | "item_index", ..] => error(
                "item-outside-for-each",
                format!("`{dotted}` is known only in a step with `for_each` (used in `{place}`)"),
            ),
            ["steps"] => error(
                "step-path",
                format!("`steps` alone is not a value (in `{place}`)"),
            ),
            [first, ..] => {
                let as_var = self
                    .vars
                    .iter()
                    .any(|var| var.name == *first)
                    .then(|| format!("did you mean `vars.{first}`?"));
                let help = as_var.or_else(|| {
                    suggest(first, ROOTS).map(|best| format!("did you mean `{best}`?"))
                });
                let help = help.unwrap_or_else(|| "template variables start with `vars.`, `env.`, `runbook.`, `run.` or `steps.`".into());
                Some(
                    Diagnostic::error(
                        "unknown-template-variable",
                        format!("unknown template variable `{dotted}` in `{place}`"),
                        None,
                    )
                    .with_help(help),
                )
            }
            [] => None,
        }
    }

    /// `steps.<id>.hosts.<host>...` (SPEC §12): one host's instance of a step with `on`, read
    /// where every instance has finished (the summary, hooks, a step on the engine's
    /// machine); returns the path after the host. A step with `on` read from there without
    /// naming a host is refused, as an instance reads its own host's instance as
    /// `steps.<id>` (`path`: the instance's path, `deploy.items.api` for an item's).
    fn check_host_instance<'p>(
        &self,
        id: &str,
        path: &str,
        target: usize,
        rest: &'p [&'p str],
        dotted: &str,
        scope: &Scope,
    ) -> Result<&'p [&'p str], Box<Diagnostic>> {
        let place = &scope.place;
        let target_on = self.steps_on.get(target).copied().unwrap_or(false);
        let reader_on = match scope.owner {
            TemplateOwner::Step { step, .. } => self.steps_on.get(step).copied().unwrap_or(false),
            TemplateOwner::Rollout => true,
            _ => false,
        };
        match rest {
            ["hosts", host, tail @ ..] if target_on => {
                let reader = match scope.owner {
                    TemplateOwner::Step { step, .. } => Some(step),
                    _ => None,
                };
                if reader_on && reader.is_none() {
                    return Err(Box::new(Diagnostic::error(
                        "host-instance-in-instance",
                        format!("`{dotted}` is read in `{place}`, which runs on a host: there `steps.{path}` is its own host's instance"),
                        None,
                    )
                    .with_help(format!("read `steps.{path}.outputs.<key>`, or name another host's instance in the `summary`, a hook or a step without `on`"))));
                }
                let hosts = self.step_hosts.get(target).map(Vec::as_slice).unwrap_or_default();
                if !hosts.iter().any(|known| known == host) {
                    let help = suggest(host, hosts.iter().map(String::as_str)).map_or_else(
                        || format!("`{id}` runs on: {}", hosts.join(", ")),
                        |best| format!("did you mean `{best}`?"),
                    );
                    return Err(Box::new(Diagnostic::error(
                        "unknown-host-instance",
                        format!("`{dotted}` names `{host}`, not a host step `{id}` runs on (in `{place}`)"),
                        None,
                    )
                    .with_help(help)));
                }
                if let (true, Some(reader)) = (reader_on, reader) {
                    self.check_instance_reads_instance(id, target, host, reader, dotted, place)?;
                }
                Ok(tail)
            }
            ["hosts", ..] => Err(Box::new(Diagnostic::error(
                "host-instance-without-on",
                format!("`{dotted}`: step `{id}` has no `on`, so it has no instance per host (in `{place}`)"),
                None,
            )
            .with_help(format!("use `steps.{path}.outputs.<key>` or `steps.{path}.status`")))),
            _ if target_on && let TemplateOwner::Step { step, .. } = scope.owner => {
                // An instance reads its own host's instance: there must be one.
                let hosts = self.step_hosts.get(target).map(Vec::as_slice).unwrap_or_default();
                let missing = self
                    .step_hosts
                    .get(step)
                    .and_then(|reader| reader.iter().find(|host| !hosts.contains(host)));
                match missing {
                    Some(host) if reader_on && step != target => Err(Box::new(Diagnostic::error(
                        "no-instance-on-host",
                        format!("`{dotted}` is read on {host}, where step `{id}` does not run: an instance reads its own host's instance (in `{place}`)"),
                        None,
                    )
                    .with_help(format!("run `{}` on hosts of `{id}`, or read the value in a step without `on` (`steps.{path}.hosts.<host>.outputs.<key>`)", self.step_names[step])))),
                    _ if !reader_on => Err(Box::new(Diagnostic::error(
                        "host-instance-path",
                        format!("step `{id}` runs once per host: `{dotted}` does not say which (in `{place}`)"),
                        None,
                    )
                    .with_help(format!("read one host's instance: `steps.{path}.hosts.<host>.outputs.<key>`")))),
                    _ => Ok(rest),
                }
            }
            _ if target_on && !reader_on => Err(Box::new(Diagnostic::error(
                "host-instance-path",
                format!("step `{id}` runs once per host: `{dotted}` does not say which (in `{place}`)"),
                None,
            )
            .with_help(format!("read one host's instance: `steps.{path}.hosts.<host>.outputs.<key>`")))),
            _ => Ok(rest),
        }
    }

    /// An instance reads another instance (`steps.<id>.hosts.<host>` in a step with `on`):
    /// each of the reader's instances must wait for it, whatever `--limit` selects.
    fn check_instance_reads_instance(
        &self,
        id: &str,
        target: usize,
        host: &str,
        reader: usize,
        dotted: &str,
        place: &str,
    ) -> Result<(), Box<Diagnostic>> {
        let Some(graph) = self.graph else {
            // A cycle was reported: nothing more to say here.
            return Ok(());
        };
        let placements = super::instance_upstream::Placements {
            graph,
            steps_on: self.steps_on,
            step_hosts: self.step_hosts,
        };
        let name = &self.step_names[reader];
        let reader_hosts = self
            .step_hosts
            .get(reader)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(waiting) = reader_hosts
            .iter()
            .find(|&reader_host| !placements.is_upstream(target, host, reader, reader_host))
        else {
            return Ok(());
        };
        let (why, help) = if graph.is_upstream(target, reader) {
            (
                format!(
                    "`{name}@{waiting}` does not wait for `{id}@{host}`: instances of steps on the same hosts wait only for their own host's (`--limit` can make the hosts the same)"
                ),
                format!(
                    "make `{name}` need a step without `on` that needs `{id}`, or read the value in a step without `on`"
                ),
            )
        } else {
            (
                format!("`{id}` is not upstream of `{name}`"),
                format!("add `{id}` to the `needs` of `{name}`"),
            )
        };
        Err(Box::new(
            Diagnostic::error(
                "host-instance-not-upstream",
                format!("`{dotted}` is read in `{place}` before it is known: {why}"),
                None,
            )
            .with_help(help),
        ))
    }

    /// `host.*` (SPEC §12): only where a template is rendered for one host.
    fn check_host_reference(
        &self,
        rest: &[&str],
        dotted: &str,
        scope: &Scope,
    ) -> Option<Diagnostic> {
        let place = &scope.place;
        let on_host = match scope.owner {
            TemplateOwner::Step { step, .. } => self.steps_on.get(step).copied().unwrap_or(false),
            TemplateOwner::Rollout => true,
            _ => false,
        };
        if !on_host {
            let (message, help) = match scope.owner {
                TemplateOwner::Step { step, .. } => (
                    format!(
                        "`{dotted}` is used in `{place}`, but step `{}` has no `on`: it runs on the engine's machine, where there is no host",
                        self.step_names[step]
                    ),
                    "add `on: HOST_OR_GROUP` to the step, or use a variable",
                ),
                _ => (
                    format!(
                        "`{dotted}` is used in `{place}`: `host` exists only in steps with `on` and in a rollout's `verify`"
                    ),
                    "use a variable here",
                ),
            };
            return Some(Diagnostic::error("host-outside-on", message, None).with_help(help));
        }
        let unknown = |help: String| {
            Some(
                Diagnostic::error(
                    "host-path",
                    format!("unknown template variable `{dotted}` in `{place}`"),
                    None,
                )
                .with_help(help),
            )
        };
        const FIELDS: [&str; 6] = ["name", "address", "port", "user", "groups", "vars"];
        match rest {
            ["name" | "address" | "port" | "user" | "groups"] => None,
            ["vars", name] => {
                if self.host_vars.iter().any(|known| known == name) {
                    return None;
                }
                let help = suggest(name, self.host_vars.iter().map(String::as_str)).map_or_else(
                    || "define it under a host's `vars:`".to_string(),
                    |best| format!("did you mean `host.vars.{best}`?"),
                );
                Some(
                    Diagnostic::error(
                        "undefined-host-var",
                        format!("`{dotted}` is not defined by any host (used in `{place}`)"),
                        None,
                    )
                    .with_help(help),
                )
            }
            [first, ..] => unknown(suggest(first, FIELDS).map_or_else(
                || {
                    "`host` has `name`, `address`, `port`, `user`, `groups` and `vars.NAME`"
                        .to_string()
                },
                |best| format!("did you mean `host.{best}`?"),
            )),
            [] => unknown("`host` alone is not a value: name a field, e.g. `host.address`".into()),
        }
    }

    fn check_step_reference(
        &self,
        id: &str,
        rest: &[&str],
        dotted: &str,
        scope: &Scope,
        usage: ReferenceUsage,
    ) -> Option<Diagnostic> {
        let place = &scope.place;
        // `steps.<call>.<step>...` reads a module's step `call.step`; `steps.<id>.items.<item>`
        // reads instance `id[item]` of a step with `for_each`.
        let segments: Vec<&str> = std::iter::once(id).chain(rest.iter().copied()).collect();
        let mut resolved = None;
        for length in 1..=segments.len() {
            let candidate = segments[..length].join(".");
            if self.step_ids.contains_key(&candidate) {
                resolved = Some((candidate.clone(), &rest[length - 1..], candidate));
                break;
            }
            // One instance of a module call whose items are not known yet: checked with them.
            if segments.get(length) == Some(&"items")
                && self
                    .for_each_vars
                    .iter()
                    .any(|each| each.module_call && !each.decided && each.step == candidate)
            {
                return None;
            }
            let Some(items) = self.for_each.get(&candidate) else {
                continue;
            };
            match &segments[length..] {
                ["items", item, tail @ ..] => {
                    // Items not known yet (a `list` var without a value): any is accepted.
                    let undecided = self
                        .for_each_vars
                        .iter()
                        .any(|each| each.step == candidate && !each.decided);
                    let item = if undecided {
                        super::for_each_instance::ANY_ITEM
                    } else {
                        item
                    };
                    if !items.iter().any(|known| known == item) {
                        return Some(
                            Diagnostic::error(
                                "unknown-item",
                                format!("`{dotted}` names `{item}`, not an item of `{candidate}`'s `for_each` (in `{place}`)"),
                                None,
                            )
                            .with_help(if items.is_empty() { format!("`{candidate}` has no items") } else { format!("items: {}", items.join(", ")) }),
                        );
                    }
                    let instance = format!("{candidate}[{item}]");
                    resolved = Some((candidate, tail, instance));
                }
                // A module call with `for_each` read through one of its steps.
                _ if (length + 1..=segments.len()).any(|longer| {
                    let longer = segments[..longer].join(".");
                    self.step_ids.contains_key(&longer) || self.for_each.contains_key(&longer)
                }) =>
                {
                    continue;
                }
                _ => {
                    return Some(
                        Diagnostic::error(
                            "for-each-path",
                            format!("step `{candidate}` runs once per item of its `for_each`: `{dotted}` does not say which (in `{place}`)"),
                            None,
                        )
                        .with_help(format!("read one instance: `steps.{candidate}.items.<item>.outputs.<key>`")),
                    );
                }
            }
            break;
        }
        let (id_text, rest, instance_id) =
            resolved.unwrap_or_else(|| (id.to_string(), rest, id.to_string()));
        let id = id_text.as_str();
        let Some(&target) = self.step_ids.get(&instance_id) else {
            let help = suggest(id, self.step_names.iter().map(String::as_str))
                .map(|best| format!("did you mean `steps.{best}`?"));
            return Some(
                Diagnostic::error(
                    "unknown-step-reference",
                    format!("`{dotted}` names unknown step `{id}` (in `{place}`)"),
                    None,
                )
                .with_optional_help(help),
            );
        };
        // How the instance is named in a path: `deploy`, or `deploy.items.api`.
        let path = segments[..segments.len() - rest.len()].join(".");
        let rest = match self.check_host_instance(id, &path, target, rest, dotted, scope) {
            Ok(rest) => rest,
            Err(diagnostic) => return Some(*diagnostic),
        };
        let visible = match scope.owner {
            TemplateOwner::Hook | TemplateOwner::Rollout => true,
            TemplateOwner::Step { step, own } => {
                (own && step == target) || (self.is_upstream)(target, step)
            }
            TemplateOwner::Runbook | TemplateOwner::VarDefault { .. } => false,
        };
        if !visible {
            let message = match scope.owner {
                TemplateOwner::Step { step, .. } => format!(
                    "`{dotted}` is read by step `{}`, but `{id}` is not upstream of it (in `{place}`)",
                    self.step_names[step]
                ),
                _ => format!(
                    "`{dotted}` cannot be read in `{place}`: step values exist only in steps and hooks"
                ),
            };
            let help = match scope.owner {
                TemplateOwner::Step { .. } => Some(format!(
                    "add `{id}` to `needs`, so it has finished before this step starts"
                )),
                _ => None,
            };
            return Some(
                Diagnostic::error("step-not-upstream", message, None).with_optional_help(help),
            );
        }
        match rest {
            ["status"] => None,
            ["outputs", key] => {
                if let Some(Some(declared)) = self.declared_outputs.get(target)
                    && !declared.iter().any(|output| output == key)
                {
                    let help = suggest(key, declared.iter().map(String::as_str)).map_or_else(
                        || format!("`{id}` declares outputs: {}", declared.join(", ")),
                        |best| format!("did you mean `{best}`?"),
                    );
                    return Some(
                        Diagnostic::error(
                            "unknown-output",
                            format!("step `{id}` does not declare output `{key}` (in `{place}`)"),
                            None,
                        )
                        .with_help(help),
                    );
                }
                if !scope.secrets_allowed
                    && self
                        .secret_outputs
                        .get(target)
                        .is_some_and(|secret| secret.iter().any(|output| output == key))
                {
                    let env_name = key.to_ascii_uppercase();
                    return Some(
                        Diagnostic::error("secret-inlined", format!("secret output `{dotted}` is pasted into `{place}`, where it would reach argv, logs or the terminal"), None)
                            .with_help(format!("pass it through `env:` (`{env_name}: \"{{{{{dotted}}}}}\"`) and use \"${env_name}\" in the script")),
                    );
                }
                if scope.shell && usage == ReferenceUsage::Direct {
                    return Some(
                        Diagnostic::warning("unquoted-template", format!("`{{{{{dotted}}}}}` is pasted into a shell script without `quote` (`{place}`)"), None)
                            .with_help(format!("write `{{{{quote {dotted}}}}}`")),
                    );
                }
                None
            }
            _ => Some(
                Diagnostic::error(
                    "step-path",
                    format!("`{dotted}` is not a step value (in `{place}`)"),
                    None,
                )
                .with_help(format!(
                    "use `steps.{id}.outputs.<key>` or `steps.{id}.status`"
                )),
            ),
        }
    }
}

/// What a var default reads that makes the var itself secret: a secret var, or the
/// environment variable a secret is read from. `None` for a default free of secrets.
pub(super) fn secret_read_by_default(
    engine: &TemplateEngine,
    vars: &[VarFacts],
    text: &str,
) -> Option<String> {
    if !has_tag(text) {
        return None;
    }
    let analysis = engine.analyze(text).ok()?;
    analysis
        .references
        .iter()
        .find_map(|reference| match reference.path.as_slice() {
            [root, name, ..] if root == "vars" => vars
                .iter()
                .find(|var| var.secret && &var.name == name)
                .map(|var| {
                    var.derived_from
                        .clone()
                        .unwrap_or_else(|| format!("vars.{}", var.name))
                }),
            [root, name] if root == "env" => vars
                .iter()
                .find(|var| var.secret && var.env_source.as_ref() == Some(name))
                .map(|_| format!("env.{name}")),
            _ => None,
        })
}

/// Whether a rollback script reads the outputs of its own step (`own`) other than through a
/// helper such as `default` that tolerates a missing value.
pub(super) fn reads_own_outputs_unguarded(engine: &TemplateEngine, text: &str, own: &str) -> bool {
    if !has_tag(text) {
        return false;
    }
    let Ok(analysis) = engine.analyze(text) else {
        return false;
    };
    analysis.references.iter().any(|reference| {
        reference.path.len() >= 3
            && reference.path[0] == "steps"
            && reference.path[1] == own
            && reference.path[2] == "outputs"
            && reference.usage != ReferenceUsage::HelperArgument
            // `quote (default steps.x.outputs.y "")`: quoted, but guarded by `default`.
            && !text[..reference.span.start].trim_end().ends_with("default")
    })
}

/// The position in `source` of byte `offset` inside a template value.
/// A `gt`/`gte`/`lt`/`lte` whose two sides are literals that can only compare as text (a
/// warning: `"abc" < "abd"` is text order), or a number against a text (an error: it always
/// fails to render).
fn literal_comparison(text: &str, helper: &HelperUse, place: &str) -> Option<Diagnostic> {
    if !matches!(helper.name.as_str(), "gt" | "gte" | "lt" | "lte") {
        return None;
    }
    let mut rest = text.get(helper.span.end..)?;
    let mut sides = Vec::with_capacity(2);
    for _ in 0..2 {
        let (literal, after) = literal_argument(rest)?;
        sides.push(literal);
        rest = after;
    }
    let (left, right) = (&sides[0], &sides[1]);
    let name = &helper.name;
    match (as_number(left).is_some(), as_number(right).is_some()) {
        (false, false) => Some(
            Diagnostic::warning(
                "text-comparison",
                format!("`{name}` compares `{left}` with `{right}` as text, not as numbers (`{place}`)"),
                None,
            )
            .with_help("both sides are literal texts, so the answer never changes: compare a value, or write numbers"),
        ),
        (true, true) => None,
        _ => Some(Diagnostic::error(
            "number-with-text",
            format!("cannot compare `{left}` with `{right}`: one is a number and the other is not (`{place}`)"),
            None,
        )),
    }
}

/// The literal argument at the start of `text` (after blanks) and the text after it: a
/// quoted string, or a bare number or `true`/`false`/`null`. `None` for a path or a
/// subexpression, whose value only rendering knows.
fn literal_argument(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    let quote = text.chars().next()?;
    if matches!(quote, '"' | '\'') {
        let mut characters = text.char_indices().skip(1);
        let mut literal = String::new();
        while let Some((index, character)) = characters.next() {
            match character {
                '\\' => literal.extend(characters.next().map(|(_, escaped)| escaped)),
                _ if character == quote => return Some((literal, &text[index + 1..])),
                _ => literal.push(character),
            }
        }
        return None;
    }
    let end = text
        .find(|character: char| character.is_whitespace() || matches!(character, ')' | '}' | '~'))
        .unwrap_or(text.len());
    let word = &text[..end];
    let literal = as_number(word).is_some() || matches!(word, "true" | "false" | "null");
    literal.then(|| (word.to_owned(), &text[end..]))
}

/// `locate` for a value that may be a script with snippets inserted: an offset inside an
/// inserted snippet is the place of its `{{> name}}`, others are moved back to the text as
/// written.
pub(super) fn locate_through(
    source: &Source,
    expansion: Option<&Expansion>,
    value: &Spanned<String>,
    offset: usize,
) -> Position {
    match expansion.filter(|expansion| expansion.expanded == value.value) {
        Some(expansion) => locate(
            source,
            &expansion.original,
            expansion.original_offset(offset),
        ),
        None => locate(source, value, offset),
    }
}

pub(super) fn locate(source: &Source, value: &Spanned<String>, offset: usize) -> Position {
    let text = &value.value;
    let offset = offset.min(text.len());
    let line_index = text[..offset].matches('\n').count();
    let line_start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
    let template_line = text[line_start..].split('\n').next().unwrap_or_default();
    let column_in_line = text[line_start..offset].chars().count();
    let source_lines: Vec<&str> = source
        .lines_from(value.position.line())
        .take(line_index + 64)
        .collect();
    let start_line = value.position.line().max(1);
    if line_index == 0 {
        // A plain or quoted scalar on the key's line.
        if let Some(line) = source_lines.first() {
            let rest: String = line
                .chars()
                .skip(value.position.column().saturating_sub(1))
                .collect();
            let quoted = rest.starts_with('"') || rest.starts_with('\'');
            if rest.contains(template_line.trim())
                && !rest.starts_with('|')
                && !rest.starts_with('>')
            {
                return Position::new(
                    start_line,
                    value.position.column() + usize::from(quoted) + column_in_line,
                );
            }
        }
    }
    // A block scalar: find the line holding this template line's text.
    let trimmed = template_line.trim_start();
    let leading = template_line.len() - trimmed.len();
    for (index, line) in source_lines.iter().enumerate() {
        let line = line.trim_end();
        if !trimmed.trim_end().is_empty() && line.ends_with(trimmed.trim_end()) {
            let byte_start = line.len() - trimmed.trim_end().len();
            let inside = text.get(line_start + leading..offset).unwrap_or_default();
            let column = line[..byte_start].chars().count() + 1 + inside.chars().count();
            return Position::new(start_line + index, column);
        }
    }
    value.position
}
