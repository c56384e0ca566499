//! How a run ends (SPEC §8, exit codes): from why the forward phase stopped and what the
//! rollback did, the outcome, the exit code and the lines that tell a person what is left
//! to do. Pure functions, so every row of the exit code table has its own test.

use crate::errors::{
    EXIT_FAILED, EXIT_FAILED_NOT_ROLLED_BACK, EXIT_ROLLBACK_INCOMPLETE, EXIT_SIGHUP, EXIT_SIGINT,
    EXIT_SIGTERM, EXIT_SUCCESS,
};
use crate::events::{CancelReason, RunOutcome, StepStatus};
use crate::rollback::RollbackPlan;

/// What the decision needs to know of one step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepFacts<'a> {
    pub id: &'a str,
    /// How its forward phase ended.
    pub status: StepStatus,
    pub has_rollback: bool,
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub outcome: RunOutcome,
    pub exit_code: i32,
    /// What a person must do, after what the rollback itself reported.
    pub needs_a_person: Vec<String>,
}

impl Decision {
    fn new(outcome: RunOutcome, exit_code: i32) -> Decision {
        Decision {
            outcome,
            exit_code,
            needs_a_person: Vec::new(),
        }
    }
}

/// What comes after the forward phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterForward {
    /// The run ends here, with no rollback.
    Finish(Decision),
    /// Compensate, then decide with `after_rollback`.
    RollBack,
}

/// What the rollback did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RollbackResult<'a> {
    pub plan: &'a RollbackPlan,
    /// Every compensation of the set succeeded.
    pub complete: bool,
    /// `rollback_verify` passed (false when it did not run because the rollback was not complete).
    pub verified: bool,
}

/// The exit code of a run a signal interrupted, after its rollback (SPEC §8).
pub(crate) fn signal_exit(signal: &str) -> i32 {
    match signal {
        "SIGINT" => EXIT_SIGINT,
        "SIGTERM" => EXIT_SIGTERM,
        _ => EXIT_SIGHUP,
    }
}

fn signal_of(stop_reason: Option<&CancelReason>) -> Option<i32> {
    match stop_reason {
        Some(CancelReason::Signal { signal }) => Some(signal_exit(signal)),
        _ => None,
    }
}

/// How a run ends whenever its journal could not be written, in any phase: nothing more was
/// done (what is not recorded must not happen), and a later `rollback RUN` finishes from what
/// the journal holds. No compensation is blamed: those not started were never tried.
pub(crate) fn after_journal_failure(cause: &str, run_id: &str) -> Decision {
    let mut decision = Decision::new(RunOutcome::FailedNotRolledBack, EXIT_FAILED_NOT_ROLLED_BACK);
    // The run's record is the journal and the step logs: either failing stops it.
    let what = if cause.starts_with("cannot write the step logs") {
        cause.to_string()
    } else {
        format!("the journal could not be written: {cause}")
    };
    decision
        .needs_a_person
        .push(format!("{what}; fix it, then `runbook rollback {run_id}`"));
    decision
}

/// Decides whether the run ends after its forward phase: it succeeded, the journal failed
/// (nothing is compensated that could not be recorded), or `--no-rollback`.
pub(crate) fn after_forward(
    stop_reason: Option<&CancelReason>,
    no_rollback: bool,
    steps: &[StepFacts<'_>],
) -> AfterForward {
    match stop_reason {
        None => AfterForward::Finish(Decision::new(RunOutcome::Succeeded, EXIT_SUCCESS)),
        Some(CancelReason::JournalFailed { message }) => {
            let mut decision =
                Decision::new(RunOutcome::FailedNotRolledBack, EXIT_FAILED_NOT_ROLLED_BACK);
            decision.needs_a_person.push(format!(
                "the journal could not be written ({message}); nothing was compensated: fix the disk, then undo by hand what ran"
            ));
            for step in steps
                .iter()
                .filter(|step| step.status != StepStatus::Pending)
            {
                decision.needs_a_person.push(format!(
                    "`{}` ran ({})",
                    step.id,
                    step.status.as_str()
                ));
            }
            AfterForward::Finish(decision)
        }
        Some(reason) if no_rollback => {
            let exit_code = signal_of(Some(reason)).unwrap_or(EXIT_FAILED_NOT_ROLLED_BACK);
            let mut decision = Decision::new(RunOutcome::FailedNotRolledBack, exit_code);
            for step in steps
                .iter()
                .filter(|step| step.has_rollback && step.status != StepStatus::Pending)
            {
                decision.needs_a_person.push(format!(
                    "`{}` ran and was not compensated (`--no-rollback`)",
                    step.id
                ));
            }
            AfterForward::Finish(decision)
        }
        Some(_) => AfterForward::RollBack,
    }
}

/// How a run that was rolled back ends: stopped at a pivot (exit 4, a person finishes what
/// failed after it), incomplete (exit 3), or rolled back (exit 1, or the signal's code).
pub(crate) fn after_rollback(
    stop_reason: Option<&CancelReason>,
    rollback: RollbackResult<'_>,
    steps: &[StepFacts<'_>],
) -> Decision {
    if let Some(pivot) = rollback.plan.pivot {
        let pivot = steps[pivot].id;
        let mut decision = Decision::new(RunOutcome::FailedAfterPivot, EXIT_FAILED_NOT_ROLLED_BACK);
        for &index in &rollback.plan.behind_pivot {
            decision.needs_a_person.push(format!(
                "`{}` finished before pivot `{pivot}` and was not compensated",
                steps[index].id
            ));
        }
        for step in steps
            .iter()
            .filter(|step| matches!(step.status, StepStatus::Failed | StepStatus::Cancelled))
        {
            decision.needs_a_person.push(format!(
                "finish or repair `{}` by hand: it failed after pivot `{pivot}`",
                step.id
            ));
        }
        decision
    } else if !(rollback.complete && rollback.verified) {
        Decision::new(RunOutcome::RollbackIncomplete, EXIT_ROLLBACK_INCOMPLETE)
    } else {
        let exit_code = signal_of(stop_reason).unwrap_or(EXIT_FAILED);
        Decision::new(RunOutcome::RolledBack, exit_code)
    }
}

/// How a rollback of a finished run ends: `runbook rollback RUN` succeeds with exit 0;
/// `resume` finishing a failed run's rollback exits 1, the failed run's code.
pub(crate) fn after_rollback_only(requested: bool, complete: bool, verified: bool) -> Decision {
    if complete && verified {
        let exit_code = if requested { EXIT_SUCCESS } else { EXIT_FAILED };
        Decision::new(RunOutcome::RolledBack, exit_code)
    } else {
        Decision::new(RunOutcome::RollbackIncomplete, EXIT_ROLLBACK_INCOMPLETE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::{Cancelled, Failed, Pending, Succeeded};

    fn steps(statuses: &[(&'static str, StepStatus, bool)]) -> Vec<StepFacts<'static>> {
        statuses
            .iter()
            .map(|&(id, status, has_rollback)| StepFacts {
                id,
                status,
                has_rollback,
            })
            .collect()
    }

    fn failed(step: &str) -> CancelReason {
        CancelReason::StepFailed { step: step.into() }
    }

    fn signal(name: &str) -> CancelReason {
        CancelReason::Signal {
            signal: name.into(),
        }
    }

    fn rolled(plan: &RollbackPlan, complete: bool, verified: bool) -> RollbackResult<'_> {
        RollbackResult {
            plan,
            complete,
            verified,
        }
    }

    #[test]
    fn a_run_with_no_stop_succeeds_with_exit_0() {
        let facts = steps(&[("a", Succeeded, true)]);
        let AfterForward::Finish(decision) = after_forward(None, false, &facts) else {
            panic!("a run that did not stop has nothing to roll back");
        };
        assert_eq!(decision.outcome, RunOutcome::Succeeded);
        assert_eq!(decision.exit_code, 0);
        assert!(decision.needs_a_person.is_empty());
    }

    #[test]
    fn a_failed_step_rolls_back() {
        let facts = steps(&[("a", Failed, true)]);
        let reason = failed("a");
        assert_eq!(
            after_forward(Some(&reason), false, &facts),
            AfterForward::RollBack
        );
    }

    #[test]
    fn a_complete_rollback_exits_1() {
        let facts = steps(&[("a", Succeeded, true), ("b", Failed, true)]);
        let plan = RollbackPlan {
            compensate: vec![1, 0],
            ..RollbackPlan::default()
        };
        let decision = after_rollback(Some(&failed("b")), rolled(&plan, true, true), &facts);
        assert_eq!(decision.outcome, RunOutcome::RolledBack);
        assert_eq!(decision.exit_code, 1);
        assert!(decision.needs_a_person.is_empty());
    }

    #[test]
    fn a_failed_compensation_or_verification_is_a_rollback_incomplete_exit_3() {
        let facts = steps(&[("a", Failed, true)]);
        let plan = RollbackPlan::default();
        for (complete, verified) in [(false, false), (true, false)] {
            let decision = after_rollback(
                Some(&failed("a")),
                rolled(&plan, complete, verified),
                &facts,
            );
            assert_eq!(decision.outcome, RunOutcome::RollbackIncomplete);
            assert_eq!(decision.exit_code, 3);
        }
        // A signal does not hide an incomplete rollback.
        let decision = after_rollback(Some(&signal("SIGINT")), rolled(&plan, false, false), &facts);
        assert_eq!(decision.exit_code, 3);
    }

    #[test]
    fn a_failure_after_a_pivot_exits_4_and_names_what_a_person_must_do() {
        let facts = steps(&[
            ("a", Succeeded, true),
            ("p", Succeeded, false),
            ("b", Succeeded, true),
            ("c", Failed, false),
            ("d", Cancelled, false),
        ]);
        let plan = RollbackPlan {
            compensate: vec![2],
            behind_pivot: vec![0],
            pivot: Some(1),
        };
        let decision = after_rollback(Some(&failed("c")), rolled(&plan, true, true), &facts);
        assert_eq!(decision.outcome, RunOutcome::FailedAfterPivot);
        assert_eq!(decision.exit_code, 4);
        assert_eq!(
            decision.needs_a_person,
            vec![
                "`a` finished before pivot `p` and was not compensated",
                "finish or repair `c` by hand: it failed after pivot `p`",
                "finish or repair `d` by hand: it failed after pivot `p`",
            ]
        );
    }

    #[test]
    fn no_rollback_exits_4_and_lists_what_ran_with_a_compensation() {
        let facts = steps(&[
            ("a", Succeeded, true),
            ("b", Succeeded, false),
            ("c", Failed, true),
            ("d", Pending, true),
        ]);
        let AfterForward::Finish(decision) = after_forward(Some(&failed("c")), true, &facts) else {
            panic!("--no-rollback must not roll back");
        };
        assert_eq!(decision.outcome, RunOutcome::FailedNotRolledBack);
        assert_eq!(decision.exit_code, 4);
        assert_eq!(
            decision.needs_a_person,
            vec![
                "`a` ran and was not compensated (`--no-rollback`)",
                "`c` ran and was not compensated (`--no-rollback`)",
            ]
        );
    }

    #[test]
    fn a_signal_exits_with_its_code_after_the_rollback() {
        let facts = steps(&[("a", Cancelled, true)]);
        let plan = RollbackPlan {
            compensate: vec![0],
            ..RollbackPlan::default()
        };
        for (name, code) in [("SIGHUP", 129), ("SIGINT", 130), ("SIGTERM", 143)] {
            let reason = signal(name);
            assert_eq!(
                after_forward(Some(&reason), false, &facts),
                AfterForward::RollBack
            );
            let decision = after_rollback(Some(&reason), rolled(&plan, true, true), &facts);
            assert_eq!(decision.outcome, RunOutcome::RolledBack);
            assert_eq!(decision.exit_code, code, "{name}");
        }
    }

    #[test]
    fn a_signal_with_no_rollback_still_exits_with_its_code() {
        let facts = steps(&[("a", Cancelled, true)]);
        let AfterForward::Finish(decision) = after_forward(Some(&signal("SIGTERM")), true, &facts)
        else {
            panic!("--no-rollback must not roll back");
        };
        assert_eq!(decision.outcome, RunOutcome::FailedNotRolledBack);
        assert_eq!(decision.exit_code, 143);
    }

    #[test]
    fn a_journal_failure_compensates_nothing_and_exits_4() {
        let facts = steps(&[
            ("a", Succeeded, true),
            ("b", Cancelled, false),
            ("c", Pending, true),
        ]);
        let reason = CancelReason::JournalFailed {
            message: "disk full".into(),
        };
        // Even without `--no-rollback`: what cannot be recorded must not happen.
        let AfterForward::Finish(decision) = after_forward(Some(&reason), false, &facts) else {
            panic!("a journal failure must not roll back");
        };
        assert_eq!(decision.outcome, RunOutcome::FailedNotRolledBack);
        assert_eq!(decision.exit_code, 4);
        assert_eq!(decision.needs_a_person.len(), 3);
        assert!(decision.needs_a_person[0].contains("disk full"));
        assert_eq!(decision.needs_a_person[1], "`a` ran (succeeded)");
        assert_eq!(decision.needs_a_person[2], "`b` ran (cancelled)");
    }

    #[test]
    fn a_rollback_of_a_finished_run_exits_0_when_requested_else_1_and_3_when_incomplete() {
        assert_eq!(after_rollback_only(true, true, true).exit_code, 0);
        assert_eq!(after_rollback_only(false, true, true).exit_code, 1);
        let incomplete = after_rollback_only(true, true, false);
        assert_eq!(incomplete.outcome, RunOutcome::RollbackIncomplete);
        assert_eq!(incomplete.exit_code, 3);
        assert_eq!(after_rollback_only(false, false, false).exit_code, 3);
    }
}
