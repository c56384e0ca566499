//! The top level of a runbook file (SPEC §2).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{
    OrderedMap, RawHosts, RawProbe, RawRetry, RawRollout, RawSsh, RawStep, RawVar, Script, Spanned,
};

/// A runbook file as written.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "runbook",
    description = "A declarative runbook: steps as a DAG, verification probes and compensations",
    // `x-` keys are ignored (document/extensions.rs): a place for YAML anchors.
    extend("patternProperties" = { "^x-": {} })
)]
pub struct RawRunbook {
    /// Format version; only 1 exists.
    pub version: Spanned<i64>,
    /// Identifier, `[a-z0-9][a-z0-9_-]*`; names the run lock and run directories.
    pub name: Spanned<String>,
    /// Shown by `plan` and reports.
    pub description: Option<Spanned<String>>,
    /// The run lock's name (default: `name`), `[a-z0-9][a-z0-9_-]*`: runbooks that change the
    /// same system (deploy, emergency rollback) name one lock.
    pub lock: Option<Spanned<String>>,
    /// Inputs (SPEC §3).
    pub vars: Option<Spanned<OrderedMap<Spanned<RawVar>>>>,
    /// Environment for every step, rendered once per run.
    pub env: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Defaults for every step.
    pub defaults: Option<Spanned<RawDefaults>>,
    /// Most steps running at once (default 4; `-j N` overrides).
    pub concurrency: Option<Spanned<i64>>,
    /// Limit for the whole run.
    pub timeout: Option<Spanned<String>>,
    /// Script text by name, inserted into any script as `{{> name}}` and rendered in that
    /// script's context (SPEC §13).
    pub snippets: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Only in a module: what it returns to its caller, name -> a template of its steps' outputs and its inputs.
    pub outputs: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// The steps; they and their `needs` form a DAG.
    pub steps: Spanned<Vec<RawStep>>,
    /// Commands run at the start and the end of a run.
    pub hooks: Option<Spanned<RawHooks>>,
    /// Probes run after a rollback compensated everything, proving the system is back.
    pub rollback_verify: Option<Spanned<Vec<RawProbe>>>,
    /// One line rendered at the end of a run from vars and any step's outputs (`sev={{steps.classify.outputs.sev}}`), shown by `history`, `show` and reports.
    pub summary: Option<Spanned<String>>,
    /// Remote hosts, name -> host, in rollout order (SPEC §12).
    pub hosts: Option<Spanned<RawHosts>>,
    /// A file with more hosts (the same map), relative to the runbook.
    pub inventory: Option<Spanned<String>>,
    /// Connection defaults for every host.
    pub ssh: Option<Spanned<RawSsh>>,
    /// Rolling rollouts: group -> how its hosts go through its steps in batches.
    pub rollout: Option<Spanned<OrderedMap<Spanned<RawRollout>>>>,
}

/// `defaults`: values every step gets unless it says otherwise.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Interpreter argv; the script is passed as the last argument.
    pub shell: Option<Spanned<Vec<Spanned<String>>>>,
    /// Limit for one attempt of a step's `run`.
    pub timeout: Option<Spanned<String>>,
    /// Retry policy.
    pub retry: Option<Spanned<RawRetry>>,
    /// Working directory.
    pub cwd: Option<Spanned<String>>,
    /// Time between SIGTERM and SIGKILL on timeout or cancel.
    pub grace: Option<Spanned<String>>,
}

/// `hooks` (SPEC §8.8).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    /// Before the first step.
    pub on_start: Option<Spanned<Vec<RawHook>>>,
    /// After a successful run.
    pub on_success: Option<Spanned<Vec<RawHook>>>,
    /// After a failed run, once its rollback finished.
    pub on_failure: Option<Spanned<Vec<RawHook>>>,
    /// Last, whatever the outcome.
    pub always: Option<Spanned<Vec<RawHook>>>,
}

/// One hook command.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// Display name.
    pub name: Option<Spanned<String>>,
    /// Script text; may use `run.status` and any step's outputs.
    pub run: Script,
    /// Extra environment variables, templated.
    pub env: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Limit for the hook (default 1m).
    pub timeout: Option<Spanned<String>>,
}
