//! The validated runbook: variables, environment, steps, hooks.

use super::{DurationValue, Inventory, Probe, Step, StepGraph, Template};
use crate::document::Position;
use std::path::PathBuf;

/// A runbook that passed validation. Built only by `validate`.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    /// The run lock's name: `lock`, default `name`.
    pub lock: String,
    pub description: Option<String>,
    /// The file as the user named it.
    pub source_name: String,
    /// The runbook's directory: default working directory of steps, `runbook.dir`.
    pub directory: PathBuf,
    pub vars: Vec<VarDecl>,
    pub env: Vec<EnvEntry>,
    pub concurrency: usize,
    pub timeout: Option<DurationValue>,
    /// In file order; `Step::needs` holds indices into this list.
    pub steps: Vec<Step>,
    /// The steps' `needs` as a graph, built once by `validate`.
    pub graph: StepGraph,
    pub hooks: Hooks,
    pub rollback_verify: Vec<Probe>,
    /// `summary`: one line rendered at the end of a run.
    pub summary: Option<Template>,
    /// Remote hosts and rollouts (SPEC §12); empty when no step has `on`.
    pub inventory: Inventory,
    /// Each step whose `for_each` reads a `list` var (SPEC §13), and whether the var's value
    /// was known when the runbook was validated (else the step was checked once).
    pub for_each_vars: Vec<ForEachVar>,
}

/// A step whose instances are decided by a `list` var: `for_each: "{{vars.regions}}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForEachVar {
    /// The step's id as written (a module's step: `call.step`).
    pub step: String,
    pub var: String,
    /// The var's items were given to validation, so the step was expanded into them.
    pub decided: bool,
    /// `step` is a module call: its module's steps are the instances.
    pub module_call: bool,
}

impl Runbook {
    /// Whether some step's instances wait for a list var's value to be known.
    pub fn has_undecided_instances(&self) -> bool {
        self.for_each_vars.iter().any(|each| !each.decided)
    }
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id.as_str() == id)
    }

    /// For each step, in file order, the step whose skip may skip it: itself when it has an
    /// `if`, else (unless it says `after_skipped: run`) the first of its needs that may be
    /// skipped (SPEC §4). `None`: it is never skipped.
    pub fn skipped_by(&self) -> Vec<Option<usize>> {
        let mut cause: Vec<Option<usize>> = vec![None; self.steps.len()];
        for &index in self.graph.topological_order() {
            let step = &self.steps[index];
            cause[index] = if step.condition.is_some() {
                Some(index)
            } else if step.runs_after_skipped {
                None
            } else {
                step.needs
                    .iter()
                    .copied()
                    .find(|&need| cause[need].is_some())
            };
        }
        cause
    }

    pub fn var(&self, name: &str) -> Option<&VarDecl> {
        self.vars.iter().find(|var| var.name == name)
    }

    /// Every duration written as a template: the run's, the steps' and compensations', the
    /// hooks' and the probes' timing. They are checked as soon as their values are known.
    pub fn duration_templates(&self) -> Vec<&Template> {
        let mut templates: Vec<&Template> = self
            .timeout
            .iter()
            .filter_map(DurationValue::template)
            .collect();
        for step in &self.steps {
            templates.extend(step.duration_templates());
            let probes = step
                .verify
                .iter()
                .chain(step.rollback.iter().flat_map(|rollback| &rollback.verify));
            templates.extend(probes.flat_map(probe_timing_templates));
        }
        let hooks = &self.hooks;
        for hook in hooks
            .on_start
            .iter()
            .chain(&hooks.on_success)
            .chain(&hooks.on_failure)
            .chain(&hooks.always)
        {
            templates.extend(hook.timeout.template());
        }
        templates.extend(self.rollback_verify.iter().flat_map(probe_timing_templates));
        for rollout in &self.inventory.rollouts {
            templates.extend(rollout.pause.iter().filter_map(DurationValue::template));
            templates.extend(rollout.verify.iter().flat_map(probe_timing_templates));
        }
        templates
    }
}

/// A probe's `within`, `hold` and `interval` written as templates.
fn probe_timing_templates(probe: &Probe) -> impl Iterator<Item = &Template> {
    let timing = &probe.timing_templates;
    [&timing.within, &timing.hold, &timing.interval]
        .into_iter()
        .flatten()
}

/// A declared variable (SPEC §3).
#[derive(Debug, Clone)]
pub struct VarDecl {
    pub name: String,
    pub description: Option<String>,
    pub default: Option<Template>,
    pub required: bool,
    pub choices: Vec<String>,
    pub env: Option<String>,
    pub file: Option<String>,
    pub secret: bool,
    /// `type: list`: the value is a list (held as a JSON array text, see `parse_list`).
    pub list: bool,
    pub position: Position,
}

/// One `NAME: template` entry of an `env` mapping.
#[derive(Debug, Clone)]
pub struct EnvEntry {
    pub name: String,
    pub value: Template,
}

/// A hook command (SPEC §8.8).
#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    pub run: Template,
    pub env: Vec<EnvEntry>,
    pub timeout: DurationValue,
}

/// The hooks, by the moment they run.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub on_start: Vec<Hook>,
    pub on_success: Vec<Hook>,
    pub on_failure: Vec<Hook>,
    pub always: Vec<Hook>,
}
