//! The hosts part of a plan (SPEC §12): each step's instances with their edges, commands
//! rendered per host where they read `host.*`, the rollouts' batches and what a failure in
//! each compensates, and the "if a step fails" rows per instance.

use serde_json::{Map, Value, json};

use super::instance_rollback::InstanceRollback;
use super::instances::{Expansion, expand};
use super::model::{
    Plan, PlanBatch, PlanBatchFailure, PlanHost, PlanInstance, PlanProbe, PlanRollout, SharedText,
};
use crate::format::written;
use crate::model::{Action, DurationValue, Host, Runbook};
use crate::template::{BorrowedContext, TemplateEngine};
use crate::validate::Diagnostic;

/// `host` as the templates of an instance on `host` read it.
pub fn host_value(host: &Host, ssh_user: Option<&str>, ssh_port: Option<u16>) -> Value {
    let vars: Map<String, Value> = host
        .vars
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    json!({
        "name": host.name,
        "address": host.address,
        "port": host.port.or(ssh_port).unwrap_or(22).to_string(),
        "user": host.user.as_deref().or(ssh_user).unwrap_or_default(),
        "groups": host.groups.join(","),
        "vars": vars,
    })
}

/// Fills the plan's hosts, instances and rollouts. `context` is the plan's template context
/// (with `host.*` placeholders); `rollout_verify` holds each rollout's probes, rendered.
pub fn add_hosts(
    plan: &mut Plan,
    runbook: &Runbook,
    selected: &[bool],
    context: &Value,
    engine: &TemplateEngine,
    mut rollout_verify: Vec<Vec<PlanProbe>>,
) -> Result<(), Vec<Diagnostic>> {
    let inventory = &runbook.inventory;
    let expansion: Expansion = expand(runbook, selected);
    let mut problems = batch_order_problems(runbook, &expansion);
    if !problems.is_empty() {
        return Err(problems);
    }
    let rollback = InstanceRollback::new(runbook, &expansion);
    plan.rollback.instances = rollback.full_order();
    let mut used = vec![false; inventory.hosts.len()];
    for plan_step in &mut plan.steps {
        let Some(step) = runbook.step(plan_step.id.as_str()) else {
            continue;
        };
        let range = expansion.of_step[step.index].clone();
        let Some(placement) = &step.on else {
            // A step on the engine's machine is one instance: its row follows the same rule.
            plan_step.on_failure = rollback.failure(range.start);
            continue;
        };
        plan_step.on = placement.targets.clone().into_boxed_slice();
        let template = match &step.action {
            Action::Run(template) if template.text.contains("host.") => Some(template),
            _ => None,
        };
        let name_template = step
            .name_template
            .as_deref()
            .filter(|template| template.text.contains("host."));
        let mut instances = Vec::with_capacity(range.len());
        for index in range {
            let instance = &expansion.instances[index];
            let Some(host) = instance.host else { continue };
            used[host] = true;
            // The context with this host, only for a step whose command or name reads it.
            let value = (template.is_some() || name_template.is_some()).then(|| {
                let mut value = context.clone();
                if let Some(root) = value.as_object_mut() {
                    root.insert(
                        "host".into(),
                        host_value(
                            &inventory.hosts[host],
                            inventory.ssh.user.as_deref(),
                            inventory.ssh.port,
                        ),
                    );
                }
                value
            });
            let mut render = |template: &crate::model::Template| {
                let value = value.as_ref().unwrap_or(context);
                match engine.render_for_plan(&template.text, &BorrowedContext::new(value)) {
                    Ok((text, _)) => text,
                    Err(error) => {
                        let message = format!(
                            "cannot render `{}` for host `{}`: {error}",
                            template.place, inventory.hosts[host].name
                        );
                        problems.push(Diagnostic::error(
                            "render",
                            message,
                            Some(template.position),
                        ));
                        template.text.clone()
                    }
                }
            };
            let command = template.map(&mut render);
            let name = name_template.map(&mut render);
            instances.push(PlanInstance {
                id: instance.id.clone(),
                host: SharedText::from(inventory.hosts[host].name.as_str()),
                needs: expansion.needs[index]
                    .iter()
                    .map(|&need| expansion.instances[need].id.clone())
                    .collect(),
                batch: expansion.batch[index].map(|(_, batch)| batch + 1),
                command,
                name,
                on_failure: rollback.failure(index),
            });
        }
        plan_step.instances = Some(instances.into_boxed_slice());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    plan.hosts = inventory
        .hosts
        .iter()
        .zip(&used)
        .filter(|(_, used)| **used)
        .map(|(host, _)| PlanHost {
            name: SharedText::from(host.name.as_str()),
            address: host.address.clone(),
            port: host.port.or(inventory.ssh.port),
            user: host.user.clone().or_else(|| inventory.ssh.user.clone()),
            groups: host.groups.clone(),
        })
        .collect();
    let name = |host: usize| SharedText::from(inventory.hosts[host].name.as_str());
    for (index, planned) in expansion.rollouts.iter().enumerate() {
        let rollout = &inventory.rollouts[planned.rollout];
        let verify = std::mem::take(&mut rollout_verify[planned.rollout]);
        plan.rollouts.push(PlanRollout {
            group: rollout.group.clone(),
            hosts: planned.hosts.iter().map(|&host| name(host)).collect(),
            steps: planned
                .steps
                .iter()
                .map(|&step| SharedText::from(runbook.steps[step].id.as_str()))
                .collect(),
            max_failed: rollout.max_failed.to_string(),
            tolerated: super::batches::failure_budget(planned.hosts.len(), rollout.max_failed),
            pause: rollout.pause.as_ref().map(|pause| match pause {
                DurationValue::Fixed(duration) => written(*duration),
                DurationValue::Template(template) => engine
                    .render_for_plan(&template.text, &BorrowedContext::new(context))
                    .map_or_else(
                        |_| template.text.clone(),
                        |(text, _)| text.trim().to_string(),
                    ),
            }),
            verify,
            batches: planned
                .batches
                .iter()
                .enumerate()
                .map(|(number, range)| {
                    let failure = rollback.batch_failure(index, number);
                    PlanBatch {
                        number: number + 1,
                        hosts: planned.hosts[range.clone()]
                            .iter()
                            .map(|&host| name(host))
                            .collect(),
                        on_failure: PlanBatchFailure {
                            hosts: failure.hosts,
                            compensates: failure.compensates,
                            before_rollout: failure.before_rollout,
                        },
                    }
                })
                .collect(),
        });
    }
    Ok(())
}

/// An instance that needs an instance of a later batch of its own rollout could never start:
/// the later batch waits for its batch to end. Refused before anything runs.
fn batch_order_problems(runbook: &Runbook, expansion: &Expansion) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for (index, needs) in expansion.needs.iter().enumerate() {
        let Some((rollout, batch)) = expansion.batch[index] else {
            continue;
        };
        let later = needs.iter().find(|&&need| {
            expansion.batch[need].is_some_and(|(theirs, other)| theirs == rollout && other > batch)
        });
        if let Some(&need) = later {
            let step = &runbook.steps[expansion.instances[index].step];
            let message = format!(
                "`{}` (batch {}) needs `{}` (batch {}) of the same rollout: it could never start",
                expansion.instances[index].id,
                batch + 1,
                expansion.instances[need].id,
                expansion.batch[need].map_or(0, |(_, other)| other + 1)
            );
            problems.push(
                Diagnostic::error("rollout-order", message, Some(step.position)).with_help(
                    "steps of one rollout should run on the same hosts (`on` the group), so each host's instance needs only its own host's",
                ),
            );
            if problems.len() >= 10 {
                break;
            }
        }
    }
    problems
}
