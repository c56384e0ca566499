//! Printing that never panics: a closed pipe (`runbook plan x | head`) or a vanished
//! terminal must not turn into a crash. A write to stdout that fails for another reason (a
//! full disk, `> /dev/full`) is remembered, so that the command does not exit 0 after a
//! truncated output; stderr write errors are ignored (there is nowhere left to say so).

use std::sync::OnceLock;

/// Why stdout could not be written, the first time it could not.
static STDOUT_FAILURE: OnceLock<String> = OnceLock::new();

/// Remembers a failed write to stdout; a closed pipe is the reader's choice, not a failure.
pub(crate) fn note_stdout(result: std::io::Result<()>) {
    if let Err(error) = result
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = STDOUT_FAILURE.set(error.to_string());
    }
}

/// Flushes stdout and says why something written to it is lost, if anything is.
pub(crate) fn stdout_failure() -> Option<String> {
    use std::io::Write as _;
    note_stdout(std::io::stdout().flush());
    STDOUT_FAILURE.get().cloned()
}

/// `print!` that never panics; a failure is remembered (`stdout_failure`).
macro_rules! out {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        crate::cli::output::note_stdout(write!(std::io::stdout(), $($argument)*));
    }};
}

/// `println!` that never panics; a failure is remembered (`stdout_failure`).
macro_rules! outln {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        crate::cli::output::note_stdout(writeln!(std::io::stdout(), $($argument)*));
    }};
}

/// `eprint!` that ignores write errors.
macro_rules! err {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($argument)*);
    }};
}

/// `eprintln!` that ignores write errors.
macro_rules! errln {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}
