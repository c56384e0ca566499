//! Checks of `steps`: ids, needs, the DAG, and each step's action, timing, retry,
//! compensation and templates.

use std::collections::HashMap;
use std::time::Duration;

use super::Diagnostic;
use super::templates::{Scope, TemplateOwner};
use super::validator::Validator;
use super::values::is_identifier;
use crate::document::{
    AfterSkipped, OnTimeout, OutputField, RawCompensation, RawDefaults, RawRetry, RawRunbook,
    RawStep, Spanned,
};
use crate::model::{
    Action, Compensation, DurationValue, PromisedOutput, RetryPolicy, Shell, Step, StepId, Template,
};

const DEFAULT_SHELL: [&str; 6] = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"];
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The timing every step gets unless it says otherwise.
struct TimingDefaults {
    timeout: Option<DurationValue>,
    grace: Option<DurationValue>,
    retry: RetryPolicy,
}

/// What every step is checked against, read once for the runbook.
#[derive(Clone, Copy)]
struct StepContext<'a> {
    defaults: Option<&'a RawDefaults>,
    timing: &'a TimingDefaults,
    rollout_groups: &'a [String],
}

impl Validator<'_> {
    pub(super) fn steps(&mut self, raw: &RawRunbook) -> Vec<Step> {
        if raw.steps.value.is_empty() {
            self.push(
                Diagnostic::error("no-steps", "`steps` is empty", Some(raw.steps.position))
                    .with_help("a runbook needs at least one step"),
            );
            return Vec::new();
        }
        self.register_ids(raw);
        let mut needs = self.resolve_needs(raw);
        self.declared_outputs = raw
            .steps
            .value
            .iter()
            .map(|step| {
                step.outputs.as_ref().map(|outputs| {
                    outputs
                        .value
                        .iter()
                        .map(|output| output.value.0.name.value.clone())
                        .collect()
                })
            })
            .collect();
        self.secret_outputs = raw
            .steps
            .value
            .iter()
            .map(|step| {
                step.outputs
                    .iter()
                    .flat_map(|outputs| &outputs.value)
                    .map(|output| &output.value.0)
                    .filter(|output| output.secret.as_ref().is_some_and(|secret| secret.value))
                    .map(|output| output.name.value.clone())
                    .collect()
            })
            .collect();
        self.build_graph(raw, needs.clone());
        let defaults = raw.defaults.as_ref().map(|defaults| &defaults.value);
        let timing = self.timing_defaults(defaults);
        let rollout_groups: Vec<String> = raw
            .rollout
            .iter()
            .flat_map(|rollout| rollout.value.iter())
            .map(|(group, _)| group.value.clone())
            .collect();
        let steps: Vec<Step> = raw
            .steps
            .value
            .iter()
            .enumerate()
            .map(|(index, step_raw)| {
                let context = StepContext {
                    defaults,
                    timing: &timing,
                    rollout_groups: &rollout_groups,
                };
                self.current_instance = self.instances.get(index).cloned().flatten();
                self.current_rewrites = self.step_rewrites.get(index).cloned().unwrap_or_default();
                self.in_step = true;
                let before = self.diagnostics.len();
                let source = self.step_sources.get(index).cloned().flatten();
                // A module's step includes the module's snippets.
                let module_snippets = source.as_ref().map(|source| {
                    let table = self
                        .module_snippets
                        .get(source.name())
                        .cloned()
                        .unwrap_or_default();
                    std::mem::replace(&mut self.snippets, table)
                });
                self.template_file.clone_from(&source);
                let mut step =
                    self.step(index, step_raw, std::mem::take(&mut needs[index]), &context);
                self.template_file = None;
                if let Some(own) = module_snippets {
                    self.snippets = own;
                }
                self.in_module_file(before, source.as_ref());
                self.apply_module_settings(index, step_raw, &mut step);
                self.call_conditions(index, &mut step);
                self.in_step = false;
                self.current_instance = None;
                self.current_rewrites = Vec::new();
                step
            })
            .collect();
        self.check_pivots(raw);
        steps
    }

    fn register_ids(&mut self, raw: &RawRunbook) {
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (index, step) in raw.steps.value.iter().enumerate() {
            let before = self.diagnostics.len();
            self.register_id(raw, index, step, &mut first_seen);
            // A module's step: its id is written in the module's file.
            let file = self.id_file(index);
            self.in_module_file(before, file.as_ref());
        }
    }

    fn register_id<'r>(
        &mut self,
        raw: &'r RawRunbook,
        index: usize,
        step: &'r crate::document::RawStep,
        first_seen: &mut HashMap<&'r str, usize>,
    ) {
        let id = step.id.value.as_str();
        // An instance `id[item]` of a step with `for_each`: its id as written is checked.
        let written = match self.instances.get(index) {
            Some(Some(instance)) => instance.step.as_str(),
            _ => id,
        };
        // A module's step `call.step`: the part written in the module.
        let written = written.rsplit('.').next().unwrap_or(written);
        if !is_identifier(written) {
            let message = format!("step id `{id}` is not a valid id");
            self.push(
                Diagnostic::error("invalid-step-id", message, Some(step.id.position)).with_help(
                    "use lowercase letters, digits, `_` and `-`, starting with a letter or digit",
                ),
            );
        }
        if let Some(&first) = first_seen.get(id) {
            let first_position = raw.steps.value[first].id.position;
            let message = format!(
                "duplicate step id `{id}` (first used on line {})",
                first_position.line
            );
            self.push(
                Diagnostic::error("duplicate-id", message, Some(step.id.position))
                    .with_label("used again here")
                    .with_related(first_position, "first used here")
                    .with_help("step ids must be unique"),
            );
        } else {
            first_seen.insert(id, index);
            self.step_ids.insert(id.to_string(), index);
        }
        self.step_names.push(id.to_string());
    }

    fn step(
        &mut self,
        index: usize,
        raw: &RawStep,
        needs: Vec<usize>,
        context: &StepContext<'_>,
    ) -> Step {
        let StepContext {
            defaults,
            timing,
            rollout_groups,
        } = *context;
        let id = raw.id.value.clone();
        let place = format!("steps[{index}]");
        let owner = TemplateOwner::Step {
            step: index,
            own: false,
        };
        let own = TemplateOwner::Step {
            step: index,
            own: true,
        };
        let name_template = raw
            .name
            .as_ref()
            .filter(|name| name.value.contains("{{"))
            .map(|name| self.template(name, &Scope::new(format!("{place}.name"), owner)));
        let action = self.action(raw, &place, index);
        let condition = raw
            .condition
            .as_ref()
            .map(|condition| self.template(condition, &Scope::new(format!("{place}.if"), owner)));
        let shell = self.shell(
            raw.shell
                .as_deref()
                .or(defaults.and_then(|defaults| defaults.shell.as_ref())),
            &place,
            owner,
        );
        let env = match &raw.env {
            Some(env) => self.env_entries(
                &env.value,
                &format!("{place}.env"),
                &Scope::new(&place, owner).allow_secrets(),
            ),
            None => Vec::new(),
        };
        let cwd_value = raw
            .cwd
            .as_deref()
            .or(defaults.and_then(|defaults| defaults.cwd.as_ref()));
        let cwd =
            cwd_value.map(|cwd| self.template(cwd, &Scope::new(format!("{place}.cwd"), owner)));
        let timeout = match &raw.timeout {
            Some(timeout) => self.duration_value(
                Some(timeout),
                "timeout",
                &Scope::new(format!("{place}.timeout"), owner),
            ),
            // A gate waits for a person: the steps' default limit is not its deadline.
            None if raw.approve.is_some() => None,
            None => timing.timeout.clone(),
        };
        let grace = match &raw.grace {
            Some(grace) => self.duration_value(
                Some(grace),
                "grace",
                &Scope::new(format!("{place}.grace"), owner),
            ),
            None => timing.grace.clone(),
        };
        let retry = match &raw.retry {
            Some(retry) => self.retry(
                Some(retry),
                &Scope::new(format!("{place}.retry.delay"), owner),
            ),
            None => timing.retry.clone(),
        };
        let verify = match &raw.verify {
            Some(probes) => self.probes(
                &probes.value,
                &format!("{place}.verify"),
                own,
                raw.shell.as_deref(),
            ),
            None => Vec::new(),
        };
        let rollback = raw.rollback.as_ref().map(|rollback| {
            Box::new(self.compensation(
                &Spanned::new(&rollback.value.0, rollback.position),
                &place,
                index,
                raw,
            ))
        });
        let outputs = raw
            .outputs
            .as_ref()
            .map(|outputs| self.promised_outputs(&outputs.value, &id));
        if raw.pivot.as_ref().is_some_and(|pivot| pivot.value)
            && raw.allow_failure.as_ref().is_some_and(|allow| allow.value)
        {
            let message = format!(
                "step `{id}` is a `pivot` and has `allow_failure`: a point of no return must succeed"
            );
            self.push(Diagnostic::error(
                "pivot-allow-failure",
                message,
                raw.pivot.as_ref().map(|pivot| pivot.position),
            ));
        }
        self.lint_step(raw, &place);
        let before = self.diagnostics.len();
        let on = self.placement(raw, rollout_groups);
        // A module call's `on`: its problems are in the call's file.
        if let (Some(on_source), Some(written)) = (
            self.step_effects
                .get(index)
                .and_then(|effects| effects.on_source.clone()),
            raw.on.as_ref(),
        ) {
            self.call_diagnostics(before, &on_source, written.position);
        }
        Step {
            index,
            id: StepId(id.clone()),
            name: match &name_template {
                Some(template) => template.text.clone(),
                None => raw.name.as_ref().map_or(id, |name| name.value.clone()),
            },
            name_template: name_template.map(Box::new),
            description: raw
                .description
                .as_ref()
                .map(|description| description.value.clone()),
            needs,
            condition: condition.map(Box::new),
            action,
            shell,
            env,
            cwd,
            timeout,
            retry,
            allow_failure: raw.allow_failure.as_ref().is_some_and(|allow| allow.value),
            verify,
            rollback,
            grace: grace.unwrap_or(DurationValue::Fixed(DEFAULT_GRACE)),
            idempotent: raw
                .idempotent
                .as_ref()
                .is_none_or(|idempotent| idempotent.value),
            pivot: raw.pivot.as_ref().is_some_and(|pivot| pivot.value),
            irreversible: raw.irreversible.as_ref().is_some_and(|flag| flag.value),
            runs_after_skipped: raw
                .after_skipped
                .as_ref()
                .is_some_and(|after| after.value == AfterSkipped::Run),
            approve_on_timeout: raw
                .on_timeout
                .as_ref()
                .is_some_and(|answer| answer.value == OnTimeout::Approve),
            outputs,
            on: on.map(Box::new),
            position: raw.id.position,
            written_at: self.written_at(index, raw.id.position.line()),
            called_at: self
                .step_effects
                .get(index)
                .and_then(|effects| effects.called_at.clone()),
        }
    }

    /// `FILE:LINE` of a module's step or a `for_each` instance; `None` for a step written
    /// once in the runbook itself.
    fn written_at(&self, index: usize, line: usize) -> Option<String> {
        let module = self.step_sources.get(index).cloned().flatten();
        let instance = self.instances.get(index).is_some_and(Option::is_some);
        let file = match &module {
            Some(source) => {
                let path = std::path::PathBuf::from(source.name());
                let shown = path
                    .strip_prefix(self.source.directory())
                    .map_or(path.clone(), std::path::Path::to_path_buf);
                shown.display().to_string()
            }
            None if instance => std::path::Path::new(self.source.name())
                .file_name()
                .map_or_else(
                    || self.source.name().to_string(),
                    |name| name.to_string_lossy().into_owned(),
                ),
            None => return None,
        };
        Some(format!("{file}:{line}"))
    }

    /// `defaults.timeout`, `grace` and `retry`, checked once: a default is written once for
    /// every step, and its templates read what the runbook's `env` may read.
    fn timing_defaults(&mut self, defaults: Option<&RawDefaults>) -> TimingDefaults {
        let scope = |key: &str| Scope::new(format!("defaults.{key}"), TemplateOwner::Runbook);
        let Some(defaults) = defaults else {
            return TimingDefaults {
                timeout: None,
                grace: None,
                retry: RetryPolicy::default(),
            };
        };
        TimingDefaults {
            timeout: self.duration_value(
                defaults.timeout.as_ref(),
                "defaults.timeout",
                &scope("timeout"),
            ),
            grace: self.duration_value(defaults.grace.as_ref(), "defaults.grace", &scope("grace")),
            retry: self.retry(defaults.retry.as_ref(), &scope("retry.delay")),
        }
    }

    /// A step's `outputs`: valid, distinct keys.
    fn promised_outputs(
        &mut self,
        outputs: &[Spanned<OutputField>],
        id: &str,
    ) -> Vec<PromisedOutput> {
        let mut promised: Vec<PromisedOutput> = Vec::new();
        for entry in outputs {
            let output = &entry.value.0;
            let key = &output.name.value;
            let position = self.position_or(output.name.position, entry.position);
            if !super::values::is_var_name(key) {
                let message = format!("output key `{key}` of step `{id}` is not a valid name");
                self.push(
                    Diagnostic::error("invalid-output-key", message, Some(position))
                        .with_help("use letters, digits and `_`, not starting with a digit"),
                );
            }
            if promised.iter().any(|existing| existing.name == *key) {
                let message = format!("step `{id}` declares output `{key}` twice");
                self.push(Diagnostic::error(
                    "duplicate-output",
                    message,
                    Some(position),
                ));
                continue;
            }
            promised.push(PromisedOutput {
                name: key.clone(),
                secret: output.secret.as_ref().is_some_and(|secret| secret.value),
            });
        }
        promised
    }

    fn action(&mut self, raw: &RawStep, place: &str, index: usize) -> Action {
        let owner = TemplateOwner::Step {
            step: index,
            own: false,
        };
        match (&raw.run, &raw.approve) {
            (Some(_), Some(approve)) => {
                let message = format!("step `{}` has both `approve` and `run`", raw.id.value);
                self.push(
                    Diagnostic::error("approve-and-run", message, Some(approve.position))
                        .with_help("an `approve` step is a manual gate: put the command in a step that `needs` it"),
                );
                Action::Check
            }
            (Some(run), None) => {
                self.check_no_gate_options(raw);
                let scope = Scope::new(format!("{place}.run"), owner).shell();
                Action::Run(self.script(run, place, &scope))
            }
            (None, Some(approve)) => {
                if raw.shell.is_some() || raw.retry.is_some() {
                    let message = format!(
                        "step `{}` is an approval gate: `shell` and `retry` apply only to `run`",
                        raw.id.value
                    );
                    self.push(Diagnostic::error(
                        "approve-options",
                        message,
                        Some(approve.position),
                    ));
                }
                if let Some(on_timeout) = &raw.on_timeout
                    && raw.timeout.is_none()
                {
                    let message = format!(
                        "approval gate `{}` has `on_timeout` but no `timeout`",
                        raw.id.value
                    );
                    self.push(
                        Diagnostic::error("on-timeout-without-timeout", message, Some(on_timeout.position))
                            .with_help("add `timeout: 10m`: how long the gate waits before `on_timeout` answers"),
                    );
                }
                Action::Approve(
                    self.template(approve, &Scope::new(format!("{place}.approve"), owner)),
                )
            }
            (None, None) => {
                self.check_no_gate_options(raw);
                if raw
                    .verify
                    .as_ref()
                    .is_none_or(|verify| verify.value.is_empty())
                {
                    let message = format!(
                        "step `{}` does nothing: it has no `run`, `approve` or `verify`",
                        raw.id.value
                    );
                    self.push(Diagnostic::error(
                        "empty-step",
                        message,
                        Some(raw.id.position),
                    ));
                }
                Action::Check
            }
        }
    }

    /// `on_timeout` answers a gate: refused on a step that is not one.
    fn check_no_gate_options(&mut self, raw: &RawStep) {
        if let Some(on_timeout) = &raw.on_timeout {
            let message = format!(
                "step `{}` has `on_timeout` but is not an approval gate",
                raw.id.value
            );
            self.push(
                Diagnostic::error(
                    "on-timeout-without-gate",
                    message,
                    Some(on_timeout.position),
                )
                .with_help(
                    "`on_timeout` answers an `approve` gate nobody answered within its `timeout`",
                ),
            );
        }
    }

    pub(super) fn shell(
        &mut self,
        shell: Option<&Spanned<Vec<Spanned<String>>>>,
        place: &str,
        owner: TemplateOwner,
    ) -> Shell {
        let Some(shell) = shell else {
            // Literal words: their place is never shown (only a render error would).
            static DEFAULT: std::sync::LazyLock<Shell> = std::sync::LazyLock::new(|| {
                let default = |word: &&str| Template::literal(word, "shell");
                DEFAULT_SHELL.iter().map(default).collect()
            });
            return Shell::clone(&DEFAULT);
        };
        if shell.value.is_empty() {
            self.push(
                Diagnostic::error("empty-shell", format!("`{place}.shell` is empty"), Some(shell.position))
                    .with_help("give the interpreter and its flags, e.g. `[\"sh\", \"-c\"]`; the script is passed last"),
            );
        }
        shell
            .value
            .iter()
            .enumerate()
            .map(|(index, word)| {
                self.template(word, &Scope::new(format!("{place}.shell[{index}]"), owner))
            })
            .collect()
    }

    /// A retry policy; `delay_scope` is where a templated `delay` is checked.
    pub(super) fn retry(
        &mut self,
        retry: Option<&Spanned<RawRetry>>,
        delay_scope: &Scope,
    ) -> RetryPolicy {
        let Some(retry) = retry else {
            return RetryPolicy::default();
        };
        let mut policy = RetryPolicy::default();
        let attempts = &retry.value.attempts;
        if attempts.value == 0 || attempts.value > 1000 {
            let message = format!(
                "`retry.attempts` must be between 1 and 1000, not {}",
                attempts.value
            );
            self.push(
                Diagnostic::error("invalid-retry", message, Some(attempts.position))
                    .with_help("attempts counts every try, the first included"),
            );
        } else {
            policy.attempts = attempts.value;
        }
        if let Some(delay) =
            self.duration_value(retry.value.delay.as_ref(), "retry.delay", delay_scope)
        {
            policy.delay = delay;
        }
        if let Some(backoff) = &retry.value.backoff {
            if !(backoff.value.is_finite() && (1.0..=100.0).contains(&backoff.value)) {
                let message = format!(
                    "`retry.backoff` must be between 1.0 and 100.0, not {}",
                    backoff.value
                );
                self.push(Diagnostic::error(
                    "invalid-retry",
                    message,
                    Some(backoff.position),
                ));
            } else {
                policy.backoff = backoff.value;
            }
        }
        policy
    }

    fn compensation(
        &mut self,
        raw: &Spanned<&RawCompensation>,
        place: &str,
        index: usize,
        step: &RawStep,
    ) -> Compensation {
        let place = format!("{place}.rollback");
        let own = TemplateOwner::Step {
            step: index,
            own: true,
        };
        let run_position = self.position_or(raw.value.run.position, raw.position);
        let run = Spanned::new(raw.value.run.value.clone(), run_position);
        let scope = Scope::new(format!("{place}.run"), own).shell();
        let template = self.script(&run, &place, &scope);
        let only_if_succeeded = raw
            .value
            .only_if_succeeded
            .as_ref()
            .is_some_and(|only| only.value);
        if !only_if_succeeded && self.reads_own_outputs_unguarded(&template.text, index) {
            let message = format!(
                "the rollback of `{}` reads the step's own outputs, but it also runs when the step failed before writing them",
                step.id.value
            );
            self.push(
                Diagnostic::warning("rollback-reads-missing-output", message, Some(run_position))
                    .with_help("add `only_if_succeeded: true`, or use `{{default steps.<id>.outputs.<key> \"\"}}`"),
            );
        }
        let shell_source = raw.value.shell.as_ref().or(step.shell.as_deref());
        let env = match &raw.value.env {
            Some(env) => self.env_entries(
                &env.value,
                &format!("{place}.env"),
                &Scope::new(&place, own).allow_secrets(),
            ),
            None => Vec::new(),
        };
        let cwd = raw
            .value
            .cwd
            .as_ref()
            .or(step.cwd.as_deref())
            .map(|cwd| self.template(cwd, &Scope::new(format!("{place}.cwd"), own)));
        Compensation {
            run: template,
            shell: self.shell(shell_source, &place, own),
            env,
            cwd,
            timeout: self.duration_value(
                raw.value.timeout.as_ref(),
                "rollback.timeout",
                &Scope::new(format!("{place}.timeout"), own),
            ),
            retry: self.retry(
                raw.value.retry.as_ref(),
                &Scope::new(format!("{place}.retry.delay"), own),
            ),
            verify: match &raw.value.verify {
                Some(probes) => {
                    self.probes(&probes.value, &format!("{place}.verify"), own, shell_source)
                }
                None => Vec::new(),
            },
            only_if_succeeded,
        }
    }

    /// At most one pivot: a second point of no return would make the first meaningless.
    fn check_pivots(&mut self, raw: &RawRunbook) {
        let pivots: Vec<&RawStep> = raw
            .steps
            .value
            .iter()
            .filter(|step| step.pivot.as_ref().is_some_and(|pivot| pivot.value))
            .collect();
        if let [first, second, ..] = pivots.as_slice() {
            let message = format!(
                "steps `{}` and `{}` are both a `pivot`: a runbook has at most one point of no return",
                first.id.value, second.id.value
            );
            let position = second.pivot.as_ref().map(|pivot| pivot.position);
            let related = first
                .pivot
                .as_ref()
                .map_or(first.id.position, |pivot| pivot.position);
            self.push(
                Diagnostic::error("second-pivot", message, position)
                    .with_related(related, "first pivot"),
            );
        }
    }
}
