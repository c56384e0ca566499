//! What a dispatch returns: how the run ended and each step's final state, for the summary.

use std::time::Duration;

use crate::events::{CancelReason, RunOutcome, StepStatus};

/// One step's final state, for the summary.
#[derive(Debug, Clone)]
pub struct StepSummary {
    pub id: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub duration: Duration,
    pub message: Option<String>,
    pub tail: Vec<String>,
    /// What its compensation did, if it ran or was blocked.
    pub compensation: Option<StepStatus>,
    pub compensation_message: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub exit_code: i32,
    pub steps: Vec<StepSummary>,
    pub needs_a_person: Vec<String>,
    pub stop_reason: Option<CancelReason>,
    /// The runbook's `summary`, rendered at the end (masked).
    pub summary: Option<String>,
}
