//! Steps on hosts (SPEC §12) as a run sees them: a runbook with `on` becomes an instance
//! runbook, one step per instance `id@host` with the edges `plan` shows (so the dispatcher,
//! the journal, `show`, `history`, reports, `resume` and `rollback RUN` all work per
//! instance), plus the `Fleet` a run holds: its control masters, how each host is reached,
//! each instance's host and batch, and the rollback rank `plan` uses.

use std::ops::Range;

use serde_json::Value;

use crate::model::{Rollout, Runbook, StepGraph, StepId};
use crate::plan::{Context, RolloutBatches, expand, host_value, rollback_ranks, select_hosts};
use crate::remote::{ControlMasters, SshTarget};

/// Where each instance of an instance runbook runs and how rollouts gate it.
#[derive(Debug, Clone)]
pub struct FleetLayout {
    /// Per instance (a step index of the instance runbook), its host (index into the
    /// inventory); `None` on the engine's machine.
    pub host: Vec<Option<usize>>,
    /// Per instance, its rollout (index into `rollouts`) and 0-based batch.
    pub batch: Vec<Option<(usize, usize)>>,
    /// Per instance, its place in the run order; a rollback goes highest first.
    pub rank: Vec<usize>,
    pub rollouts: Vec<RolloutBatches>,
    /// Per step of the runbook as written, its instances.
    pub of_step: Vec<Range<usize>>,
}

impl FleetLayout {
    /// Puts a compensation set in the reverse of the run order (see `Fleet::order_rollback`).
    pub fn order_rollback(&self, set: &mut [usize]) {
        set.sort_by_key(|&index| std::cmp::Reverse(self.rank.get(index).copied().unwrap_or(index)));
    }
}

/// The runbook a run executes: itself when no step has `on`, else one step per instance on
/// the hosts `limit` selects (ids `id@host`), each instance needing what `plan` says.
pub fn instance_runbook(
    runbook: Runbook,
    limit: &[String],
) -> Result<(Runbook, Option<FleetLayout>), String> {
    if runbook.steps.iter().all(|step| step.on.is_none()) {
        return Ok((runbook, None));
    }
    let selected = select_hosts(&runbook.inventory, limit).map_err(|problem| problem.message)?;
    let expansion = expand(&runbook, &selected);
    let inventory = &runbook.inventory;
    let steps = expansion
        .instances
        .iter()
        .enumerate()
        .map(|(index, instance)| {
            let mut step = runbook.steps[instance.step].clone();
            step.index = index;
            step.id = StepId(instance.id.to_string());
            step.needs = expansion.needs[index].clone();
            if let (Some(host), Some(placement)) = (instance.host, step.on.as_mut()) {
                placement.hosts = vec![host];
                placement.targets = vec![inventory.hosts[host].name.clone()];
            }
            step
        })
        .collect::<Vec<_>>();
    let layout = FleetLayout {
        host: expansion
            .instances
            .iter()
            .map(|instance| instance.host)
            .collect(),
        batch: expansion.batch.clone(),
        rank: rollback_ranks(&expansion),
        rollouts: expansion.rollouts.clone(),
        of_step: expansion.of_step.clone(),
    };
    let graph = StepGraph::new(steps.iter().map(|step| step.needs.clone()).collect());
    let mut runbook = runbook;
    runbook.steps = steps;
    runbook.graph = graph;
    Ok((runbook, Some(layout)))
}

/// The hosts of a run: how to reach each, and the run's control masters (one per host,
/// opened ahead when the run's first command on a host starts, closed by `close` at the end
/// of the run, killed if dropped).
#[derive(Debug)]
pub struct Fleet {
    pub layout: FleetLayout,
    pub masters: std::sync::Arc<ControlMasters>,
    /// Per inventory host.
    pub targets: Vec<SshTarget>,
    /// Per inventory host, `host` as templates read it.
    hosts: Vec<Value>,
    /// Whether `open_masters_ahead` ran.
    opened_ahead: std::sync::atomic::AtomicBool,
}

impl Fleet {
    /// The fleet of a run whose directory is `run_directory` (the masters' sockets go under
    /// it when the path is short enough, else in a private directory under /tmp).
    pub fn new(
        runbook: &Runbook,
        layout: FleetLayout,
        run_directory: &std::path::Path,
    ) -> std::io::Result<Fleet> {
        let inventory = &runbook.inventory;
        let ssh = &inventory.ssh;
        let targets = inventory
            .hosts
            .iter()
            .map(|host| SshTarget {
                name: host.name.clone(),
                address: host.address.clone(),
                port: host.port.or(ssh.port),
                user: host.user.clone().or_else(|| ssh.user.clone()),
                identity_file: host
                    .identity_file
                    .clone()
                    .or_else(|| ssh.identity_file.clone())
                    .map(|path| runbook.directory.join(expand_home(&path))),
                connect_timeout: ssh.connect_timeout,
                options: ssh.options.clone(),
            })
            .collect();
        let hosts = inventory
            .hosts
            .iter()
            .map(|host| host_value(host, ssh.user.as_deref(), ssh.port))
            .collect();
        Ok(Fleet {
            layout,
            masters: std::sync::Arc::new(ControlMasters::for_run(run_directory)?),
            targets,
            hosts,
            opened_ahead: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Once per run, when its first command on a host starts: opens the masters of every
    /// host the run has instances on, in the background, in run order (the current batch's
    /// hosts first), so that later batches do not wait for their connections.
    pub fn open_masters_ahead(&self) {
        if self
            .opened_ahead
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let mut order: Vec<usize> = (0..self.layout.host.len()).collect();
        order.sort_by_key(|&index| self.layout.rank.get(index).copied().unwrap_or(index));
        let mut hosts: Vec<usize> = Vec::new();
        for index in order {
            if let Some(host) = self.host_of(index)
                && !hosts.contains(&host)
            {
                hosts.push(host);
            }
        }
        let targets = hosts
            .into_iter()
            .map(|host| self.targets[host].clone())
            .collect();
        self.masters.open_ahead(targets);
    }

    /// The host instance `index` runs on, if any.
    pub fn host_of(&self, index: usize) -> Option<usize> {
        self.layout.host.get(index).copied().flatten()
    }

    /// Where a `run` probe on inventory host `host` runs.
    pub fn probe_host(&self, host: usize) -> super::probe::ProbeHost {
        super::probe::ProbeHost {
            masters: self.masters.clone(),
            target: self.targets[host].clone(),
        }
    }

    /// Sets `host` to inventory host `host`, and makes `steps.<step>` read that host's
    /// instance of each step on it (what a rollout's `verify` reads for the host).
    pub fn host_context(&self, runbook: &Runbook, host: usize, context: &mut Context) {
        context.set_host(self.hosts[host].clone());
        for step in &runbook.steps {
            if self.host_of(step.index) == Some(host)
                && let Some((written, _)) = step.id.as_str().split_once('@')
            {
                context.alias_step(step.id.as_str(), written);
            }
        }
        context.lift_host(&runbook.inventory.hosts[host].name);
    }

    /// Sets `host` in the context of instance `index`, and makes `steps.<step>` read its own
    /// host's instance of each step it reads.
    pub fn instance_context(&self, runbook: &Runbook, index: usize, context: &mut Context) {
        let Some(host) = self.host_of(index) else {
            return;
        };
        context.set_host(self.hosts[host].clone());
        let name = &runbook.inventory.hosts[host].name;
        for read in runbook.steps[index].reads_steps() {
            context.alias_step(&format!("{read}@{name}"), &read);
        }
        context.lift_host(name);
    }

    /// What instance `index` reads: the steps its templates name, and its host's instances
    /// of them.
    pub fn reads(&self, runbook: &Runbook, index: usize) -> Vec<String> {
        let mut reads = runbook.steps[index].reads_steps();
        if let Some(host) = self.host_of(index) {
            let name = &runbook.inventory.hosts[host].name;
            let own: Vec<String> = reads.iter().map(|read| format!("{read}@{name}")).collect();
            reads.extend(own);
        }
        reads
    }

    /// The rollout of instance `index`, as written.
    pub fn rollout<'a>(&self, runbook: &'a Runbook, index: usize) -> Option<&'a Rollout> {
        let (rollout, _) = self.layout.batch.get(index).copied().flatten()?;
        runbook
            .inventory
            .rollouts
            .get(self.layout.rollouts[rollout].rollout)
    }

    /// Puts a compensation set in the order `plan` shows: the reverse of the run order, in
    /// which a rollout's instances go batch by batch (so the current batch is undone first,
    /// then the earlier batches newest first, then what ran before the rollout).
    pub fn order_rollback(&self, set: &mut [usize]) {
        self.layout.order_rollback(set);
    }

    /// Whether compensations must run one at a time to keep that order: a rollout ran.
    pub fn sequential_rollback(&self) -> bool {
        !self.layout.rollouts.is_empty()
    }

    /// Closes every control master (`ssh -O exit`).
    pub async fn close(&self) {
        self.masters.close_all().await;
    }
}

/// `~/x` as `$HOME/x`; other paths as written.
fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}
