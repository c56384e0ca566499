//! The validated runbook: what the file means, with every reference resolved and every
//! literal duration parsed (a templated one is parsed when used). Only `validate` builds
//! these types.

mod duration;
mod graph;
mod hosts;
mod list_value;
mod probe;
mod runbook;
mod step;
mod template;

pub use duration::{DurationValue, MAX_DURATION, parse_rendered};
pub use graph::{StepGraph, find_cycles};
pub use hosts::{Host, HostCount, Inventory, Placement, Rollout, SshDefaults};
pub use list_value::{list_text, parse_list};
pub use probe::{
    Comparison, Expectation, HttpProbe, NumberCheck, Probe, ProbeKind, ProbeTiming, TimingTemplates,
};
pub use runbook::{EnvEntry, ForEachVar, Hook, Hooks, Runbook, VarDecl};
pub use step::{Action, Compensation, PromisedOutput, RetryPolicy, Step, StepId};
pub use template::{Shell, Template};
