//! `runbook approve RUN GATE` and `runbook deny RUN GATE [--reason TEXT]`: answer a gate a
//! run is waiting at, from any terminal that shares the state dir. The answer is left in the
//! run directory; the waiting run picks it up within a second and journals who answered.

use super::args::{AnswerArgs, GlobalArgs};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::state::{
    GateAnswer, RunRecord, current_user, find_run, state_directory, write_gate_answer,
};

pub(crate) fn answer(args: &AnswerArgs, approved: bool, global: &GlobalArgs) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    let directory = match find_run(&state, &args.run) {
        Ok(directory) => directory,
        Err(message) => {
            errln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let record = match RunRecord::load(&directory) {
        Ok(record) => record,
        Err(error) => {
            errln!("error: run `{}`: {error}: nothing was answered", args.run);
            return EXIT_INVALID;
        }
    };
    let run = &record.run_id;
    let gate = &args.gate;
    if let Some(end) = &record.end {
        errln!(
            "error: run {run} already finished ({}): no gate is waiting for an answer",
            end.outcome.as_str()
        );
        return EXIT_INVALID;
    }
    let waiting: Vec<&str> = record
        .steps
        .iter()
        .filter(|step| step.waiting_for_approval)
        .map(|step| step.id.as_str())
        .collect();
    if !waiting.contains(&gate.as_str()) {
        let now = match waiting.as_slice() {
            [] => "no gate is waiting now".to_string(),
            gates => format!(
                "waiting now: {}",
                gates
                    .iter()
                    .map(|gate| format!("`{gate}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        errln!("error: run {run} is not waiting at a gate `{gate}` ({now}): nothing was answered");
        return EXIT_INVALID;
    }
    let answer = GateAnswer {
        approved,
        by: current_user(),
        reason: args.reason.clone(),
    };
    if let Err(error) = write_gate_answer(&directory, gate, &answer) {
        errln!(
            "error: cannot leave the answer in `{}`: {error}",
            directory.display()
        );
        return EXIT_INVALID;
    }
    let word = if approved { "approved" } else { "denied" };
    outln!("{word} gate `{gate}` of run {run}: the run picks the answer up within a second");
    EXIT_SUCCESS
}
