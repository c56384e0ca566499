//! The gate between two batches of a rollout (SPEC §12): once every instance of a batch
//! ended, the rollout's `verify` runs on each of its hosts, then `pause` elapses; the next
//! batch opens only after (`rollouts.rs` holds where each rollout stands).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::command::CancelLevel;
use super::shared::{Renderer, RunShared};
use super::verify::{ProbePlace, verify_on};
use crate::events::{DurationMs, Event, Phase};
use crate::plan::Context;

/// How a batch's gate ended: the hosts whose `verify` failed, with why.
#[derive(Debug)]
pub(crate) struct GateResult {
    pub rollout: usize,
    pub failed: Vec<(usize, String)>,
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
    for &host in &hosts {
        if written.verify.is_empty() {
            break;
        }
        let name = &shared.runbook.inventory.hosts[host].name;
        let mut context = context.clone();
        fleet.host_context(&shared.runbook, host, &mut context);
        let id = crate::events::gate_row(&written.group, batch + 1, name);
        shared.emitter.emit(Event::GateStarted { step: id.clone() });
        let started = std::time::Instant::now();
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
        shared.emitter.emit(Event::GateFinished {
            step: id,
            passed: outcome.is_ok(),
            duration: DurationMs(started.elapsed()),
        });
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
    let pause = match &written.pause {
        Some(pause) if !last && result.failed.is_empty() => {
            match Renderer::new(&shared, &context).and_then(|renderer| renderer.duration(pause)) {
                Ok(pause) => Some(pause),
                Err(message) => {
                    // Without its pause the rollout must not go on: the batch's gate fails.
                    let why = format!("the `pause` of rollout `{}`: {message}", written.group);
                    result
                        .failed
                        .extend(hosts.iter().map(|&host| (host, why.clone())));
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(pause) = pause {
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
