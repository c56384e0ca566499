//! The command line: clap types, one file per subcommand, diagnostics rendering.

#[macro_use]
mod output;

mod answer;
mod app;
mod args;
mod diagnostics;
mod history;
mod init;
mod list_instances;
mod load;
mod lost_compensations;
mod plan;
mod recorded_runbook;
mod recover;
mod report;
mod rollback_preview;
mod run;
mod schema;
mod session;
mod step_ids;
mod validate;

pub use app::main;
pub use schema::runbook_schema;
