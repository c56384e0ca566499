//! What a run keeps on disk: the state directory and one directory per run.

mod run_directory;

pub use run_directory::{RunDirectory, new_run_info, state_directory};
