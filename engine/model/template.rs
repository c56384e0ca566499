//! A template string from the runbook with the place it came from, for render errors.

use std::sync::Arc;

use crate::document::Position;

/// An interpreter's argv, each word a template. Shared: every step, compensation and command
/// probe without a `shell` of its own holds the same default one (six templates of their own
/// each were a third of the model of a 10,000-step runbook).
pub type Shell = Arc<[Template]>;

/// A Handlebars template and where it was written (`steps[3].run`, line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub text: String,
    pub place: String,
    pub position: Position,
    /// The paths it reads that only a run can know (`steps.*`, `run.*`): `plan` shows them
    /// as placeholders.
    pub runtime_paths: Vec<Vec<String>>,
}

impl Template {
    /// Whether rendering can change the text at all.
    pub fn is_literal(&self) -> bool {
        !self.text.contains("{{")
    }

    /// Whether rendering needs values only a run knows.
    pub fn needs_run(&self) -> bool {
        !self.runtime_paths.is_empty()
    }

    /// A template that is its own text, for defaults written by the engine.
    pub fn literal(text: &str, place: &str) -> Template {
        Template {
            text: text.to_string(),
            place: place.to_string(),
            position: Position::default(),
            runtime_paths: Vec::new(),
        }
    }
}
