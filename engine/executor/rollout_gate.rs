//! Rollouts as one more input of the dispatcher's readiness (SPEC §12): a rollout's
//! instances start batch by batch; a batch opens once every instance of the one before it
//! ended, the rollout's `verify` passed on each of its hosts and `pause` elapsed. Also the
//! failure budget: which host failures are tolerated (`max_failed`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::command::CancelLevel;
use super::fleet::Fleet;
use super::shared::{Renderer, RunShared};
use super::verify::{ProbePlace, verify_on};
use crate::events::{Event, Phase};
use crate::plan::Context;

/// Where one rollout stands.
#[derive(Debug, Clone)]
pub(crate) struct RolloutState {
    /// The batch whose instances may start (0-based); `batches` once all are done.
    pub current: usize,
    pub batches: usize,
    /// The batch is open: its gate (verify, pause) is not running.
    pub open: bool,
    /// Hosts that failed so far, and how many may.
    pub failed: usize,
    pub budget: usize,
}

/// How a batch's gate ended: the hosts whose `verify` failed, with why.
#[derive(Debug)]
pub(crate) struct GateResult {
    pub rollout: usize,
    pub failed: Vec<(usize, String)>,
}

/// The state of each rollout of a run.
pub(crate) fn rollout_states(shared: &RunShared) -> Vec<RolloutState> {
    let Some(fleet) = &shared.fleet else {
        return Vec::new();
    };
    fleet
        .layout
        .rollouts
        .iter()
        .map(|planned| {
            let rollout = &shared.runbook.inventory.rollouts[planned.rollout];
            RolloutState {
                current: 0,
                batches: planned.batches.len(),
                open: true,
                failed: 0,
                budget: crate::plan::failure_budget(planned.hosts.len(), rollout.max_failed),
            }
        })
        .collect()
}

/// The hosts of batch `batch` of rollout `rollout`.
pub(crate) fn batch_hosts(fleet: &Fleet, rollout: usize, batch: usize) -> Vec<usize> {
    let planned = &fleet.layout.rollouts[rollout];
    planned
        .batches
        .get(batch)
        .map(|range| planned.hosts[range.clone()].to_vec())
        .unwrap_or_default()
}

/// The gate after batch `batch` of rollout `rollout`: the rollout's `verify` for each of
/// `hosts` (rendered with that host), then, unless it was the last batch or a host failed,
/// `pause`.
pub(crate) async fn run_gate(
    shared: Arc<RunShared>,
    context: Context,
    rollout: usize,
    batch: usize,
    hosts: Vec<usize>,
    mut cancel: watch::Receiver<CancelLevel>,
) -> GateResult {
    let mut result = GateResult {
        rollout,
        failed: Vec::new(),
    };
    let Some(fleet) = &shared.fleet else {
        return result;
    };
    let planned = &fleet.layout.rollouts[rollout];
    let written = &shared.runbook.inventory.rollouts[planned.rollout];
    for host in hosts {
        if written.verify.is_empty() {
            break;
        }
        let name = &shared.runbook.inventory.hosts[host].name;
        let mut context = context.clone();
        fleet.host_context(host, &mut context);
        let id = format!("rollout {} batch {} on {name}", written.group, batch + 1);
        let outcome = match Renderer::new(&shared, &context) {
            Ok(renderer) => verify_on(
                &written.verify,
                ProbePlace {
                    step: &id,
                    on_host: Some(host),
                },
                Phase::Forward,
                &renderer,
                &shared.base_env,
                &shared,
                &mut cancel,
            )
            .await
            .map_err(|error| error.message),
            Err(message) => Err(message),
        };
        if let Err(message) = outcome {
            result.failed.push((
                host,
                format!(
                    "the `verify` of rollout `{}` failed on {name} after batch {}: {message}",
                    written.group,
                    batch + 1
                ),
            ));
        }
    }
    let last = batch + 1 >= planned.batches.len();
    if let (Some(pause), false, true) = (written.pause, last, result.failed.is_empty()) {
        shared.emitter.emit(Event::Notice {
            message: format!(
                "rollout `{}`: batch {} done; pausing {} before batch {}",
                written.group,
                batch + 1,
                humantime::format_duration(pause),
                batch + 2
            ),
        });
        pause_unless_cancelled(pause, &mut cancel).await;
    }
    result
}

async fn pause_unless_cancelled(pause: Duration, cancel: &mut watch::Receiver<CancelLevel>) {
    tokio::select! {
        () = tokio::time::sleep(pause) => {}
        _ = cancel.wait_for(|level| *level != CancelLevel::None) => {}
    }
}
