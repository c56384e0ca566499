//! One problem found in a runbook: what, where, and what to do about it.

use crate::document::Position;
use crate::source::Source;

/// Errors stop a runbook from running; warnings do not, unless `--strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A problem with a position in the runbook, a stable code for tools, and an optional hint.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable kebab-case identifier, e.g. `unknown-need`.
    pub code: &'static str,
    pub message: String,
    pub position: Option<Position>,
    /// Underline this many characters from `position` (0: the whole token).
    pub length: usize,
    pub label: Option<String>,
    pub help: Option<String>,
    /// Other places that belong to the problem (the first of two duplicate ids).
    pub related: Vec<(Position, String)>,
    /// The file the positions are in, when it is not the runbook (an inventory file).
    pub file: Option<OtherFile>,
}

/// A file other than the runbook that a diagnostic points into; equal by name.
#[derive(Debug, Clone)]
pub struct OtherFile(pub Source);

impl PartialEq for OtherFile {
    fn eq(&self, other: &OtherFile) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        position: Option<Position>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            position,
            length: 0,
            label: None,
            help: None,
            related: Vec::new(),
            file: None,
        }
    }

    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        position: Option<Position>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, position)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_length(mut self, length: usize) -> Diagnostic {
        self.length = length;
        self
    }

    pub fn with_related(
        mut self,
        position: crate::document::Position,
        label: impl Into<String>,
    ) -> Diagnostic {
        self.related.push((position, label.into()));
        self
    }

    /// Points the diagnostic into `source` instead of the runbook.
    pub fn in_file(mut self, source: &Source) -> Diagnostic {
        self.file = Some(OtherFile(source.clone()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
