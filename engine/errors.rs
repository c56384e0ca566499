//! Engine errors and the exit codes of SPEC §8 as named constants.

/// The run succeeded (or the runbook is valid).
pub const EXIT_SUCCESS: i32 = 0;
/// A step failed and everything was rolled back.
pub const EXIT_FAILED: i32 = 1;
/// Invalid runbook or usage: nothing ran.
pub const EXIT_INVALID: i32 = 2;
/// Rollback incomplete: a person must act.
pub const EXIT_ROLLBACK_INCOMPLETE: i32 = 3;
/// Failed; rollback not attempted or stopped at a pivot.
pub const EXIT_FAILED_NOT_ROLLED_BACK: i32 = 4;
/// `resume` needs a decision about an in-doubt step.
pub const EXIT_NEEDS_DECISION: i32 = 5;
/// The output could not be written (a full disk, `> /dev/full`): EX_IOERR of sysexits.
pub const EXIT_IO: i32 = 74;
/// Another run holds the lock.
pub const EXIT_LOCKED: i32 = 75;
/// Interrupted by SIGHUP, after its rollback.
pub const EXIT_SIGHUP: i32 = 129;
/// Interrupted by SIGINT, after its rollback.
pub const EXIT_SIGINT: i32 = 130;
/// Interrupted by SIGTERM, after its rollback.
pub const EXIT_SIGTERM: i32 = 143;

/// Why the engine itself could not do its job (a step failing is not one of these).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("cannot read vars file `{path}`")]
    VarsFile {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("vars file `{path}` is not a YAML mapping of names to values: {message}")]
    VarsFileFormat { path: String, message: String },
    #[error("cannot write `{path}`")]
    Write {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

impl EngineError {
    pub fn exit_code(&self) -> i32 {
        EXIT_INVALID
    }
}
