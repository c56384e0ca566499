//! The plan as data: what `plan --format json` prints (format version 1, documented in the
//! README) and what the text and graph renderers read.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// Text that many places of a plan repeat (step ids, the default shell, the working
/// directory): cloning it shares one allocation, so a plan of thousands of steps does not
/// hold thousands of copies. Serialized as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedText(Arc<str>);

impl SharedText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        SharedText(Arc::from(text))
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        SharedText(Arc::from(text))
    }
}

impl Deref for SharedText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl fmt::Display for SharedText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl Serialize for SharedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

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
    pub waves: Vec<Vec<SharedText>>,
    pub steps: Vec<PlanStep>,
    pub rollback: PlanRollback,
    pub hooks: PlanHooks,
    /// The hosts steps run on, after `--limit` (SPEC §12); omitted without hosts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<PlanHost>,
    /// `--limit` as given; omitted when not given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limit: Vec<String>,
    /// Each rolled-out group's batches; omitted without rollouts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<PlanRollout>,
}

/// A host some step runs on.
#[derive(Debug, Clone, Serialize)]
pub struct PlanHost {
    pub name: SharedText,
    pub address: String,
    /// Null when the SSH client's default (or `~/.ssh/config`) decides.
    pub port: Option<u16>,
    pub user: Option<String>,
    pub groups: Vec<String>,
}

/// One instance of a step with `on`: the step on one host.
#[derive(Debug, Clone, Serialize)]
pub struct PlanInstance {
    /// `id@host`.
    pub id: SharedText,
    pub host: SharedText,
    /// Instances (or steps without `on`) it waits for.
    pub needs: Vec<SharedText>,
    /// Its rollout batch, 1-based, when its step is rolled out.
    pub batch: Option<usize>,
    /// The command rendered for this host, when it reads `host.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The step's name rendered for this host, when it reads `host.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub on_failure: PlanFailure,
}

/// A group rolled out batch by batch.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRollout {
    pub group: String,
    /// The group's hosts, in inventory order (after `--limit`).
    pub hosts: Vec<SharedText>,
    /// The steps on the group, in DAG order.
    pub steps: Vec<SharedText>,
    /// `max_failed` as written, and the hosts it tolerates.
    pub max_failed: String,
    pub tolerated: usize,
    pub pause: Option<String>,
    pub verify: Vec<PlanProbe>,
    pub batches: Vec<PlanBatch>,
}

/// One batch of a rollout.
#[derive(Debug, Clone, Serialize)]
pub struct PlanBatch {
    /// 1-based.
    pub number: usize,
    pub hosts: Vec<SharedText>,
    /// What a failure in this batch (beyond `max_failed`) compensates.
    pub on_failure: PlanBatchFailure,
}

/// The rollback of a failed batch.
#[derive(Debug, Clone, Serialize)]
pub struct PlanBatchFailure {
    /// Hosts compensated, by batch: the current batch first, then earlier batches, newest
    /// first.
    pub hosts: Vec<Vec<SharedText>>,
    /// The rollout's instances on those hosts, in the order they are compensated.
    pub compensates: Vec<SharedText>,
    /// Then what ran before the rollout, in the order it is compensated.
    pub before_rollout: Vec<SharedText>,
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

/// One step of the plan. Lists are `Box<[T]>` and optional texts `Box<str>` (8 bytes fewer
/// than a `Vec` or a `String`), rare parts boxed: a plan holds one per step, 10,000 or more.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub id: SharedText,
    pub name: SharedText,
    pub description: Option<Box<str>>,
    /// 1-based wave number.
    pub wave: usize,
    pub needs: Box<[SharedText]>,
    /// Boxed, like `rollback`: most steps have neither, and inline they were a quarter of
    /// every step of the plan.
    pub condition: Option<Box<PlanCondition>>,
    /// `run`, `approve` or `check`.
    pub kind: StepKind,
    /// The rendered script, or the approval question.
    pub command: Option<String>,
    pub shell: Box<[SharedText]>,
    pub cwd: SharedText,
    pub env: Box<[PlanEnv]>,
    pub timeout: Option<Box<str>>,
    pub retry: PlanRetry,
    pub grace: SharedText,
    pub allow_failure: bool,
    pub idempotent: bool,
    pub pivot: bool,
    /// Its effect cannot be undone (a message sent): no compensation, by intent.
    pub irreversible: bool,
    /// `skip` (default): skipped when a step it needs was skipped; `run`: runs anyway.
    pub after_skipped: WhenSkipped,
    /// A step it needs whose skip would skip this one too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_with: Option<SharedText>,
    /// For an approval gate with a `timeout`: `approve` or `deny` when nobody answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<TimeoutAnswer>,
    pub verify: Box<[PlanProbe]>,
    pub rollback: Option<Box<PlanCompensation>>,
    pub on_failure: PlanFailure,
    /// `{{#if}}`/`{{#unless}}` blocks in this step's templates that only a run can decide,
    /// outermost first; omitted when there are none.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub decisions: Box<[PlanDecision]>,
    /// `on` as written: host and group names; omitted for a step on the engine's machine.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub on: Box<[String]>,
    /// One instance per selected host; omitted for a step on the engine's machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Box<[PlanInstance]>>,
    /// For a module's step or a `for_each` instance, where it was written (`FILE:LINE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_at: Option<Box<str>>,
    /// For a module's step, the call that brought it in: `` `uses: FILE` at FILE:LINE ``.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub called_at: Option<Box<str>>,
}

/// What a step does; a byte, where a `&str` took 16 in each step of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Run,
    Approve,
    Check,
}

/// `after_skipped`: whether a step is skipped with a step it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenSkipped {
    Skip,
    Run,
}

/// The answer of an approval gate nobody answered before its `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAnswer {
    Approve,
    Deny,
}

impl fmt::Display for TimeoutAnswer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            TimeoutAnswer::Approve => "approve",
            TimeoutAnswer::Deny => "deny",
        })
    }
}

/// A block whose condition depends on what only a run knows: both branches, rendered.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDecision {
    /// Where the block is written (`steps[2].run`).
    pub place: String,
    /// The condition as written (`gt steps.probe.outputs.rate 5`); `not (...)` for `unless`.
    pub condition: String,
    /// What the template renders when the condition holds.
    pub then: String,
    /// What it renders otherwise; null when the block has no branch for that case.
    #[serde(rename = "else")]
    pub otherwise: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanCondition {
    pub template: String,
    /// The rendered condition, when it could be rendered before the run.
    pub rendered: Option<String>,
    /// `runs`, `skipped` or `decided at run time`.
    pub decision: &'static str,
    /// True when the condition depends on what only a run knows (a step's outputs): the plan
    /// shows the step, and the run decides.
    pub decided_at_run_time: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRetry {
    pub attempts: u32,
    pub delay: SharedText,
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
    /// The compensation's own `env`, rendered (secrets masked); the step's `env` applies too.
    pub env: Vec<PlanEnv>,
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
    pub compensates: Vec<SharedText>,
    /// How many upstream compensations run in all (the list above may be cut short).
    pub compensates_total: usize,
    /// A `pivot` upstream that stops compensation, if any.
    pub stopped_by_pivot: Option<SharedText>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRollback {
    /// Steps with a compensation, in the order a full rollback runs them, by wave (the reverse
    /// of the DAG); steps in one wave may be compensated in parallel.
    pub order: Vec<Vec<SharedText>>,
    /// Steps with a command but no compensation: a rollback passes over them.
    pub without_rollback: Vec<SharedText>,
    /// When steps run on hosts: every instance with a compensation, in the order a full
    /// rollback (`rollback RUN`) runs them, each rollout's last batch first; omitted
    /// otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<SharedText>,
    /// Steps marked `irreversible`: a rollback cannot undo them, by intent.
    pub irreversible: Vec<SharedText>,
    pub verify: Vec<PlanProbe>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PlanHooks {
    pub on_start: Vec<String>,
    pub on_success: Vec<String>,
    pub on_failure: Vec<String>,
    pub always: Vec<String>,
}
