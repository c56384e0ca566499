//! From a validated `Runbook` to the execution `Plan`: variables resolved, templates rendered
//! where they can be, steps in waves, and the rollback a failure at each step would take.

mod builder;
mod context;
mod graphics;
mod model;
mod text;
mod variables;

pub use builder::build_plan;
pub use context::{Context, PlanPlaceholders};
pub use graphics::{to_dot, to_mermaid};
pub use model::Plan;
pub use text::to_text;
pub use variables::{ResolvedVar, VarInputs, VarSource, resolve_vars, vars_file_values};
