//! Which pending steps have every need settled in a way that lets them run, kept up to date as
//! steps finish: the dispatcher picks from these instead of looking at every step after every
//! event, which made a run quadratic in its number of steps.

use std::collections::BTreeSet;

use crate::events::StepStatus;
use crate::model::Step;

/// The steps whose needs let them run, and what is still awaited by the others.
#[derive(Debug)]
pub(super) struct Readiness {
    /// For each step, the steps that need it (once for each time they name it).
    dependents: Vec<Vec<usize>>,
    /// For each step, how many of its needs have not let it run (yet).
    awaited: Vec<usize>,
    /// Pending steps with nothing awaited, in file order (some may be held by a rollout).
    ready: BTreeSet<usize>,
    /// A step was skipped since the skips were last carried to what needs it.
    new_skip: bool,
}

impl Readiness {
    /// Readiness given where each step stands now (all pending, or as a resumed run left them).
    pub(super) fn new(steps: &[Step], statuses: &[StepStatus]) -> Readiness {
        let mut dependents = vec![Vec::new(); steps.len()];
        let mut awaited = vec![0; steps.len()];
        for step in steps {
            for &need in &step.needs {
                dependents[need].push(step.index);
                if !lets_run(&steps[need], statuses[need], step) {
                    awaited[step.index] += 1;
                }
            }
        }
        let ready = (0..steps.len())
            .filter(|&index| statuses[index] == StepStatus::Pending && awaited[index] == 0)
            .collect();
        Readiness {
            dependents,
            awaited,
            ready,
            new_skip: statuses.contains(&StepStatus::Skipped),
        }
    }

    /// Pending steps with nothing awaited, in file order.
    pub(super) fn ready(&self) -> impl Iterator<Item = usize> + '_ {
        self.ready.iter().copied()
    }

    /// Step `index` started (or otherwise left the pending steps).
    pub(super) fn started(&mut self, index: usize) {
        self.ready.remove(&index);
    }

    /// Step `index` finished with `status`: what needs it may now run.
    pub(super) fn finished(
        &mut self,
        steps: &[Step],
        statuses: &[StepStatus],
        index: usize,
        status: StepStatus,
    ) {
        self.ready.remove(&index);
        if status == StepStatus::Skipped {
            self.new_skip = true;
        }
        for &dependent in &self.dependents[index] {
            if lets_run(&steps[index], status, &steps[dependent]) {
                self.awaited[dependent] -= 1;
                if self.awaited[dependent] == 0 && statuses[dependent] == StepStatus::Pending {
                    self.ready.insert(dependent);
                }
            }
        }
    }

    /// Whether a step was skipped since the last call: only then can a pending step need a
    /// skipped one it has not been skipped for.
    pub(super) fn take_new_skip(&mut self) -> bool {
        std::mem::take(&mut self.new_skip)
    }
}

/// Whether `need`, having ended with `status`, lets `dependent` run.
fn lets_run(need: &Step, status: StepStatus, dependent: &Step) -> bool {
    lets_dependents_run(need, status)
        || (status == StepStatus::Skipped && dependent.runs_after_skipped)
}

/// Whether a step that ended with `status` lets the steps that need it run.
pub(super) fn lets_dependents_run(step: &Step, status: StepStatus) -> bool {
    match status {
        StepStatus::TimedOut => step.approve_on_timeout || step.allow_failure,
        StepStatus::Denied => step.allow_failure,
        status => status.satisfies_needs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    /// `a`; `b` and `c` need `a`; `d` needs `b` and `c` (runs after a skipped need); `e`
    /// needs `a` twice over; `f` needs `g`, which may fail.
    const RUNBOOK: &str = r#"version: 1
name: t
steps:
  - id: a
    run: "true"
  - id: b
    needs: [a]
    run: "true"
  - id: c
    needs: [a]
    run: "true"
  - id: d
    needs: [b, c]
    after_skipped: run
    run: "true"
  - id: e
    needs: [a, a]
    run: "true"
  - id: g
    run: "true"
    allow_failure: true
  - id: f
    needs: [g]
    run: "true"
"#;

    fn steps() -> Vec<Step> {
        let source = Source::new("t.yaml".into(), "t.yaml".into(), RUNBOOK.into());
        let runbook = crate::validate::validate(&source)
            .runbook
            .expect("a valid runbook");
        runbook.steps.clone()
    }

    fn ready(readiness: &Readiness) -> Vec<usize> {
        readiness.ready().collect()
    }

    #[test]
    fn a_step_is_ready_once_every_need_lets_it_run() {
        let steps = steps();
        let mut statuses = vec![StepStatus::Pending; steps.len()];
        let mut readiness = Readiness::new(&steps, &statuses);
        assert_eq!(ready(&readiness), [0, 5]);
        statuses[0] = StepStatus::Running;
        readiness.started(0);
        assert_eq!(ready(&readiness), [5]);
        statuses[0] = StepStatus::Succeeded;
        readiness.finished(&steps, &statuses, 0, StepStatus::Succeeded);
        assert_eq!(ready(&readiness), [1, 2, 4, 5], "`e` named `a` twice");
        statuses[1] = StepStatus::Succeeded;
        readiness.finished(&steps, &statuses, 1, StepStatus::Succeeded);
        assert_eq!(ready(&readiness), [2, 4, 5], "`d` still awaits `c`");
        // A skipped need lets run only a step that says `after_skipped: run`.
        statuses[2] = StepStatus::Skipped;
        readiness.finished(&steps, &statuses, 2, StepStatus::Skipped);
        assert_eq!(ready(&readiness), [3, 4, 5]);
        assert!(readiness.take_new_skip());
        assert!(!readiness.take_new_skip());
        // A failure allowed lets the steps that need it run; a failure does not.
        statuses[5] = StepStatus::FailedAllowed;
        readiness.finished(&steps, &statuses, 5, StepStatus::FailedAllowed);
        assert_eq!(ready(&readiness), [3, 4, 6]);
    }

    #[test]
    fn a_failed_need_holds_its_dependents_and_a_resumed_run_starts_where_it_was() {
        let steps = steps();
        let mut statuses = vec![StepStatus::Pending; steps.len()];
        let mut readiness = Readiness::new(&steps, &statuses);
        statuses[0] = StepStatus::Failed;
        readiness.finished(&steps, &statuses, 0, StepStatus::Failed);
        assert_eq!(ready(&readiness), [5]);

        let mut statuses = vec![StepStatus::Pending; steps.len()];
        statuses[0] = StepStatus::Succeeded;
        statuses[1] = StepStatus::Succeeded;
        statuses[2] = StepStatus::Skipped;
        statuses[5] = StepStatus::Running;
        let mut readiness = Readiness::new(&steps, &statuses);
        assert_eq!(ready(&readiness), [3, 4]);
        assert!(readiness.take_new_skip(), "a resumed skip is carried");
    }
}
