//! The dispatcher's handling of rollouts (SPEC §12): whether the rollouts let an instance
//! start, closing ended batches and starting their gates, a gate's end, and a host failing
//! within `max_failed` or beyond (`rollouts.rs` holds the state and its decisions; this file
//! emits the events and acts on them for the dispatcher).

use tokio::task::JoinSet;

use super::dispatcher::{Dispatcher, skipped_report};
use super::rollout_gate::{GateResult, run_gate};
use super::rollouts::pending_on_host;
use super::step::StepReport;
use crate::events::{CancelReason, Event};

impl Dispatcher {
    /// Whether the rollouts let step `index` start (see `Rollouts::allows`).
    pub(super) fn rollout_allows(&self, index: usize) -> bool {
        self.shared
            .fleet
            .as_ref()
            .is_none_or(|fleet| self.rollouts.allows(&fleet.layout, index))
    }

    /// Closes each rollout batch whose instances all ended, starting its gate (the rollout's
    /// `verify` on its hosts, then `pause`).
    pub(super) fn advance_rollouts(&mut self, gates: &mut JoinSet<GateResult>) {
        let Some(fleet) = &self.shared.fleet else {
            return;
        };
        for ended in self
            .rollouts
            .close_ended_batches(&fleet.layout, &self.statuses)
        {
            gates.spawn(run_gate(
                self.shared.clone(),
                self.context.clone(),
                ended.rollout,
                ended.batch,
                ended.hosts,
                self.cancel.subscribe(),
            ));
        }
    }

    /// A batch's gate ended: hosts whose `verify` failed fail (within the budget or not);
    /// unless the run stops, the next batch opens.
    pub(super) fn handle_gate(&mut self, result: GateResult) {
        for (host, message) in result.failed {
            if !self.host_failed(result.rollout, host, &message) && self.stop_reason.is_none() {
                let id = self.shared.runbook.inventory.hosts[host].name.clone();
                self.stop(CancelReason::StepFailed { step: id }, message);
            }
        }
        if self.stop_reason.is_none() {
            self.rollouts.open_next(result.rollout);
        }
    }

    /// Host `host` of rollout `rollout` failed: within `max_failed` its finished instances
    /// are undone (newest first), its pending ones skipped, and it takes no further part
    /// (true); beyond, false: the run fails.
    fn host_failed(&mut self, rollout: usize, host: usize, message: &str) -> bool {
        let shared = self.shared.clone();
        let Some(fleet) = &shared.fleet else {
            return false;
        };
        let Some(tolerated) = self.rollouts.host_failed(rollout, host) else {
            return false;
        };
        let name = &shared.runbook.inventory.hosts[host].name;
        shared.emitter.emit(Event::Notice {
            message: format!(
                "{name} failed (tolerated: {} of `max_failed` {}): {message}; its instances are undone and it takes no further part",
                tolerated.failed, tolerated.budget
            ),
        });
        for index in pending_on_host(&fleet.layout, host, &self.statuses) {
            let reason = format!("host {name} failed (tolerated)");
            shared.emitter.emit(Event::StepSkipped {
                step: shared.runbook.steps[index].id.to_string(),
                reason: reason.clone(),
            });
            let mut report = skipped_report(index);
            report.message = Some(reason);
            self.finish_step(report);
        }
        let set = self
            .rollouts
            .undo_host(&shared.runbook, &fleet.layout, host, &self.ran());
        if !set.is_empty() {
            self.to_undo.push(set);
        }
        true
    }

    /// Whether the failure of step `index` is that of a rollout's host within `max_failed`
    /// (then the host is taken out and its instances undone).
    pub(super) fn tolerated(&mut self, index: usize, report: &StepReport) -> bool {
        let shared = self.shared.clone();
        let Some(fleet) = &shared.fleet else {
            return false;
        };
        let (Some((rollout, _)), Some(host)) = (fleet.layout.batch[index], fleet.host_of(index))
        else {
            return false;
        };
        if self.stop_reason.is_some() {
            return false;
        }
        self.reports[index] = Some(report.clone());
        let message = report.message.clone().unwrap_or_else(|| "failed".into());
        let id = &shared.runbook.steps[index].id;
        self.host_failed(rollout, host, &format!("`{id}`: {message}"))
    }
}
