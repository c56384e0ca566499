//! What a run keeps on disk: the state directory and one directory per run.

mod gate_answers;
mod journal;
mod journal_error;
mod journal_record;
mod journal_sync;
mod lock;
mod log_files;
mod module_copies;
mod private_file;
mod run_directory;
mod run_record;
mod run_summary;
mod secret_outputs;
mod unfinished_index;

pub use gate_answers::{GateAnswer, take_gate_answer, write_gate_answer};
pub(crate) use journal::user as current_user;
pub use journal::{
    JOURNAL_FILE, JOURNAL_FORMAT, JournalWriter, ReadJournal, for_each_record, read_journal,
};
pub use journal_error::{JournalError, describe as describe_journal_error};
pub use journal_record::{
    Entry, JournalHeader, Record, RecordedOptions, RecordedOrigin, RecordedVar, Resumed, RunMode,
};
pub use journal_sync::SyncWait;
pub use lock::{LockError, RunLock};
pub use log_files::LogFiles;
pub use module_copies::{MODULE_COPIES, keep_modules, kept_modules};
pub use run_directory::{
    RUNBOOK_COPY, RunDirectory, RunInfo, check_state_directory, find_run, latest_runs, list_runs,
    new_run_info, state_directory,
};
pub use run_record::{
    RecordedAction, RecordedApproval, RecordedEnd, RecordedPhase, RecordedProbe, RecordedProcess,
    RecordedStep, RollbackState, RunRecord,
};
pub use run_summary::{RunSummary, SUMMARY_FILE};
pub use secret_outputs::{restore_secret_outputs, save_secret_outputs};
pub use unfinished_index::UnfinishedIndex;
