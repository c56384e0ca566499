//! Which steps to compensate after a failure, and in what order (SPEC §8.5–8.7, §8.9): the
//! reverse of the DAG over the steps that ran, stopping at a pivot that succeeded, honouring
//! `only_if_succeeded`. One rule, `verdict`, serves both `run` and the plan's "if a step
//! fails" table, so the preview is what runs.

use crate::events::StepStatus;
use crate::model::{Runbook, Step, StepGraph};

/// What a rollback does with one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its compensation runs.
    Compensate,
    /// It has a compensation but finished before a pivot that succeeded: not undone.
    BehindPivot,
    /// Nothing to undo: no compensation, it never ran, it failed and its compensation is
    /// `only_if_succeeded`, or it is the pivot that succeeded.
    PassedOver,
}

/// The rule for one step that ended with `status`; `before_passed_pivot` says whether it
/// finished before a pivot that succeeded. A pivot that failed has not been passed: it is
/// compensated like any failed step.
pub fn verdict(step: &Step, status: StepStatus, before_passed_pivot: bool) -> Verdict {
    let Some(compensation) = &step.rollback else {
        return Verdict::PassedOver;
    };
    let ran = matches!(
        status,
        StepStatus::Succeeded
            | StepStatus::Failed
            | StepStatus::FailedAllowed
            | StepStatus::FailedTolerated
            | StepStatus::Cancelled
            | StepStatus::Approved
            | StepStatus::Denied
            | StepStatus::TimedOut
    );
    if !ran || (!status.is_success() && compensation.only_if_succeeded) {
        return Verdict::PassedOver;
    }
    if before_passed_pivot {
        return Verdict::BehindPivot;
    }
    if step.pivot && status.is_success() {
        // The point of no return itself: only what finished after it is undone.
        return Verdict::PassedOver;
    }
    Verdict::Compensate
}

/// `steps` sorted in the order a rollback takes them: latest wave first, later file position
/// first among equals. Every step comes after all the steps that depend on it.
pub fn in_rollback_order(graph: &StepGraph, steps: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut ordered: Vec<usize> = steps.into_iter().collect();
    ordered.sort_by_key(|&index| {
        (
            std::cmp::Reverse(graph.wave(index)),
            std::cmp::Reverse(index),
        )
    });
    ordered
}

/// What a forward step left behind, as the rollback planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct RanStep {
    pub status: StepStatus,
    /// Order in which steps finished (1 = first), 0 if it never finished.
    pub finished_order: usize,
}

/// The compensation set and why other steps that ran are not in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackPlan {
    /// Steps to compensate, in rollback order (`in_rollback_order`).
    pub compensate: Vec<usize>,
    /// Steps that changed things but are not compensated because a pivot succeeded after them.
    pub behind_pivot: Vec<usize>,
    /// The pivot that stopped compensation, if any: the last to succeed.
    pub pivot: Option<usize>,
}

/// Chooses the steps to compensate after the forward phase ended with a failure.
pub fn plan_rollback(runbook: &Runbook, ran: &[RanStep]) -> RollbackPlan {
    let pivot = runbook
        .steps
        .iter()
        .filter(|step| step.pivot && ran[step.index].status.is_success())
        .max_by_key(|step| ran[step.index].finished_order)
        .map(|step| step.index);
    let pivot_order = pivot.map_or(0, |pivot| ran[pivot].finished_order);
    let mut compensate = Vec::new();
    let mut behind_pivot = Vec::new();
    for step in &runbook.steps {
        let state = ran[step.index];
        let before = state.finished_order != 0 && state.finished_order < pivot_order;
        match verdict(step, state.status, before) {
            Verdict::Compensate => compensate.push(step.index),
            Verdict::BehindPivot => behind_pivot.push(step.index),
            Verdict::PassedOver => {}
        }
    }
    RollbackPlan {
        compensate: in_rollback_order(&runbook.graph, compensate),
        behind_pivot,
        pivot,
    }
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
    use crate::source::Source;

    #[test]
    fn waiting_follows_the_reverse_dag() {
        // a -> b, a -> c, b,c -> d
        let graph = StepGraph::new(vec![vec![], vec![0], vec![0], vec![1, 2]]);
        let set = vec![0, 1, 2, 3];
        assert_eq!(must_wait_for(&graph, &set, 0), vec![1, 2, 3]);
        assert_eq!(must_wait_for(&graph, &set, 1), vec![3]);
        assert!(must_wait_for(&graph, &set, 3).is_empty());
    }

    #[test]
    fn rollback_order_is_latest_wave_then_latest_in_file() {
        let graph = StepGraph::new(vec![vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(in_rollback_order(&graph, [0, 1, 2, 3]), vec![3, 2, 1, 0]);
    }

    fn runbook(yaml: &str) -> Runbook {
        let source = Source::new(
            std::path::PathBuf::from("test.yaml"),
            "test.yaml".into(),
            yaml.into(),
        );
        crate::validate::validate(&source)
            .runbook
            .expect("a valid runbook")
    }

    /// `a -> p (pivot) -> b`, every step with a compensation.
    const PIVOT: &str = "version: 1\nname: t\nsteps:\n  - id: a\n    run: \"true\"\n    rollback: \"true\"\n  - id: p\n    needs: [a]\n    pivot: true\n    run: \"true\"\n    rollback: \"true\"\n  - id: b\n    needs: [p]\n    run: \"true\"\n    rollback: \"true\"\n";

    fn ran(statuses: &[StepStatus]) -> Vec<RanStep> {
        statuses
            .iter()
            .enumerate()
            .map(|(index, &status)| RanStep {
                status,
                finished_order: if status == StepStatus::Pending {
                    0
                } else {
                    index + 1
                },
            })
            .collect()
    }

    #[test]
    fn a_failed_pivot_is_compensated_with_everything_before_it() {
        use StepStatus::{Failed, Pending, Succeeded};
        let plan = plan_rollback(&runbook(PIVOT), &ran(&[Succeeded, Failed, Pending]));
        assert_eq!(plan.compensate, vec![1, 0]);
        assert_eq!(plan.pivot, None);
        assert!(plan.behind_pivot.is_empty());
    }

    #[test]
    fn after_a_passed_pivot_only_later_steps_are_compensated() {
        use StepStatus::{Failed, Succeeded};
        let plan = plan_rollback(&runbook(PIVOT), &ran(&[Succeeded, Succeeded, Failed]));
        assert_eq!(plan.compensate, vec![2]);
        assert_eq!(plan.pivot, Some(1));
        assert_eq!(plan.behind_pivot, vec![0]);
    }

    #[test]
    fn only_if_succeeded_skips_a_failed_step() {
        let yaml = "version: 1\nname: t\nsteps:\n  - id: a\n    run: \"true\"\n    rollback:\n      run: \"true\"\n      only_if_succeeded: true\n";
        let runbook = runbook(yaml);
        let step = &runbook.steps[0];
        assert_eq!(
            verdict(step, StepStatus::Failed, false),
            Verdict::PassedOver
        );
        assert_eq!(
            verdict(step, StepStatus::Succeeded, false),
            Verdict::Compensate
        );
        assert_eq!(
            verdict(step, StepStatus::Pending, false),
            Verdict::PassedOver
        );
    }
}
