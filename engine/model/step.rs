//! A validated step, its compensation and retry policy.

use std::fmt;
use std::time::Duration;

use super::{DurationValue, EnvEntry, Placement, Probe, Shell, Template};
use crate::document::Position;

/// A step's id, `[a-z0-9][a-z0-9_-]*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub String);

impl StepId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What a step does besides its probes.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run a script.
    Run(Template),
    /// Ask a person (SPEC §7).
    Approve(Template),
    /// Only `verify` probes: a check.
    Check,
}

/// A validated step (SPEC §4).
#[derive(Debug, Clone)]
pub struct Step {
    pub index: usize,
    pub id: StepId,
    /// The name as written (a `for_each` instance's with its item), or the id.
    pub name: String,
    /// The name when it holds a template (vars, `item`, `host`, ...): rendered for `plan`, the
    /// events and so for `show` and reports. Boxed, like `condition` and `on`: most steps
    /// have none, and inline they were a third of every step.
    pub name_template: Option<Box<Template>>,
    pub description: Option<String>,
    /// Indices into `Runbook::steps`.
    pub needs: Vec<usize>,
    pub condition: Option<Box<Template>>,
    pub action: Action,
    pub shell: Shell,
    pub env: Vec<EnvEntry>,
    pub cwd: Option<Template>,
    /// For `run`, the limit of one attempt; for an approval gate, how long it waits for an
    /// answer before `on_timeout` answers.
    pub timeout: Option<DurationValue>,
    pub retry: RetryPolicy,
    pub allow_failure: bool,
    pub verify: Vec<Probe>,
    pub rollback: Option<Box<Compensation>>,
    pub grace: DurationValue,
    pub idempotent: bool,
    pub pivot: bool,
    /// Its effect cannot be undone: no `rollback` expected, marked in plan and reports.
    pub irreversible: bool,
    /// `after_skipped: run`: runs even when a needed step was skipped.
    pub runs_after_skipped: bool,
    /// For an approval gate with a `timeout`: approve (not deny) when nobody answered.
    pub approve_on_timeout: bool,
    /// The output keys it promises, when it declares them.
    pub outputs: Option<Vec<PromisedOutput>>,
    /// `on`: the hosts it runs on, one instance each; `None` runs it on the engine's machine.
    pub on: Option<Box<Placement>>,
    pub position: Position,
    /// For a module's step or a `for_each` instance, where it was written: `FILE:LINE`, the
    /// file relative to the runbook's directory.
    pub written_at: Option<String>,
    /// For a module's step, the call that brought it in: `` `uses: FILE` at FILE:LINE ``.
    pub called_at: Option<String>,
}

/// One entry of a step's `outputs`: a key it promises to write, and whether its value is a
/// secret (masked everywhere, usable only in `env`, kept outside the journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromisedOutput {
    pub name: String,
    pub secret: bool,
}

/// `retry`: attempts in all, and the delay between them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub delay: DurationValue,
    pub backoff: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            delay: DurationValue::Fixed(Duration::from_secs(1)),
            backoff: 1.0,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempts count from 1) when the first delay is
    /// `delay` (the policy's, rendered), capped at a day so that a large backoff cannot
    /// overflow.
    pub fn delay_after(&self, delay: Duration, attempt: u32) -> Duration {
        let factor = self
            .backoff
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        let seconds = (delay.as_secs_f64() * factor).min(86_400.0);
        Duration::from_secs_f64(seconds.max(0.0))
    }
}

/// A step's compensation (SPEC §8.5–8.7).
#[derive(Debug, Clone)]
pub struct Compensation {
    pub run: Template,
    pub shell: Shell,
    pub env: Vec<EnvEntry>,
    pub cwd: Option<Template>,
    pub timeout: Option<DurationValue>,
    pub retry: RetryPolicy,
    pub verify: Vec<Probe>,
    pub only_if_succeeded: bool,
}

impl Step {
    /// Every template of the step: its name, command, condition, shell, env, cwd, probes,
    /// compensation and durations.
    pub fn templates(&self) -> Vec<&Template> {
        let mut templates: Vec<&Template> = Vec::new();
        match &self.action {
            Action::Run(template) | Action::Approve(template) => templates.push(template),
            Action::Check => {}
        }
        templates.extend(self.name_template.as_deref());
        templates.extend(self.condition.as_deref());
        templates.extend(self.cwd.iter());
        templates.extend(self.shell.iter());
        templates.extend(self.env.iter().map(|entry| &entry.value));
        templates.extend(self.verify.iter().flat_map(Probe::templates));
        if let Some(rollback) = &self.rollback {
            templates.push(&rollback.run);
            templates.extend(rollback.cwd.iter());
            templates.extend(rollback.shell.iter());
            templates.extend(rollback.env.iter().map(|entry| &entry.value));
            templates.extend(rollback.verify.iter().flat_map(Probe::templates));
        }
        templates.extend(self.duration_templates());
        templates
    }

    /// Whether output `key` is declared secret.
    pub fn is_secret_output(&self, key: &str) -> bool {
        self.outputs
            .iter()
            .flatten()
            .any(|output| output.secret && output.name == key)
    }

    /// Every duration of the step and its compensation that is a template.
    pub fn duration_templates(&self) -> Vec<&Template> {
        let mut values = vec![&self.grace, &self.retry.delay];
        values.extend(self.timeout.iter());
        if let Some(rollback) = &self.rollback {
            values.push(&rollback.retry.delay);
            values.extend(rollback.timeout.iter());
        }
        values
            .into_iter()
            .filter_map(DurationValue::template)
            .collect()
    }

    /// Ids of the steps whose status or outputs the step's templates read.
    pub fn reads_steps(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .templates()
            .iter()
            .flat_map(|template| template.runtime_paths.iter())
            .filter(|path| path.first().is_some_and(|root| root == "steps"))
            .filter_map(|path| path.get(1).cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
