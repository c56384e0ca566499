//! `runbook validate`: every problem of every file in one pass, as text or JSON.

use std::io::IsTerminal;

use serde_json::json;

use super::args::{DiagnosticFormat, GlobalArgs, ValidateArgs};
use super::diagnostics::{Warnings, diagnostic_json, render_error, render_text, use_color};
use super::list_instances::{list_values, undecided_notes};
use super::load::{host_inputs, var_inputs};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::plan::{Context, PlanPlaceholders, resolve_vars};
use crate::source::Source;
use crate::template::TemplateEngine;
use crate::validate::{Diagnostic, validate_with, validate_with_lists};

pub fn validate(args: &ValidateArgs, global: &GlobalArgs) -> i32 {
    let color = use_color(global.no_color, std::io::stderr().is_terminal());
    let mut any_failed = false;
    let mut reports = Vec::new();
    for file in &args.files {
        let name = file.display().to_string();
        let source = match Source::read(file) {
            Ok(source) => source,
            Err(error) => {
                any_failed = true;
                match args.format {
                    DiagnosticFormat::Text => err!("{}", render_error(&error)),
                    DiagnosticFormat::Json => {
                        let diagnostic = Diagnostic::error("unreadable", error.to_string(), None);
                        reports.push(json!({"file": name, "valid": false, "errors": 1, "warnings": 0, "diagnostics": [diagnostic_json(&name, &diagnostic)]}));
                    }
                }
                continue;
            }
        };
        let (mut diagnostics, notes) = diagnostics_of(&source, args);
        if args.strict {
            for diagnostic in &mut diagnostics {
                diagnostic.severity = crate::validate::Severity::Error;
            }
        }
        let errors = diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
            .count();
        let warnings = diagnostics.len() - errors;
        any_failed |= errors > 0;
        match args.format {
            DiagnosticFormat::Text => {
                let shown = Warnings::from_flag(args.all_warnings);
                err!("{}", render_text(&source, &diagnostics, color, shown));
                let plural = |count: usize, word: &str| {
                    format!("{count} {word}{}", if count == 1 { "" } else { "s" })
                };
                if errors > 0 {
                    errln!(
                        "error: `{name}` is not a valid runbook ({}, {})",
                        plural(errors, "error"),
                        plural(warnings, "warning")
                    );
                } else {
                    for note in &notes {
                        outln!("note: {note}");
                    }
                    outln!("`{name}` is valid ({})", plural(warnings, "warning"));
                }
            }
            DiagnosticFormat::Json => {
                let list: Vec<_> = diagnostics
                    .iter()
                    .map(|diagnostic| diagnostic_json(&name, diagnostic))
                    .collect();
                let mut report = json!({"file": name, "valid": errors == 0, "errors": errors, "warnings": warnings, "diagnostics": list});
                if !notes.is_empty() {
                    report["notes"] = json!(notes);
                }
                reports.push(report);
            }
        }
    }
    if args.format == DiagnosticFormat::Json {
        let document = json!({"format_version": 1, "valid": !any_failed, "files": reports});
        outln!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    }
    if any_failed {
        EXIT_INVALID
    } else {
        EXIT_SUCCESS
    }
}

/// The runbook's own diagnostics, plus checks of any variable values given (with them, a
/// `for_each` over a list var is checked per instance), and the notes on steps whose
/// instances wait for a var's value.
fn diagnostics_of(source: &Source, args: &ValidateArgs) -> (Vec<Diagnostic>, Vec<String>) {
    let hosts = host_inputs(&args.vars);
    let validation = validate_with(source, &hosts);
    let mut diagnostics = validation.diagnostics;
    let mut runbook = validation.runbook;
    if let (Some(found), false) = (&runbook, args.vars.limit.is_empty())
        && let Err(problem) = crate::plan::select_hosts(&found.inventory, &args.vars.limit)
    {
        diagnostics.push(*problem);
    }
    let given = !args.vars.vars.is_empty() || args.vars.vars_file.is_some();
    if let (Some(found), true) = (&runbook, given) {
        let engine = TemplateEngine::new();
        let mut context = Context::for_plan(found, PlanPlaceholders);
        match resolve_vars(found, &var_inputs(&args.vars), &mut context, &engine, false) {
            Ok(Ok(resolved)) if found.has_undecided_instances() => {
                let values = list_values(
                    found,
                    resolved
                        .iter()
                        .map(|var| (var.name.as_str(), var.value.as_deref())),
                );
                let again = validate_with_lists(source, &hosts, &values);
                diagnostics = again.diagnostics;
                runbook = again.runbook;
            }
            Ok(Ok(_)) => {}
            Ok(Err(problems)) => diagnostics.extend(problems),
            Err(error) => diagnostics.push(Diagnostic::error(
                "vars-file",
                render_error(&error)
                    .trim_start_matches("error: ")
                    .trim_end()
                    .to_string(),
                None,
            )),
        }
    }
    let notes = runbook.as_ref().map(undecided_notes).unwrap_or_default();
    (diagnostics, notes)
}
