//! `runbook`: a declarative YAML runbook engine.
//!
//! The pipeline: `source` reads the text; `document` parses it into `RawRunbook` (values with
//! positions); `validate` checks every rule and builds the `model::Runbook`; `plan` resolves
//! variables and renders the execution plan that `runbook plan` prints; `cli` wires the
//! subcommands and renders diagnostics. `process` (spawning a step in its own process group)
//! and `secrets` (stream-safe masking) are the executor's foundations; `remote` runs a step on
//! a host over OpenSSH.

pub mod bounded_read;
pub mod ca_file;
pub mod cli;
pub mod document;
pub mod errors;
pub mod events;
pub mod executor;
pub mod format;
pub mod model;
pub mod plan;
pub mod process;
pub mod remote;
pub mod report;
pub mod rollback;
pub mod secrets;
pub mod source;
pub mod state;
pub mod suggest;
mod tag_first;
pub mod template;
pub mod validate;
