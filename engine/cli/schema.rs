//! `runbook schema`: the JSON Schema of the format, generated from the document types.

use crate::document::RawRunbook;
use crate::errors::EXIT_SUCCESS;

/// The schema as pretty JSON text; `schemas/runbook.schema.json` must equal it.
pub fn runbook_schema() -> String {
    let schema = schemars::schema_for!(RawRunbook);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

pub fn schema() -> i32 {
    out!("{}", runbook_schema());
    EXIT_SUCCESS
}
