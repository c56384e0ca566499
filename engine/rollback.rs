//! Which steps to compensate after a failure, and in what order (SPEC §8.5–8.7, §8.9): the
//! reverse of the DAG over the steps that ran, stopping at a pivot, honouring
//! `only_if_succeeded`; a failed compensation blocks those of the steps it depends on.

use crate::events::StepStatus;
use crate::model::Runbook;
use crate::validate::StepGraph;

/// What a forward step left behind, as the rollback planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct RanStep {
    pub status: StepStatus,
    /// Order in which steps finished (1 = first), 0 if it never finished.
    pub finished_order: usize,
}

/// The compensation set and why other steps that ran are not in it.
#[derive(Debug, Clone, Default)]
pub struct RollbackPlan {
    /// Steps to compensate.
    pub compensate: Vec<usize>,
    /// Steps that changed things but are not compensated because a pivot succeeded after them.
    pub behind_pivot: Vec<usize>,
    /// The pivot that stopped compensation, if any.
    pub pivot: Option<usize>,
}

/// Chooses the steps to compensate after the forward phase ended with a failure.
pub fn plan_rollback(runbook: &Runbook, ran: &[RanStep]) -> RollbackPlan {
    let pivot = runbook
        .steps
        .iter()
        .filter(|step| step.pivot && ran[step.index].status == StepStatus::Succeeded)
        .map(|step| step.index)
        .next();
    let pivot_order = pivot.map_or(0, |pivot| ran[pivot].finished_order);
    let mut plan = RollbackPlan {
        pivot,
        ..RollbackPlan::default()
    };
    for step in &runbook.steps {
        let state = ran[step.index];
        let Some(compensation) = &step.rollback else {
            continue;
        };
        let ran_at_all = matches!(
            state.status,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::FailedAllowed
                | StepStatus::Cancelled
        );
        if !ran_at_all || step.pivot {
            continue;
        }
        if state.status != StepStatus::Succeeded && compensation.only_if_succeeded {
            continue;
        }
        let finished_before_pivot =
            pivot.is_some() && state.finished_order != 0 && state.finished_order < pivot_order;
        if finished_before_pivot {
            plan.behind_pivot.push(step.index);
        } else {
            plan.compensate.push(step.index);
        }
    }
    plan
}

/// The compensations that must finish before `step`'s may start: those of the steps in the
/// set that depend on it, directly or not.
pub fn must_wait_for(graph: &StepGraph, set: &[usize], step: usize) -> Vec<usize> {
    set.iter()
        .copied()
        .filter(|&other| other != step && graph.is_upstream(step, other))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_follows_the_reverse_dag() {
        // a -> b, a -> c, b,c -> d
        let graph = StepGraph::new(vec![vec![], vec![0], vec![0], vec![1, 2]]);
        let set = vec![0, 1, 2, 3];
        assert_eq!(must_wait_for(&graph, &set, 0), vec![1, 2, 3]);
        assert_eq!(must_wait_for(&graph, &set, 1), vec![3]);
        assert!(must_wait_for(&graph, &set, 3).is_empty());
    }
}
