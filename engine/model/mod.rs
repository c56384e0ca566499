//! The validated runbook: what the file means, with every reference resolved and every
//! duration parsed. Only `validate` builds these types.

mod graph;
mod probe;
mod runbook;
mod step;
mod template;

pub use graph::{StepGraph, find_cycles};
pub use probe::{
    Comparison, Expectation, HttpProbe, NumberCheck, Probe, ProbeKind, ProbeTiming, TimingTemplates,
};
pub use runbook::{EnvEntry, Hook, Hooks, Runbook, VarDecl};
pub use step::{Action, Compensation, RetryPolicy, Step, StepId};
pub use template::Template;
