//! From a validated `Runbook` to the execution `Plan`: variables resolved, templates rendered
//! where they can be, steps in waves, and the rollback a failure at each step would take.

mod batches;
mod builder;
mod context;
mod fleet;
mod graphics;
mod instance_rollback;
mod instances;
mod model;
mod text;
mod variables;

pub use batches::failure_budget;
pub use builder::build_plan;
pub use context::{Context, PlanPlaceholders};
pub use fleet::host_value;
pub use graphics::{to_dot, to_mermaid};
pub use instance_rollback::rollback_ranks;
pub use instances::{Expansion, RolloutBatches, expand, select_hosts};
pub use model::Plan;
pub use text::write_text;
pub use variables::{ResolvedVar, VarInputs, VarSource, resolve_vars, vars_file_values};
