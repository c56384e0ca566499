//! Builds the `Plan`: resolves nothing itself (variables come resolved in the context) but
//! renders every template it can and computes waves and rollback orders.

use std::collections::HashMap;
use std::time::Duration;

use super::context::Context;
use super::fleet::add_hosts;
use super::instances::select_hosts;
use super::model::{
    COMPENSATES_LISTED, Plan, PlanCompensation, PlanCondition, PlanDecision, PlanEnv, PlanFailure,
    PlanHooks, PlanProbe, PlanRetry, PlanRollback, PlanRunbook, PlanStep, PlanVar, SharedText,
    StepKind, TimeoutAnswer, WhenSkipped,
};
use super::variables::ResolvedVar;
use crate::events::StepStatus;
use crate::format::written;
use crate::model::{
    Action, DurationValue, EnvEntry, Probe, ProbeKind, RetryPolicy, Runbook, Step, StepGraph,
    Template,
};
use crate::rollback::{Verdict, in_rollback_order, verdict};
use crate::template::{BorrowedContext, TemplateEngine, has_tag, undecided};
use crate::validate::Diagnostic;

/// Renders templates for the plan, collecting render errors instead of stopping at the first.
struct Renderer<'a> {
    engine: &'a TemplateEngine,
    context: BorrowedContext<'a>,
    problems: Vec<Diagnostic>,
    /// Literal texts seen so far (the default shell's words, say), shared rather than copied.
    literals: HashMap<&'a str, SharedText>,
    /// Durations as text, likewise: most steps have the same retry delay and grace.
    durations: HashMap<Duration, SharedText>,
    /// Blocks only a run can decide, rendered since the current step's entry began.
    decisions: Vec<PlanDecision>,
}

impl<'a> Renderer<'a> {
    fn render(&mut self, template: &Template) -> String {
        if !has_tag(&template.text) {
            return template.text.clone();
        }
        match self.engine.render_for_plan(&template.text, &self.context) {
            Ok((text, decisions)) => {
                self.decisions
                    .extend(decisions.into_iter().map(|decision| PlanDecision {
                        place: template.place.clone(),
                        condition: decision.condition,
                        then: decision.then,
                        otherwise: decision.otherwise,
                    }));
                text
            }
            Err(error) => {
                let message = format!("cannot render `{}`: {error}", template.place);
                self.problems.push(Diagnostic::error(
                    "render",
                    message,
                    Some(template.position),
                ));
                template.text.clone()
            }
        }
    }

    /// Renders a template whose text repeats across the plan, sharing literal texts.
    fn render_shared(&mut self, template: &'a Template) -> SharedText {
        if has_tag(&template.text) {
            return SharedText::from(self.render(template));
        }
        self.literals
            .entry(&template.text)
            .or_insert_with(|| SharedText::from(template.text.as_str()))
            .clone()
    }

    fn duration(&mut self, value: &DurationValue) -> SharedText {
        match value {
            DurationValue::Fixed(value) => self
                .durations
                .entry(*value)
                .or_insert_with(|| SharedText::from(written(*value)))
                .clone(),
            DurationValue::Template(template) => SharedText::from(self.render(template).trim()),
        }
    }

    fn retry(&mut self, policy: &RetryPolicy) -> PlanRetry {
        PlanRetry {
            attempts: policy.attempts,
            delay: self.duration(&policy.delay),
            backoff: policy.backoff,
        }
    }

    fn env(&mut self, entries: &[EnvEntry]) -> Vec<PlanEnv> {
        entries
            .iter()
            .map(|entry| PlanEnv {
                name: entry.name.clone(),
                value: self.render(&entry.value),
            })
            .collect()
    }

    fn probes(&mut self, probes: &[Probe]) -> Vec<PlanProbe> {
        probes.iter().map(|probe| self.probe(probe)).collect()
    }

    fn probe(&mut self, probe: &Probe) -> PlanProbe {
        let timing = &probe.timing;
        let templates = &probe.timing_templates;
        // Values the plan can already render are checked now, so a bad `--var` is refused
        // before anything runs rather than when the probe is reached.
        for template in [&templates.within, &templates.hold, &templates.interval]
            .into_iter()
            .flatten()
        {
            if !template.needs_run() {
                let text = self.render(template);
                if humantime::parse_duration(text.trim()).is_err() {
                    let message = format!(
                        "`{}` renders to `{}`, not a duration such as `30s`",
                        template.place,
                        text.trim()
                    );
                    self.problems.push(Diagnostic::error(
                        "render",
                        message,
                        Some(template.position),
                    ));
                }
            }
        }
        if let ProbeKind::Command { expect, .. } = &probe.kind
            && let Some(template) = expect
                .stdout_number_template
                .as_ref()
                .filter(|template| !template.needs_run())
        {
            let text = self.render(template);
            if crate::model::NumberCheck::parse(&text).is_none() {
                let message = format!(
                    "`{}` renders to `{}`, not a comparison like `< 5`",
                    template.place,
                    text.trim()
                );
                self.problems.push(Diagnostic::error(
                    "render",
                    message,
                    Some(template.position),
                ));
            }
        }
        // A templated timing value shows as rendered (or as its placeholder).
        let mut shown = |template: &Option<crate::model::Template>, value: std::time::Duration| {
            template.as_ref().map_or_else(
                || written(value),
                |template| self.render(template).trim().to_string(),
            )
        };
        let interval = shown(&templates.interval, timing.interval);
        let timing_text = match (timing.within, timing.hold) {
            (Some(within), Some(hold)) => format!(
                "within {}, then hold {} every {interval}",
                shown(&templates.within, within),
                shown(&templates.hold, hold)
            ),
            (Some(within), None) => format!(
                "within {} every {interval}",
                shown(&templates.within, within)
            ),
            (None, Some(hold)) => format!("hold {} every {interval}", shown(&templates.hold, hold)),
            (None, None) => "once".to_string(),
        };
        let (kind, target, expect) = match &probe.kind {
            ProbeKind::Command { run, expect, .. } => {
                let mut expectations = vec![format!("exit code {}", expect.exit_code)];
                let mut add = |label: &str, template: &Option<Template>| {
                    if let Some(template) = template {
                        let text = self.render(template);
                        expectations.push(format!("{label} {text:?}"));
                    }
                };
                add("stdout contains", &expect.stdout_contains);
                add("stdout does not contain", &expect.stdout_not_contains);
                add("stdout matches", &expect.stdout_matches);
                if let Some(check) = expect.stdout_number {
                    expectations.push(format!(
                        "stdout number {} {}",
                        check.comparison.symbol(),
                        check.value
                    ));
                }
                if let Some(template) = &expect.stdout_number_template {
                    let text = self.render(template);
                    expectations.push(format!("stdout number {}", text.trim()));
                }
                ("run", self.render(run), expectations)
            }
            ProbeKind::Http(http) => {
                let codes: Vec<String> = http.status.iter().map(u16::to_string).collect();
                let mut expectations = vec![format!("status {}", codes.join(" or "))];
                if let Some(template) = &http.body_contains {
                    expectations.push(format!("body contains {:?}", self.render(template)));
                }
                if let Some(template) = &http.body_matches {
                    expectations.push(format!("body matches {:?}", self.render(template)));
                }
                for (path, value) in &http.body_json {
                    expectations.push(format!("JSON {path} = {:?}", self.render(value)));
                }
                if let Some(latency) = http.max_latency {
                    expectations.push(format!("latency under {}", written(latency)));
                }
                (
                    "http",
                    format!("{} {}", http.method, self.render(&http.url)),
                    expectations,
                )
            }
            ProbeKind::Tcp { address } => (
                "tcp",
                self.render(address),
                vec!["accepts a connection".to_string()],
            ),
        };
        PlanProbe {
            name: match &probe.name_template {
                Some(template) => self.render(template).trim().to_string(),
                None => probe.name.clone(),
            },
            kind,
            target,
            expect,
            timing: timing_text,
        }
    }
}

/// Truthiness of a rendered `if` (SPEC §6).
pub fn is_truthy(rendered: &str) -> bool {
    crate::template::is_truthy(rendered)
}

/// Builds the plan of a valid runbook whose variables are resolved in `context`.
pub fn build_plan(
    runbook: &Runbook,
    vars: &[ResolvedVar],
    context: &mut Context,
    engine: &TemplateEngine,
    limit: &[String],
) -> Result<Plan, Vec<Diagnostic>> {
    let selected = select_hosts(&runbook.inventory, limit).map_err(|problem| vec![*problem])?;
    for path in all_runtime_paths(runbook) {
        context.add_placeholder(path);
    }
    let mut renderer = Renderer {
        engine,
        context: BorrowedContext::new(context.value()),
        problems: Vec::new(),
        literals: HashMap::new(),
        durations: HashMap::new(),
        decisions: Vec::new(),
    };
    let graph = &runbook.graph;
    let planner = Planner::new(runbook, graph);
    let env = renderer.env(&runbook.env);
    let steps: Vec<PlanStep> = graph
        .topological_order()
        .iter()
        .map(|&index| planner.step(&mut renderer, &runbook.steps[index]))
        .collect();
    let mut hooks = |hooks: &[crate::model::Hook]| -> Vec<String> {
        hooks
            .iter()
            .map(|hook| renderer.render(&hook.run))
            .collect()
    };
    let hooks = PlanHooks {
        on_start: hooks(&runbook.hooks.on_start),
        on_success: hooks(&runbook.hooks.on_success),
        on_failure: hooks(&runbook.hooks.on_failure),
        always: hooks(&runbook.hooks.always),
    };
    let rollback_verify = renderer.probes(&runbook.rollback_verify);
    let rollout_verify: Vec<Vec<PlanProbe>> = runbook
        .inventory
        .rollouts
        .iter()
        .map(|rollout| renderer.probes(&rollout.verify))
        .collect();
    if !renderer.problems.is_empty() {
        return Err(renderer.problems);
    }
    let ids = |wave: &Vec<usize>| wave.iter().map(|&index| planner.id(index)).collect();
    let mut plan = Plan {
        format_version: 1,
        runbook: PlanRunbook {
            name: runbook.name.clone(),
            description: runbook.description.clone(),
            file: runbook.source_name.clone(),
        },
        vars: vars
            .iter()
            .map(|var| PlanVar {
                name: var.name.clone(),
                value: var.value.as_ref().map(|value| {
                    if var.secret {
                        crate::secrets::MASK.to_string()
                    } else {
                        value.clone()
                    }
                }),
                source: var.source.describe(),
                secret: var.secret,
                description: runbook
                    .var(&var.name)
                    .and_then(|declaration| declaration.description.clone()),
            })
            .collect(),
        env,
        concurrency: runbook.concurrency,
        timeout: runbook
            .timeout
            .as_ref()
            .map(|limit| renderer.duration(limit).to_string()),
        waves: graph.waves().iter().map(ids).collect(),
        steps,
        rollback: PlanRollback {
            order: rollback_order(runbook).iter().map(ids).collect(),
            without_rollback: runbook
                .steps
                .iter()
                .filter(|step| {
                    step.rollback.is_none()
                        && matches!(step.action, Action::Run(_))
                        && !step.pivot
                        && !step.irreversible
                })
                .map(|step| planner.id(step.index))
                .collect(),
            instances: Vec::new(),
            irreversible: runbook
                .steps
                .iter()
                .filter(|step| step.irreversible)
                .map(|step| planner.id(step.index))
                .collect(),
            verify: rollback_verify,
        },
        hooks,
        hosts: Vec::new(),
        limit: limit.to_vec(),
        rollouts: Vec::new(),
    };
    if runbook.steps.iter().any(|step| step.on.is_some()) {
        add_hosts(
            &mut plan,
            runbook,
            &selected,
            context.value(),
            engine,
            rollout_verify,
        )?;
    }
    Ok(plan)
}

fn all_runtime_paths(runbook: &Runbook) -> impl Iterator<Item = &Vec<String>> {
    let mut templates: Vec<&Template> = Vec::new();
    for step in &runbook.steps {
        templates.extend(step.templates());
    }
    for hook in runbook
        .hooks
        .on_start
        .iter()
        .chain(&runbook.hooks.on_success)
        .chain(&runbook.hooks.on_failure)
        .chain(&runbook.hooks.always)
    {
        templates.push(&hook.run);
        templates.extend(hook.env.iter().map(|entry| &entry.value));
        templates.extend(hook.timeout.template());
    }
    templates.extend(runbook.rollback_verify.iter().flat_map(Probe::templates));
    let rollouts = runbook.inventory.rollouts.iter();
    templates.extend(
        rollouts
            .flat_map(|rollout| &rollout.verify)
            .flat_map(Probe::templates),
    );
    templates
        .into_iter()
        .flat_map(|template| template.runtime_paths.iter())
}

/// What every step's entry needs from the whole runbook, computed once.
struct Planner<'a> {
    graph: &'a StepGraph,
    steps: &'a [Step],
    /// Step ids by step index, shared by every list that names a step.
    ids: Vec<SharedText>,
    /// The working directory of steps without `cwd`.
    directory: SharedText,
    /// Steps a rollback compensates when they succeeded, in rollback order.
    ranked: Vec<usize>,
    /// The other steps (no `rollback`, or a pivot), in file order.
    uncompensated: Vec<usize>,
    /// Pivot steps, in file order.
    pivots: Vec<usize>,
    /// For each step, the step whose skip skips it (`Runbook::skipped_by`).
    skipped_by: Vec<Option<usize>>,
}

impl<'a> Planner<'a> {
    fn new(runbook: &'a Runbook, graph: &'a StepGraph) -> Planner<'a> {
        let indexes = |keep: fn(&Step) -> bool| {
            runbook
                .steps
                .iter()
                .filter(|step| keep(step))
                .map(|step| step.index)
                .collect()
        };
        Planner {
            graph,
            steps: &runbook.steps,
            ranked: in_rollback_order(
                graph,
                runbook
                    .steps
                    .iter()
                    .filter(|step| compensated_when_succeeded(step))
                    .map(|step| step.index),
            ),
            uncompensated: indexes(|step| !compensated_when_succeeded(step)),
            pivots: indexes(|step| step.pivot),
            skipped_by: runbook.skipped_by(),
            ids: runbook
                .steps
                .iter()
                .map(|step| SharedText::from(step.id.as_str()))
                .collect(),
            directory: SharedText::from(runbook.directory.display().to_string()),
        }
    }

    fn id(&self, index: usize) -> SharedText {
        self.ids[index].clone()
    }

    fn step(&self, renderer: &mut Renderer<'a>, step: &'a Step) -> PlanStep {
        renderer.decisions.clear();
        let (kind, command) = match &step.action {
            Action::Run(template) => (StepKind::Run, Some(renderer.render(template))),
            Action::Approve(template) => (StepKind::Approve, Some(renderer.render(template))),
            Action::Check => (StepKind::Check, None),
        };
        let condition = step.condition.as_ref().map(|template| {
            if template.needs_run() {
                PlanCondition {
                    template: template.text.clone(),
                    rendered: None,
                    decision: "decided at run time",
                    decided_at_run_time: true,
                }
            } else {
                let before = renderer.decisions.len();
                let rendered = renderer.render(template);
                // A `run.*` placeholder (or a comparison on one) is known only to the run.
                let decided_at_run_time = undecided(rendered.trim()).is_some()
                    || !renderer.decisions.split_off(before).is_empty();
                let decision = if decided_at_run_time {
                    "decided at run time"
                } else if is_truthy(&rendered) {
                    "runs"
                } else {
                    "skipped"
                };
                PlanCondition {
                    template: template.text.clone(),
                    rendered: Some(rendered),
                    decision,
                    decided_at_run_time,
                }
            }
        });
        let cwd = match &step.cwd {
            Some(template) => renderer.render_shared(template),
            None => self.directory.clone(),
        };
        let rollback = step.rollback.as_ref().map(|compensation| PlanCompensation {
            command: renderer.render(&compensation.run),
            env: renderer.env(&compensation.env),
            only_if_succeeded: compensation.only_if_succeeded,
            timeout: compensation
                .timeout
                .as_ref()
                .map(|limit| renderer.duration(limit).to_string()),
            retry: renderer.retry(&compensation.retry),
            verify: renderer.probes(&compensation.verify),
        });
        let id = self.id(step.index);
        PlanStep {
            written_at: step.written_at.as_deref().map(Box::from),
            called_at: step.called_at.as_deref().map(Box::from),
            name: match &step.name_template {
                Some(template) => renderer.render_shared(template),
                None if step.name == step.id.as_str() => id.clone(),
                None => SharedText::from(step.name.as_str()),
            },
            id,
            description: step.description.as_deref().map(Box::from),
            wave: self.graph.wave(step.index) + 1,
            needs: step.needs.iter().map(|&need| self.id(need)).collect(),
            condition: condition.map(Box::new),
            kind,
            command,
            shell: step
                .shell
                .iter()
                .map(|word| renderer.render_shared(word))
                .collect(),
            cwd,
            env: renderer.env(&step.env).into_boxed_slice(),
            timeout: step
                .timeout
                .as_ref()
                .map(|limit| Box::from(renderer.duration(limit).as_str())),
            retry: renderer.retry(&step.retry),
            grace: renderer.duration(&step.grace),
            allow_failure: step.allow_failure,
            idempotent: step.idempotent,
            pivot: step.pivot,
            irreversible: step.irreversible,
            after_skipped: if step.runs_after_skipped {
                WhenSkipped::Run
            } else {
                WhenSkipped::Skip
            },
            skipped_with: if step.runs_after_skipped {
                None
            } else {
                step.needs
                    .iter()
                    .copied()
                    .find(|&need| self.skipped_by[need].is_some())
                    .map(|need| self.id(need))
            },
            on_timeout: match (&step.action, &step.timeout) {
                (Action::Approve(_), Some(_)) if step.approve_on_timeout => {
                    Some(TimeoutAnswer::Approve)
                }
                (Action::Approve(_), Some(_)) => Some(TimeoutAnswer::Deny),
                _ => None,
            },
            verify: renderer.probes(&step.verify).into_boxed_slice(),
            rollback: rollback.map(Box::new),
            on_failure: self.failure_rollback(step),
            decisions: std::mem::take(&mut renderer.decisions).into_boxed_slice(),
            on: Box::default(),
            instances: None,
        }
    }

    /// What a failure of `step` compensates, by the rule the run uses (`rollback::verdict`):
    /// itself (unless `only_if_succeeded`), then every upstream step with a compensation,
    /// latest first; behind an upstream pivot (which succeeded, or `step` would not have
    /// started) only what is certain to finish after it: its descendants.
    fn failure_rollback(&self, step: &Step) -> PlanFailure {
        if step.allow_failure {
            return PlanFailure {
                compensates_itself: false,
                compensates: Vec::new(),
                compensates_total: 0,
                stopped_by_pivot: None,
            };
        }
        let compensates_itself = verdict(step, StepStatus::Failed, false) == Verdict::Compensate;
        let graph = self.graph;
        // A runbook has at most one pivot; upstream, it has succeeded.
        let pivot = self
            .pivots
            .iter()
            .copied()
            .find(|&pivot| graph.is_upstream(pivot, step.index));
        let counted = |other: usize| {
            let before_pivot = pivot.is_some_and(|pivot| !graph.is_upstream(pivot, other));
            graph.is_upstream(other, step.index)
                && verdict(&self.steps[other], StepStatus::Succeeded, before_pivot)
                    == Verdict::Compensate
        };
        // `ranked` is sorted latest wave first: upstream steps are all in earlier waves.
        let wave = graph.wave(step.index);
        let start = self
            .ranked
            .partition_point(|&other| graph.wave(other) >= wave);
        let candidates = &self.ranked[start..];
        // Counting over every earlier step would make the plan quadratic in steps; with no
        // pivot, subtracting the upstream steps without a compensation from the upstream
        // count is cheaper whenever those are the fewer.
        let compensates_total = if pivot.is_none() && self.uncompensated.len() < candidates.len() {
            let uncompensated = self
                .uncompensated
                .iter()
                .filter(|&&other| graph.is_upstream(other, step.index))
                .count();
            graph.upstream_count(step.index) - uncompensated
        } else {
            candidates.iter().filter(|&&other| counted(other)).count()
        };
        let listed = compensates_total.min(COMPENSATES_LISTED);
        let mut compensates = Vec::with_capacity(listed);
        compensates.extend(
            candidates
                .iter()
                .filter(|&&other| counted(other))
                .take(listed)
                .map(|&other| self.id(other)),
        );
        PlanFailure {
            compensates_itself,
            compensates,
            compensates_total,
            stopped_by_pivot: pivot.map(|pivot| self.id(pivot)),
        }
    }
}

/// Whether a step that succeeded is compensated by a rollback no pivot stopped.
fn compensated_when_succeeded(step: &Step) -> bool {
    verdict(step, StepStatus::Succeeded, false) == Verdict::Compensate
}

/// Steps a full rollback compensates, grouped by wave, latest wave first.
fn rollback_order(runbook: &Runbook) -> Vec<Vec<usize>> {
    let graph = &runbook.graph;
    graph
        .waves()
        .into_iter()
        .rev()
        .map(|wave| {
            wave.into_iter()
                .filter(|&index| compensated_when_succeeded(&runbook.steps[index]))
                .collect::<Vec<_>>()
        })
        .filter(|wave: &Vec<usize>| !wave.is_empty())
        .collect()
}
