//! The executor: one dispatcher loop runs the plan's steps as the DAG allows, verifies them
//! with probes, and on failure or signal compensates what ran in reverse DAG order.

mod approval;
mod command;
mod compensate;
mod dispatcher;
mod emitter;
mod fleet;
mod hooks;
mod http_client;
#[cfg(test)]
mod http_test_server;
mod options;
mod outcome;
mod outputs;
pub mod probe;
mod readiness;
mod remote_command;
mod rollback_phase;
mod rollout_events;
mod rollout_gate;
mod rollouts;
mod run_result;
mod shared;
mod signals;
mod step;
mod stopped_time;
mod terminal_lines;
mod verify;

pub use command::CancelLevel;
pub use compensate::{CompensationPreview, preview_compensation};
pub use dispatcher::{REHEARSED_FAILURE, Start, dispatch};
pub use emitter::{Emitter, EventSink, RunRecorder};
pub use fleet::{Fleet, FleetLayout, instance_runbook};
pub use options::RunOptions;
pub use run_result::{RunResult, StepSummary};
pub use shared::RunShared;
