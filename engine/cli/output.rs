//! Printing that never panics: a closed pipe (`runbook plan x | head`) or a vanished
//! terminal must not turn into a crash, so write errors on stdout and stderr are ignored.

/// `print!` that ignores write errors.
macro_rules! out {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($argument)*);
    }};
}

/// `println!` that ignores write errors.
macro_rules! outln {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($argument)*);
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
