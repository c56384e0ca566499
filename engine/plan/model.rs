//! The plan as data: what `plan --format json` prints (format version 1, documented in the
//! README) and what the text and graph renderers read.

use serde::Serialize;

/// The whole execution plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub runbook: PlanRunbook,
    pub vars: Vec<PlanVar>,
    pub env: Vec<PlanEnv>,
    pub concurrency: usize,
    pub timeout: Option<String>,
    /// Step ids by wave: a wave starts when the steps it needs have finished.
    pub waves: Vec<Vec<String>>,
    pub steps: Vec<PlanStep>,
    pub rollback: PlanRollback,
    pub hooks: PlanHooks,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRunbook {
    pub name: String,
    pub description: Option<String>,
    pub file: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanVar {
    pub name: String,
    /// The value (`••••••` for secrets), or null when unset.
    pub value: Option<String>,
    pub source: String,
    pub secret: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanEnv {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// 1-based wave number.
    pub wave: usize,
    pub needs: Vec<String>,
    pub condition: Option<PlanCondition>,
    /// `run`, `approve` or `check`.
    pub kind: &'static str,
    /// The rendered script, or the approval question.
    pub command: Option<String>,
    pub shell: Vec<String>,
    pub cwd: String,
    pub env: Vec<PlanEnv>,
    pub timeout: Option<String>,
    pub retry: PlanRetry,
    pub grace: String,
    pub allow_failure: bool,
    pub idempotent: bool,
    pub pivot: bool,
    pub verify: Vec<PlanProbe>,
    pub rollback: Option<PlanCompensation>,
    pub on_failure: PlanFailure,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanCondition {
    pub template: String,
    /// The rendered condition, when it could be rendered before the run.
    pub rendered: Option<String>,
    /// `runs`, `skipped` or `decided at run time`.
    pub decision: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRetry {
    pub attempts: u32,
    pub delay: String,
    pub backoff: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanProbe {
    pub name: String,
    /// `run`, `http` or `tcp`.
    pub kind: &'static str,
    /// The rendered command, `METHOD url`, or `host:port`.
    pub target: String,
    /// What passing means, e.g. `exit code 0`, `status 200`.
    pub expect: Vec<String>,
    /// `once`, `within 2m every 5s` or `hold 5m every 30s`.
    pub timing: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanCompensation {
    pub command: String,
    pub only_if_succeeded: bool,
    pub timeout: Option<String>,
    pub retry: PlanRetry,
    pub verify: Vec<PlanProbe>,
}

/// The longest `compensates` list in a plan: a 10,000-step DAG would otherwise list
/// millions of ids.
pub const COMPENSATES_LISTED: usize = 20;

/// What a failure of this step would compensate.
#[derive(Debug, Clone, Serialize)]
pub struct PlanFailure {
    /// Whether the step's own compensation runs when it fails.
    pub compensates_itself: bool,
    /// Upstream steps (certain to have finished) whose compensations run, in order, at most
    /// `COMPENSATES_LISTED` of them; steps that ran in parallel and had finished are
    /// compensated too, in `rollback.order`.
    pub compensates: Vec<String>,
    /// How many upstream compensations run in all (the list above may be cut short).
    pub compensates_total: usize,
    /// A `pivot` upstream that stops compensation, if any.
    pub stopped_by_pivot: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRollback {
    /// Steps with a compensation, in the order a full rollback runs them, by wave (the reverse
    /// of the DAG); steps in one wave may be compensated in parallel.
    pub order: Vec<Vec<String>>,
    /// Steps with a command but no compensation: a rollback passes over them.
    pub without_rollback: Vec<String>,
    pub verify: Vec<PlanProbe>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PlanHooks {
    pub on_start: Vec<String>,
    pub on_success: Vec<String>,
    pub on_failure: Vec<String>,
    pub always: Vec<String>,
}
