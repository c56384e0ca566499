//! The validated runbook: what the file means, with every reference resolved and every
//! duration parsed. Only `validate` builds these types.

mod probe;
mod runbook;
mod step;
mod template;

pub use probe::{
    Comparison, Expectation, HttpProbe, NumberCheck, Probe, ProbeKind, ProbeTiming, TimingTemplates,
};
pub use runbook::{EnvEntry, Hook, Hooks, Runbook, VarDecl};
pub use step::{Action, Compensation, RetryPolicy, Step, StepId};
pub use template::Template;
