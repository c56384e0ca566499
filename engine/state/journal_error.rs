//! Why the journal could not be written or read, and that error as one line.

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal write failed: `{path}`")]
    Write {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot read the journal `{path}`")]
    Read {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("the journal `{path}` is damaged at line {line} (byte {offset}): {problem}")]
    Damaged {
        path: String,
        line: usize,
        offset: u64,
        problem: String,
    },
    #[error("the journal `{path}` has no header record (not one complete record)")]
    NoHeader { path: String },
}

/// A journal error as one line, its cause included.
pub fn describe(error: &JournalError) -> String {
    let mut message = error.to_string();
    if let Some(cause) = std::error::Error::source(error) {
        message.push_str(&format!(": {cause}"));
    }
    message
}
