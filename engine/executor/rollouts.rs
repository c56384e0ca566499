//! Where the rollouts of a run stand (SPEC §12), as the dispatcher's readiness reads them:
//! which batch of each rollout is open, the failure budget (`max_failed`), the hosts that
//! failed within it and take no further part, and what such a host's failure undoes. Pure
//! state and decisions; the dispatcher emits the events and runs what they decide.

use std::ops::Range;

use super::fleet::FleetLayout;
use crate::events::StepStatus;
use crate::model::Runbook;
use crate::rollback::{RanStep, plan_rollback};

/// Where one rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RolloutState {
    /// The batch whose instances may start (0-based); `batches` once all are done.
    current: usize,
    batches: usize,
    /// The batch is open: its gate (verify, pause) is not running.
    open: bool,
    /// Hosts that failed so far, and how many may.
    failed: usize,
    budget: usize,
}

/// A batch whose instances all ended: its gate runs next, on `hosts` (those of the batch
/// that did not fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndedBatch {
    pub rollout: usize,
    pub batch: usize,
    pub hosts: Vec<usize>,
}

/// A host failure within `max_failed`: the `failed`-th of `budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tolerated {
    pub failed: usize,
    pub budget: usize,
}

/// The rollouts of one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollouts {
    states: Vec<RolloutState>,
    /// Per inventory host: it failed within `max_failed` and takes no further part.
    excluded: Vec<bool>,
    /// Per instance: its compensation already ran in the forward phase (a tolerated host's).
    compensated: Vec<bool>,
}

impl Rollouts {
    /// The rollouts of `runbook` (an instance runbook) laid out by `layout`; none without.
    pub fn new(runbook: &Runbook, layout: Option<&FleetLayout>) -> Rollouts {
        let Some(layout) = layout else {
            return Rollouts::default();
        };
        let states = layout
            .rollouts
            .iter()
            .map(|planned| RolloutState {
                current: 0,
                batches: planned.batches.len(),
                open: true,
                failed: 0,
                budget: crate::plan::failure_budget(
                    planned.hosts.len(),
                    runbook.inventory.rollouts[planned.rollout].max_failed,
                ),
            })
            .collect();
        Rollouts {
            states,
            excluded: vec![false; runbook.inventory.hosts.len()],
            compensated: vec![false; runbook.steps.len()],
        }
    }

    /// Whether instance `index` may start as far as rollouts go: its host did not fail, and
    /// it is in the open batch of its rollout, if it has one.
    pub fn allows(&self, layout: &FleetLayout, index: usize) -> bool {
        if host_of(layout, index).is_some_and(|host| self.excluded[host]) {
            return false;
        }
        match layout.batch.get(index).copied().flatten() {
            None => true,
            Some((rollout, batch)) => {
                let state = &self.states[rollout];
                state.open && state.current == batch
            }
        }
    }

    /// Closes each open batch whose instances all ended (none pending or running) and
    /// returns them, each with the hosts its gate checks.
    pub fn close_ended_batches(
        &mut self,
        layout: &FleetLayout,
        statuses: &[StepStatus],
    ) -> Vec<EndedBatch> {
        let mut ended = Vec::new();
        for (rollout, state) in self.states.iter_mut().enumerate() {
            if !state.open || state.current >= state.batches {
                continue;
            }
            let batch = state.current;
            let busy = layout
                .batch
                .iter()
                .zip(statuses)
                .filter(|(place, _)| **place == Some((rollout, batch)))
                .any(|(_, status)| matches!(status, StepStatus::Pending | StepStatus::Running));
            if busy {
                continue;
            }
            state.open = false;
            let hosts = batch_hosts(layout, rollout, batch)
                .into_iter()
                .filter(|&host| !self.excluded[host])
                .collect();
            ended.push(EndedBatch {
                rollout,
                batch,
                hosts,
            });
        }
        ended
    }

    /// The gate after the current batch of `rollout` passed: the next batch opens.
    pub fn open_next(&mut self, rollout: usize) {
        let state = &mut self.states[rollout];
        state.current += 1;
        state.open = true;
    }

    /// Counts a failure of `host` in `rollout`. Within `max_failed` the host is taken out
    /// (it starts nothing more) and the tolerance is returned; beyond it, `None`: the run
    /// fails.
    pub fn host_failed(&mut self, rollout: usize, host: usize) -> Option<Tolerated> {
        let state = &mut self.states[rollout];
        state.failed += 1;
        if state.failed > state.budget {
            return None;
        }
        self.excluded[host] = true;
        Some(Tolerated {
            failed: state.failed,
            budget: state.budget,
        })
    }

    /// What a tolerated failure of `host` undoes: that host's instances that ran (`ran`
    /// reads an instance that never reached its host as pending), by the rollback rule,
    /// newest first; each is marked compensated so that the run's rollback leaves it alone.
    pub fn undo_host(
        &mut self,
        runbook: &Runbook,
        layout: &FleetLayout,
        host: usize,
        ran: &[RanStep],
    ) -> Vec<usize> {
        let on_host: Vec<RanStep> = ran
            .iter()
            .enumerate()
            .map(|(index, step)| RanStep {
                status: if host_of(layout, index) == Some(host) {
                    step.status
                } else {
                    StepStatus::Pending
                },
                finished_order: step.finished_order,
            })
            .collect();
        let mut plan = plan_rollback(runbook, &on_host);
        layout.order_rollback(&mut plan.compensate);
        for &index in &plan.compensate {
            self.compensated[index] = true;
        }
        plan.compensate
    }

    /// Whether instance `index` was undone already, with its tolerated host.
    pub fn compensated(&self, index: usize) -> bool {
        self.compensated.get(index).copied().unwrap_or(false)
    }
}

/// The pending instances of `host`: skipped once it failed within `max_failed`.
pub(crate) fn pending_on_host(
    layout: &FleetLayout,
    host: usize,
    statuses: &[StepStatus],
) -> Vec<usize> {
    statuses
        .iter()
        .enumerate()
        .filter(|&(index, &status)| {
            host_of(layout, index) == Some(host) && status == StepStatus::Pending
        })
        .map(|(index, _)| index)
        .collect()
}

/// The hosts of batch `batch` of rollout `rollout`.
fn batch_hosts(layout: &FleetLayout, rollout: usize, batch: usize) -> Vec<usize> {
    let planned = &layout.rollouts[rollout];
    planned
        .batches
        .get(batch)
        .map(|range: &Range<usize>| planned.hosts[range.clone()].to_vec())
        .unwrap_or_default()
}

fn host_of(layout: &FleetLayout, index: usize) -> Option<usize> {
    layout.host.get(index).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::instance_runbook;
    use crate::source::Source;

    /// `backup` on the engine's machine, then `release` on web1..web4 in batches [1, 2],
    /// `max_failed` as given.
    fn rolling(max_failed: &str) -> (Runbook, FleetLayout) {
        let text = format!(
            "version: 1\nname: t\nhosts:\n  web1: {{ address: a1, groups: [web] }}\n  web2: {{ address: a2, groups: [web] }}\n  web3: {{ address: a3, groups: [web] }}\n  web4: {{ address: a4, groups: [web] }}\nrollout:\n  web:\n    batch: [1, 2]\n    max_failed: {max_failed}\nsteps:\n  - id: backup\n    run: \"true\"\n    rollback: \"true\"\n  - id: release\n    on: web\n    needs: [backup]\n    run: \"true\"\n    rollback: \"true\"\n"
        );
        let source = Source::new("t.yaml".into(), "t.yaml".into(), text);
        let runbook = crate::validate::validate(&source)
            .runbook
            .expect("a valid runbook");
        let (runbook, layout) = instance_runbook(runbook, &[]).expect("instances");
        (runbook, layout.expect("a fleet"))
    }

    fn index(runbook: &Runbook, id: &str) -> usize {
        runbook.step(id).expect("an instance").index
    }

    #[test]
    fn only_the_open_batch_may_start_and_it_closes_once_its_instances_ended() {
        let (runbook, layout) = rolling("0");
        let mut rollouts = Rollouts::new(&runbook, Some(&layout));
        let allowed = |rollouts: &Rollouts, id: &str| rollouts.allows(&layout, index(&runbook, id));
        assert!(allowed(&rollouts, "backup"));
        assert!(allowed(&rollouts, "release@web1"));
        assert!(!allowed(&rollouts, "release@web2"));
        let mut statuses = vec![StepStatus::Pending; runbook.steps.len()];
        assert!(rollouts.close_ended_batches(&layout, &statuses).is_empty());
        statuses[index(&runbook, "release@web1")] = StepStatus::Succeeded;
        let ended = rollouts.close_ended_batches(&layout, &statuses);
        assert_eq!(
            ended,
            [EndedBatch {
                rollout: 0,
                batch: 0,
                hosts: vec![0]
            }]
        );
        // While the gate runs, nothing of the rollout starts; then the next batch opens.
        assert!(!allowed(&rollouts, "release@web2"));
        assert!(rollouts.close_ended_batches(&layout, &statuses).is_empty());
        rollouts.open_next(0);
        assert!(allowed(&rollouts, "release@web2") && allowed(&rollouts, "release@web3"));
        assert!(!allowed(&rollouts, "release@web4") && !allowed(&rollouts, "release@web1"));
    }

    #[test]
    fn failures_within_max_failed_take_the_host_out_and_the_next_one_fails_the_run() {
        let (runbook, layout) = rolling("1");
        let mut rollouts = Rollouts::new(&runbook, Some(&layout));
        assert_eq!(
            rollouts.host_failed(0, 1),
            Some(Tolerated {
                failed: 1,
                budget: 1
            })
        );
        rollouts.open_next(0);
        assert!(!rollouts.allows(&layout, index(&runbook, "release@web2")));
        assert!(rollouts.allows(&layout, index(&runbook, "release@web3")));
        assert_eq!(rollouts.host_failed(0, 2), None);
        // A failed host's gate is not run on it.
        let mut statuses = vec![StepStatus::Succeeded; runbook.steps.len()];
        statuses[index(&runbook, "release@web4")] = StepStatus::Pending;
        let ended = rollouts.close_ended_batches(&layout, &statuses);
        assert_eq!(ended[0].hosts, vec![2]);
    }

    #[test]
    fn a_tolerated_host_undoes_only_what_ran_on_it_and_is_not_undone_again() {
        let (runbook, layout) = rolling("1");
        let mut rollouts = Rollouts::new(&runbook, Some(&layout));
        let mut ran = vec![
            RanStep {
                status: StepStatus::Pending,
                finished_order: 0
            };
            runbook.steps.len()
        ];
        for (order, id) in ["backup", "release@web1", "release@web2"]
            .into_iter()
            .enumerate()
        {
            ran[index(&runbook, id)] = RanStep {
                status: StepStatus::Succeeded,
                finished_order: order + 1,
            };
        }
        let undone = rollouts.undo_host(&runbook, &layout, 1, &ran);
        assert_eq!(undone, vec![index(&runbook, "release@web2")]);
        assert!(rollouts.compensated(index(&runbook, "release@web2")));
        assert!(!rollouts.compensated(index(&runbook, "release@web1")));
        // Another host's instances are not undone with it.
        assert_eq!(
            rollouts.undo_host(&runbook, &layout, 0, &ran),
            vec![index(&runbook, "release@web1")]
        );
    }

    #[test]
    fn pending_instances_of_a_host_are_found_by_host() {
        let (runbook, layout) = rolling("1");
        let mut statuses = vec![StepStatus::Pending; runbook.steps.len()];
        statuses[index(&runbook, "backup")] = StepStatus::Succeeded;
        assert_eq!(
            pending_on_host(&layout, 3, &statuses),
            vec![index(&runbook, "release@web4")]
        );
        statuses[index(&runbook, "release@web4")] = StepStatus::Running;
        assert!(pending_on_host(&layout, 3, &statuses).is_empty());
    }
}
