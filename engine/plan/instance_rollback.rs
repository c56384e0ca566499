//! What a failure compensates when steps run on hosts (SPEC §8, §12), per instance and per
//! rollout batch: the failed instance (unless `only_if_succeeded`), the instances certain to
//! have finished before it (upstream, and every instance of the rollout's earlier batches),
//! ordered current batch first, then earlier batches newest first, then the rest (what ran
//! before the rollout), each part in reverse DAG order. Used only by runbooks with `on`.

use super::instances::Expansion;
use super::model::{COMPENSATES_LISTED, PlanFailure, SharedText};
use crate::events::StepStatus;
use crate::model::Runbook;
use crate::rollback::{Verdict, verdict};

/// A set of instances as a bitset.
#[derive(Debug, Clone)]
struct InstanceSet(Vec<u64>);

impl InstanceSet {
    fn new(size: usize) -> InstanceSet {
        InstanceSet(vec![0; size.div_ceil(64)])
    }

    fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    fn contains(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }

    fn union(&mut self, other: &InstanceSet) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine |= theirs;
        }
    }

    /// How many members both sets have.
    fn count_common(&self, other: &InstanceSet) -> usize {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(mine, theirs)| (mine & theirs).count_ones() as usize)
            .sum()
    }
}

/// The rollback a failure takes, for each instance and each batch.
#[derive(Debug)]
pub struct InstanceRollback<'a> {
    runbook: &'a Runbook,
    expansion: &'a Expansion,
    /// Per instance, every instance upstream of it.
    upstream: Vec<InstanceSet>,
    /// Per instance, a pivot instance upstream of it, if any.
    pivot: Vec<Option<usize>>,
    /// Instances in the reverse of the order they run in (the DAG order, each rollout's
    /// instances batch by batch): the order compensations run in.
    by_rank: Vec<usize>,
    /// Instances a rollback compensates once they succeeded (no pivot in the way).
    compensable: InstanceSet,
    /// Per rollout, per batch: every instance certain to have finished once the batch is
    /// done (its instances, the earlier batches' and everything they needed).
    finished_by_batch: Vec<Vec<InstanceSet>>,
}

/// A batch failure's rollback: hosts by batch (current first) and the instances in order.
#[derive(Debug)]
pub struct BatchRollback {
    pub hosts: Vec<Vec<SharedText>>,
    /// Instances of the rollout's steps, in the order they are compensated.
    pub compensates: Vec<SharedText>,
    /// Then these, what ran before the rollout.
    pub before_rollout: Vec<SharedText>,
}

impl<'a> InstanceRollback<'a> {
    pub fn new(runbook: &'a Runbook, expansion: &'a Expansion) -> InstanceRollback<'a> {
        let count = expansion.instances.len();
        let mut upstream: Vec<InstanceSet> = Vec::with_capacity(count);
        let mut pivot = vec![None; count];
        for index in 0..count {
            let mut set = InstanceSet::new(count);
            for &need in &expansion.needs[index] {
                set.union(&upstream[need]);
                set.insert(need);
                if runbook.steps[expansion.instances[need].step].pivot {
                    pivot[index] = Some(need);
                } else if pivot[index].is_none() {
                    pivot[index] = pivot[need];
                }
            }
            upstream.push(set);
        }
        let rank = ranks(expansion);
        let mut by_rank: Vec<usize> = (0..count).collect();
        by_rank.sort_by_key(|&instance| std::cmp::Reverse(rank[instance]));
        let mut compensable = InstanceSet::new(count);
        for (index, instance) in expansion.instances.iter().enumerate() {
            let step = &runbook.steps[instance.step];
            if verdict(step, StepStatus::Succeeded, false) == Verdict::Compensate {
                compensable.insert(index);
            }
        }
        let mut finished_by_batch: Vec<Vec<InstanceSet>> = expansion
            .rollouts
            .iter()
            .map(|rollout| vec![InstanceSet::new(count); rollout.batches.len()])
            .collect();
        for (index, batch) in expansion.batch.iter().enumerate() {
            if let Some((rollout, number)) = *batch {
                let set = &mut finished_by_batch[rollout][number];
                set.insert(index);
                set.union(&upstream[index]);
            }
        }
        for sets in &mut finished_by_batch {
            for number in 1..sets.len() {
                let (earlier, later) = sets.split_at_mut(number);
                later[0].union(&earlier[number - 1]);
            }
        }
        InstanceRollback {
            runbook,
            expansion,
            upstream,
            pivot,
            by_rank,
            compensable,
            finished_by_batch,
        }
    }

    /// Whether instance `other`, finished, is compensated when `failed` fails.
    fn compensated(&self, other: usize, pivot: Option<usize>) -> bool {
        let before_pivot = pivot.is_some_and(|pivot| !self.upstream[other].contains(pivot));
        let step = &self.runbook.steps[self.expansion.instances[other].step];
        verdict(step, StepStatus::Succeeded, before_pivot) == Verdict::Compensate
    }

    /// Instances certain to have finished when `failed` fails: its upstream and, in a
    /// rollout, everything the earlier batches finished.
    fn finished_before(&self, failed: usize) -> InstanceSet {
        let mut set = self.upstream[failed].clone();
        if let Some((rollout, current)) = self.expansion.batch[failed]
            && current > 0
        {
            set.union(&self.finished_by_batch[rollout][current - 1]);
        }
        set
    }

    /// What a failure of instance `failed` compensates: how many instances in all, and the
    /// first `COMPENSATES_LISTED` in compensation order (a count and a walk down the ranks,
    /// so that a plan of thousands of instances stays quick).
    pub fn failure(&self, failed: usize) -> PlanFailure {
        let instance = &self.expansion.instances[failed];
        let step = &self.runbook.steps[instance.step];
        if step.allow_failure {
            return PlanFailure {
                compensates_itself: false,
                compensates: Vec::new(),
                compensates_total: 0,
                stopped_by_pivot: None,
            };
        }
        let set = self.finished_before(failed);
        let pivot = self.pivot[failed];
        let counted = |other: usize| {
            other != failed
                && set.contains(other)
                && match pivot {
                    None => self.compensable.contains(other),
                    Some(pivot) => self.compensated(other, Some(pivot)),
                }
        };
        let compensates_total = match pivot {
            None => {
                set.count_common(&self.compensable)
                    - usize::from(set.contains(failed) && self.compensable.contains(failed))
            }
            Some(_) => (0..self.expansion.instances.len())
                .filter(|&other| counted(other))
                .count(),
        };
        PlanFailure {
            compensates_itself: verdict(step, StepStatus::Failed, false) == Verdict::Compensate,
            compensates_total,
            compensates: self
                .by_rank
                .iter()
                .copied()
                .filter(|&other| counted(other))
                .take(COMPENSATES_LISTED.min(compensates_total))
                .map(|other| self.expansion.instances[other].id.clone())
                .collect(),
            stopped_by_pivot: pivot.map(|pivot| {
                SharedText::from(
                    self.runbook.steps[self.expansion.instances[pivot].step]
                        .id
                        .as_str(),
                )
            }),
        }
    }

    /// Every instance with a compensation, in the order a full rollback runs them.
    pub fn full_order(&self) -> Vec<SharedText> {
        self.by_rank
            .iter()
            .copied()
            .filter(|&other| self.compensable.contains(other))
            .map(|other| self.expansion.instances[other].id.clone())
            .collect()
    }

    /// What a failure in batch `batch` (0-based) of rollout `rollout` compensates, beyond
    /// `max_failed`: every instance of the rollout on the hosts of this batch and the earlier
    /// ones, then what they needed from before the rollout.
    pub fn batch_failure(&self, rollout: usize, batch: usize) -> BatchRollback {
        let planned = &self.expansion.rollouts[rollout];
        let inventory = &self.runbook.inventory;
        let hosts = (0..=batch)
            .rev()
            .map(|number| {
                planned.hosts[planned.batches[number].clone()]
                    .iter()
                    .map(|&host| SharedText::from(inventory.hosts[host].name.as_str()))
                    .collect()
            })
            .collect();
        let finished = &self.finished_by_batch[rollout][batch];
        let in_rollout =
            |other: usize| self.expansion.batch[other].is_some_and(|(theirs, _)| theirs == rollout);
        let (compensates, before_rollout): (Vec<usize>, Vec<usize>) = self
            .by_rank
            .iter()
            .copied()
            .filter(|&other| finished.contains(other) && self.compensable.contains(other))
            .partition(|&other| in_rollout(other));
        let ids = |list: Vec<usize>| {
            list.into_iter()
                .map(|other| self.expansion.instances[other].id.clone())
                .collect()
        };
        BatchRollback {
            hosts,
            compensates: ids(compensates),
            before_rollout: ids(before_rollout),
        }
    }
}

/// The order instances run in: the DAG order (instances are listed in it), except that each
/// rollout's instances, in the places they take, are put batch by batch. A rollback takes
/// them in the reverse (the plan and a run by this one rule).
pub fn rollback_ranks(expansion: &Expansion) -> Vec<usize> {
    ranks(expansion)
}

fn ranks(expansion: &Expansion) -> Vec<usize> {
    let count = expansion.instances.len();
    let mut order: Vec<usize> = (0..count).collect();
    for rollout in 0..expansion.rollouts.len() {
        let places: Vec<usize> = (0..count)
            .filter(|&place| {
                expansion.batch[order[place]].is_some_and(|(theirs, _)| theirs == rollout)
            })
            .collect();
        let mut members: Vec<usize> = places.iter().map(|&place| order[place]).collect();
        members
            .sort_by_key(|&instance| (expansion.batch[instance].map(|(_, batch)| batch), instance));
        for (place, instance) in places.into_iter().zip(members) {
            order[place] = instance;
        }
    }
    let mut rank = vec![0; count];
    for (place, instance) in order.into_iter().enumerate() {
        rank[instance] = place;
    }
    rank
}
