//! Builds the `Plan`: resolves nothing itself (variables come resolved in the context) but
//! renders every template it can and computes waves and rollback orders.

use std::time::Duration;

use super::context::Context;
use super::model::{
    COMPENSATES_LISTED, Plan, PlanCompensation, PlanCondition, PlanEnv, PlanFailure, PlanHooks,
    PlanProbe, PlanRetry, PlanRollback, PlanRunbook, PlanStep, PlanVar,
};
use super::variables::ResolvedVar;
use crate::model::{Action, EnvEntry, Probe, ProbeKind, RetryPolicy, Runbook, Step, Template};
use crate::template::{PreparedContext, TemplateEngine};
use crate::validate::{Diagnostic, StepGraph};

/// Renders templates for the plan, collecting render errors instead of stopping at the first.
struct Renderer<'a> {
    engine: &'a TemplateEngine,
    context: PreparedContext,
    problems: Vec<Diagnostic>,
}

impl Renderer<'_> {
    fn render(&mut self, template: &Template) -> String {
        if template.is_literal() {
            return template.text.clone();
        }
        match self.engine.render_prepared(&template.text, &self.context) {
            Ok(text) => text,
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
        let timing_text = match (timing.within, timing.hold) {
            (Some(within), _) => format!(
                "within {} every {}",
                duration(within),
                duration(timing.interval)
            ),
            (None, Some(hold)) => format!(
                "hold {} every {}",
                duration(hold),
                duration(timing.interval)
            ),
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
                if let Some(latency) = http.max_latency {
                    expectations.push(format!("latency under {}", duration(latency)));
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
            name: probe.name.clone(),
            kind,
            target,
            expect,
            timing: timing_text,
        }
    }
}

/// Human form of a duration, as written in runbooks (`30s`, `1h 30m`).
pub(super) fn duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

fn retry(policy: &RetryPolicy) -> PlanRetry {
    PlanRetry {
        attempts: policy.attempts,
        delay: duration(policy.delay),
        backoff: policy.backoff,
    }
}

/// Truthiness of a rendered `if` (SPEC §6).
pub fn is_truthy(rendered: &str) -> bool {
    !matches!(rendered.trim(), "" | "false" | "0" | "no")
}

/// Builds the plan of a valid runbook whose variables are resolved in `context`.
pub fn build_plan(
    runbook: &Runbook,
    graph: &StepGraph,
    vars: &[ResolvedVar],
    context: &mut Context,
    engine: &TemplateEngine,
) -> Result<Plan, Vec<Diagnostic>> {
    for path in all_runtime_paths(runbook) {
        context.add_placeholder(path);
    }
    let prepared = PreparedContext::new(context.value())
        .map_err(|error| vec![Diagnostic::error("render", error.to_string(), None)])?;
    let mut renderer = Renderer {
        engine,
        context: prepared,
        problems: Vec::new(),
    };
    let env = renderer.env(&runbook.env);
    let rollback_order = rollback_order(runbook, graph);
    let ranked = ranked_compensations(runbook, graph);
    let steps: Vec<PlanStep> = graph
        .topological_order()
        .iter()
        .map(|&index| {
            plan_step(
                &mut renderer,
                runbook,
                graph,
                &ranked,
                &runbook.steps[index],
            )
        })
        .collect();
    let hooks = PlanHooks {
        on_start: runbook
            .hooks
            .on_start
            .iter()
            .map(|hook| renderer.render(&hook.run))
            .collect(),
        on_success: runbook
            .hooks
            .on_success
            .iter()
            .map(|hook| renderer.render(&hook.run))
            .collect(),
        on_failure: runbook
            .hooks
            .on_failure
            .iter()
            .map(|hook| renderer.render(&hook.run))
            .collect(),
        always: runbook
            .hooks
            .always
            .iter()
            .map(|hook| renderer.render(&hook.run))
            .collect(),
    };
    let rollback_verify = renderer.probes(&runbook.rollback_verify);
    if !renderer.problems.is_empty() {
        return Err(renderer.problems);
    }
    let id = |index: &usize| runbook.steps[*index].id.to_string();
    Ok(Plan {
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
                        super::MASK.to_string()
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
        timeout: runbook.timeout.map(duration),
        waves: graph
            .waves()
            .iter()
            .map(|wave| wave.iter().map(id).collect())
            .collect(),
        steps,
        rollback: PlanRollback {
            order: rollback_order
                .iter()
                .map(|wave| wave.iter().map(id).collect())
                .collect(),
            without_rollback: runbook
                .steps
                .iter()
                .filter(|step| {
                    step.rollback.is_none() && matches!(step.action, Action::Run(_)) && !step.pivot
                })
                .map(|step| step.id.to_string())
                .collect(),
            verify: rollback_verify,
        },
        hooks,
    })
}

fn all_runtime_paths(runbook: &Runbook) -> impl Iterator<Item = &Vec<String>> {
    let mut templates: Vec<&Template> = Vec::new();
    for step in &runbook.steps {
        templates.extend(step_templates(step));
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
    }
    templates.extend(runbook.rollback_verify.iter().flat_map(probe_templates));
    templates
        .into_iter()
        .flat_map(|template| template.runtime_paths.iter())
}

fn step_templates(step: &Step) -> Vec<&Template> {
    let mut templates: Vec<&Template> = Vec::new();
    match &step.action {
        Action::Run(template) | Action::Approve(template) => templates.push(template),
        Action::Check => {}
    }
    templates.extend(step.condition.iter());
    templates.extend(step.cwd.iter());
    templates.extend(step.shell.iter());
    templates.extend(step.env.iter().map(|entry| &entry.value));
    templates.extend(step.verify.iter().flat_map(probe_templates));
    if let Some(rollback) = &step.rollback {
        templates.push(&rollback.run);
        templates.extend(rollback.cwd.iter());
        templates.extend(rollback.shell.iter());
        templates.extend(rollback.env.iter().map(|entry| &entry.value));
        templates.extend(rollback.verify.iter().flat_map(probe_templates));
    }
    templates
}

fn probe_templates(probe: &Probe) -> Vec<&Template> {
    match &probe.kind {
        ProbeKind::Command {
            run,
            shell,
            env,
            expect,
            ..
        } => {
            let mut templates = vec![run];
            templates.extend(shell.iter());
            templates.extend(env.iter().map(|entry| &entry.value));
            templates.extend(
                expect
                    .stdout_contains
                    .iter()
                    .chain(&expect.stdout_not_contains)
                    .chain(&expect.stdout_matches),
            );
            templates
        }
        ProbeKind::Http(http) => {
            let mut templates = vec![&http.url];
            templates.extend(http.headers.iter().map(|entry| &entry.value));
            templates.extend(
                http.body
                    .iter()
                    .chain(&http.body_contains)
                    .chain(&http.body_matches),
            );
            templates
        }
        ProbeKind::Tcp { address } => vec![address],
    }
}

fn plan_step(
    renderer: &mut Renderer<'_>,
    runbook: &Runbook,
    graph: &StepGraph,
    ranked: &[usize],
    step: &Step,
) -> PlanStep {
    let (kind, command) = match &step.action {
        Action::Run(template) => ("run", Some(renderer.render(template))),
        Action::Approve(template) => ("approve", Some(renderer.render(template))),
        Action::Check => ("check", None),
    };
    let condition = step.condition.as_ref().map(|template| {
        if template.needs_run() {
            PlanCondition {
                template: template.text.clone(),
                rendered: None,
                decision: "decided at run time",
            }
        } else {
            let rendered = renderer.render(template);
            let decision = if is_truthy(&rendered) {
                "runs"
            } else {
                "skipped"
            };
            PlanCondition {
                template: template.text.clone(),
                rendered: Some(rendered),
                decision,
            }
        }
    });
    let cwd = step.cwd.as_ref().map_or_else(
        || runbook.directory.display().to_string(),
        |template| renderer.render(template),
    );
    let rollback = step.rollback.as_ref().map(|compensation| PlanCompensation {
        command: renderer.render(&compensation.run),
        only_if_succeeded: compensation.only_if_succeeded,
        timeout: compensation.timeout.map(duration),
        retry: retry(&compensation.retry),
        verify: renderer.probes(&compensation.verify),
    });
    PlanStep {
        id: step.id.to_string(),
        name: step.name.clone(),
        description: step.description.clone(),
        wave: graph.wave(step.index) + 1,
        needs: step
            .needs
            .iter()
            .map(|&need| runbook.steps[need].id.to_string())
            .collect(),
        condition,
        kind,
        command,
        shell: step
            .shell
            .iter()
            .map(|word| renderer.render(word))
            .collect(),
        cwd,
        env: renderer.env(&step.env),
        timeout: step.timeout.map(duration),
        retry: retry(&step.retry),
        grace: duration(step.grace),
        allow_failure: step.allow_failure,
        idempotent: step.idempotent,
        pivot: step.pivot,
        verify: renderer.probes(&step.verify),
        rollback,
        on_failure: failure_rollback(runbook, graph, ranked, step),
    }
}

/// Steps with a compensation grouped for a full rollback: latest wave first.
fn rollback_order(runbook: &Runbook, graph: &StepGraph) -> Vec<Vec<usize>> {
    graph
        .waves()
        .into_iter()
        .rev()
        .map(|wave| {
            wave.into_iter()
                .filter(|&index| {
                    runbook.steps[index].rollback.is_some() && !runbook.steps[index].pivot
                })
                .collect::<Vec<_>>()
        })
        .filter(|wave: &Vec<usize>| !wave.is_empty())
        .collect()
}

/// What a failure of `step` compensates: itself (unless `only_if_succeeded`), then every
/// upstream step with a compensation, latest first, stopping at an upstream pivot.
fn failure_rollback(
    runbook: &Runbook,
    graph: &StepGraph,
    ranked: &[usize],
    step: &Step,
) -> PlanFailure {
    let compensates_itself = step
        .rollback
        .as_ref()
        .is_some_and(|compensation| !compensation.only_if_succeeded)
        && !step.allow_failure;
    if step.allow_failure {
        return PlanFailure {
            compensates_itself: false,
            compensates: Vec::new(),
            compensates_total: 0,
            stopped_by_pivot: None,
        };
    }
    let pivot = runbook
        .steps
        .iter()
        .find(|other| other.pivot && graph.is_upstream(other.index, step.index))
        .map(|other| other.index);
    // `ranked` is sorted latest wave first: upstream steps are all in earlier waves.
    let wave = graph.wave(step.index);
    let start = ranked.partition_point(|&index| graph.wave(index) >= wave);
    let mut compensates = Vec::new();
    let mut compensates_total = 0;
    for &index in &ranked[start..] {
        // Behind a pivot only what finished after it is compensated: its descendants.
        let after_pivot = pivot.is_none_or(|pivot| graph.is_upstream(pivot, index));
        if graph.is_upstream(index, step.index) && after_pivot {
            compensates_total += 1;
            if compensates.len() < COMPENSATES_LISTED {
                compensates.push(runbook.steps[index].id.to_string());
            }
        }
    }
    PlanFailure {
        compensates_itself,
        compensates,
        compensates_total,
        stopped_by_pivot: pivot.map(|index| runbook.steps[index].id.to_string()),
    }
}

/// Steps with a compensation, latest wave first and later file position first: the order a
/// rollback takes.
fn ranked_compensations(runbook: &Runbook, graph: &StepGraph) -> Vec<usize> {
    let mut ranked: Vec<usize> = runbook
        .steps
        .iter()
        .filter(|step| step.rollback.is_some() && !step.pivot)
        .map(|step| step.index)
        .collect();
    ranked.sort_by_key(|&index| {
        (
            std::cmp::Reverse(graph.wave(index)),
            std::cmp::Reverse(index),
        )
    });
    ranked
}
