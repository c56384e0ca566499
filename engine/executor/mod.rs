//! The executor: one dispatcher loop runs the plan's steps as the DAG allows, verifies them
//! with probes, and on failure or signal compensates what ran in reverse DAG order.

pub(crate) mod http;
pub mod probe;
