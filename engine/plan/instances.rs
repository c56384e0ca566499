//! Expands steps with `on` into instances `id@host` (SPEC §12): the hosts `--limit` selects,
//! in inventory order; the dependency rule (same hosts: each host's instance needs the same
//! host's; otherwise every instance of the step named); and the batches of each rollout.
//! Linear in instances and their edges; a runbook without `on` has one instance per step.

use std::ops::Range;

use super::batches::batches;
use super::model::SharedText;
use crate::model::{Inventory, Runbook};
use crate::suggest::suggest;
use crate::validate::Diagnostic;

/// One instance: a step on one host, or a step on the engine's machine.
#[derive(Debug, Clone)]
pub struct Instance {
    pub step: usize,
    /// Index into `Inventory::hosts`; `None` on the engine's machine.
    pub host: Option<usize>,
    /// `id@host`, or the step id.
    pub id: SharedText,
}

/// A rollout whose group has selected hosts.
#[derive(Debug, Clone)]
pub struct RolloutBatches {
    /// Index into `Inventory::rollouts`.
    pub rollout: usize,
    /// The group's selected hosts, in inventory order.
    pub hosts: Vec<usize>,
    /// Batches as ranges of positions in `hosts`.
    pub batches: Vec<Range<usize>>,
    /// The steps on the group, in topological order.
    pub steps: Vec<usize>,
}

impl RolloutBatches {
    /// The 0-based batch of host `host`, when it is in the group.
    pub fn batch_of(&self, host: usize) -> Option<usize> {
        let position = self.hosts.iter().position(|&member| member == host)?;
        self.batches
            .iter()
            .position(|range| range.contains(&position))
    }
}

/// Every instance of a runbook and the edges between them.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// In the steps' topological order, each step's hosts in inventory order: an instance
    /// comes after every instance it needs.
    pub instances: Vec<Instance>,
    /// Per instance, the instances it needs (indices into `instances`).
    pub needs: Vec<Vec<usize>>,
    /// Per step index, its instances (a range of `instances`).
    pub of_step: Vec<Range<usize>>,
    pub rollouts: Vec<RolloutBatches>,
    /// Per instance, its rollout (index into `rollouts`) and 0-based batch.
    pub batch: Vec<Option<(usize, usize)>>,
}

/// The hosts `--limit` keeps: each pattern a host or a group name. Without patterns, every
/// host. A pattern matching nothing is an error naming it and the known names.
pub fn select_hosts(inventory: &Inventory, limit: &[String]) -> Result<Vec<bool>, Box<Diagnostic>> {
    let patterns: Vec<&str> = limit
        .iter()
        .map(|pattern| pattern.trim())
        .filter(|pattern| !pattern.is_empty())
        .collect();
    if patterns.is_empty() {
        return Ok(vec![true; inventory.hosts.len()]);
    }
    let mut selected = vec![false; inventory.hosts.len()];
    for pattern in patterns {
        let mut matched = false;
        for (index, host) in inventory.hosts.iter().enumerate() {
            if host.name == pattern || host.groups.iter().any(|group| group == pattern) {
                selected[index] = true;
                matched = true;
            }
        }
        if !matched {
            let hosts: Vec<&str> = inventory
                .hosts
                .iter()
                .map(|host| host.name.as_str())
                .collect();
            let groups = inventory.group_names();
            let known = if hosts.is_empty() {
                "no host is defined".to_string()
            } else {
                format!(
                    "hosts: {}; groups: {}",
                    hosts.join(", "),
                    if groups.is_empty() {
                        "none".to_string()
                    } else {
                        groups.join(", ")
                    }
                )
            };
            let help = match suggest(pattern, hosts.iter().chain(groups.iter()).copied()) {
                Some(best) => format!("did you mean `{best}`? {known}"),
                None => known,
            };
            let message = format!("`--limit {pattern}` matches no host or group");
            return Err(Box::new(
                Diagnostic::error("limit-matches-nothing", message, None).with_help(help),
            ));
        }
    }
    Ok(selected)
}

/// Expands every step into its instances over the `selected` hosts.
pub fn expand(runbook: &Runbook, selected: &[bool]) -> Expansion {
    let inventory = &runbook.inventory;
    let steps = &runbook.steps;
    // Each step's hosts once `--limit` applied; `None` for a step without `on`.
    let hosts: Vec<Option<Vec<usize>>> = steps
        .iter()
        .map(|step| {
            step.on.as_ref().map(|placement| {
                placement
                    .hosts
                    .iter()
                    .copied()
                    .filter(|&host| selected.get(host).copied().unwrap_or(false))
                    .collect()
            })
        })
        .collect();
    let mut instances = Vec::new();
    let mut of_step = vec![0..0; steps.len()];
    for &index in runbook.graph.topological_order() {
        let step = &steps[index];
        let start = instances.len();
        match &hosts[index] {
            None => instances.push(Instance {
                step: index,
                host: None,
                id: SharedText::from(step.id.as_str()),
            }),
            Some(list) => {
                for &host in list {
                    instances.push(Instance {
                        step: index,
                        host: Some(host),
                        id: SharedText::from(format!("{}@{}", step.id, inventory.hosts[host].name)),
                    });
                }
            }
        }
        of_step[index] = start..instances.len();
    }
    let mut needs = vec![Vec::new(); instances.len()];
    for (index, step) in steps.iter().enumerate() {
        for &need in &step.needs {
            let same_hosts = matches!((&hosts[index], &hosts[need]), (Some(mine), Some(theirs)) if mine == theirs);
            if same_hosts {
                for (mine, theirs) in of_step[index].clone().zip(of_step[need].clone()) {
                    needs[mine].push(theirs);
                }
            } else {
                for mine in of_step[index].clone() {
                    needs[mine].extend(of_step[need].clone());
                }
            }
        }
    }
    let mut rollouts = Vec::new();
    let mut batch = vec![None; instances.len()];
    for (rollout_index, rollout) in inventory.rollouts.iter().enumerate() {
        let group: Vec<usize> = inventory
            .group(&rollout.group)
            .into_iter()
            .filter(|&host| selected.get(host).copied().unwrap_or(false))
            .collect();
        let members: Vec<usize> = runbook
            .graph
            .topological_order()
            .iter()
            .copied()
            .filter(|&index| {
                steps[index]
                    .on
                    .as_ref()
                    .and_then(|placement| placement.rollout.as_deref())
                    == Some(rollout.group.as_str())
            })
            .collect();
        if group.is_empty() || members.is_empty() {
            continue;
        }
        let planned = RolloutBatches {
            rollout: rollout_index,
            batches: batches(group.len(), &rollout.batch),
            hosts: group,
            steps: members,
        };
        for &step in &planned.steps {
            for instance in of_step[step].clone() {
                if let Some(number) = instances[instance]
                    .host
                    .and_then(|host| planned.batch_of(host))
                {
                    batch[instance] = Some((rollouts.len(), number));
                }
            }
        }
        rollouts.push(planned);
    }
    Expansion {
        instances,
        needs,
        of_step,
        rollouts,
        batch,
    }
}
