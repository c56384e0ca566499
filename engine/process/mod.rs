//! Spawning one step command: its own process group, stdin from `/dev/null`, both output pipes
//! streamed as chunks, an exit that ends the step even while a background child holds the pipes,
//! and termination by SIGTERM to the group, a grace period, then SIGKILL. A watchdog process
//! stops the groups of running steps should the engine die.

mod command;
mod output;
mod program_path;
mod registry;
mod running;
mod spawn;
mod tree;
pub(crate) mod unix;
mod watchdog;

pub use command::{CommandSpec, SpawnError};
pub(crate) use output::pump;
pub use output::{OutputChunk, OutputStream};
pub use registry::{dismiss_watchdog, enable_watchdog};
pub(crate) use registry::{register, unregister};
pub use running::{ExitOutcome, OUTPUT_DRAIN, RunningProcess, TerminationReport};
pub use unix::{kill_surviving_group, start_time};
pub use watchdog::watchdog_main;
