//! Shared front half of `plan` and `run`: read, validate, resolve variables, build the plan.
//! Any problem is printed here and becomes exit code 2.

use std::io::IsTerminal;
use std::path::Path;

use super::args::{GlobalArgs, VarArgs};
use super::diagnostics::{Warnings, render_error, render_text, use_color};
use super::list_instances::list_values;
use crate::errors::EXIT_INVALID;
use crate::model::Runbook;
use crate::plan::{
    Context, Plan, PlanPlaceholders, ResolvedVar, VarInputs, build_plan, resolve_vars,
};
use crate::source::Source;
use crate::template::TemplateEngine;
use crate::validate::{Diagnostic, HostInputs, ListValues, ModuleFile, validate_with_lists};

/// A runbook ready to be shown or run.
#[derive(Debug)]
pub struct Loaded {
    pub source: Source,
    /// The module files the runbook uses, as read.
    pub modules: Vec<ModuleFile>,
    pub runbook: Runbook,
    pub vars: Vec<ResolvedVar>,
    pub plan: Plan,
}

impl Loaded {
    /// The secret values to search for in printed plan text. Values shorter than
    /// `MIN_SECRET_LEN` are left out, with a warning: the plan already shows the variable
    /// itself as `••••••`, and masking a one-letter value everywhere would garble the output
    /// (JSON keys included).
    pub fn output_secrets(&self) -> Vec<String> {
        let (long, short): (
            Vec<&crate::plan::ResolvedVar>,
            Vec<&crate::plan::ResolvedVar>,
        ) = self
            .vars
            .iter()
            .filter(|var| var.secret && var.value.as_ref().is_some_and(|value| !value.is_empty()))
            .partition(|var| {
                var.value
                    .as_ref()
                    .is_some_and(|value| value.len() >= crate::secrets::MIN_SECRET_LEN)
            });
        for var in short {
            errln!(
                "warning: secret `{}` is shorter than {} characters: the plan shows it as ••••••, but does not search other text for it",
                var.name,
                crate::secrets::MIN_SECRET_LEN
            );
        }
        long.iter().filter_map(|var| var.value.clone()).collect()
    }
}

pub fn host_inputs(args: &VarArgs) -> HostInputs {
    HostInputs {
        inventories: args.inventories.clone(),
    }
}

pub fn var_inputs(args: &VarArgs) -> VarInputs {
    VarInputs {
        values: args.vars.clone(),
        file: args.vars_file.clone(),
    }
}

fn print_diagnostics(
    source: &Source,
    diagnostics: &[Diagnostic],
    warnings: Warnings,
    global: &GlobalArgs,
) {
    let color = use_color(global.no_color, std::io::stderr().is_terminal());
    err!("{}", render_text(source, diagnostics, color, warnings));
}

/// Loads a runbook through to its plan, or prints why not and returns the exit code.
/// Warnings printed beside errors are capped per kind unless `all_warnings`.
pub fn load(
    file: &Path,
    vars: &VarArgs,
    all_warnings: bool,
    global: &GlobalArgs,
) -> Result<Loaded, i32> {
    let warnings = Warnings::from_flag(all_warnings);
    let source = Source::read(file).map_err(|error| {
        err!("{}", render_error(&error));
        EXIT_INVALID
    })?;
    let (runbook, modules) = validated(&source, vars, &ListValues::new(), warnings, global)?;
    let engine = TemplateEngine::new();
    let (runbook, mut context, resolved_vars) =
        match resolved(runbook, &source, vars, &engine, warnings, global)? {
            // A `for_each` over a list var: validated again with its items.
            (runbook, _, first) if runbook.has_undecided_instances() => {
                let values = list_values(
                    &runbook,
                    first
                        .iter()
                        .map(|var| (var.name.as_str(), var.value.as_deref())),
                );
                // The same module files: those of the first pass are kept.
                let (runbook, _) = validated(&source, vars, &values, warnings, global)?;
                resolved(runbook, &source, vars, &engine, warnings, global)?
            }
            done => done,
        };
    let vars_args = vars;
    let vars = resolved_vars;
    let plan = build_plan(&runbook, &vars, &mut context, &engine, &vars_args.limit).map_err(
        |problems| {
            print_diagnostics(&source, &problems, warnings, global);
            errln!(
                "error: `{}` cannot be planned: nothing was run",
                source.name()
            );
            EXIT_INVALID
        },
    )?;
    Ok(Loaded {
        source,
        modules,
        runbook,
        vars,
        plan,
    })
}

/// The runbook validated with the items of `lists`, with the module files it read, or its
/// problems printed (exit 2).
fn validated(
    source: &Source,
    vars: &VarArgs,
    lists: &ListValues,
    warnings: Warnings,
    global: &GlobalArgs,
) -> Result<(Runbook, Vec<ModuleFile>), i32> {
    let validation = validate_with_lists(source, &host_inputs(vars), lists);
    if validation.has_errors() {
        print_diagnostics(source, &validation.diagnostics, warnings, global);
        let errors = validation
            .diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
            .count();
        errln!(
            "error: `{}` is not a valid runbook ({errors} error{}): nothing was run",
            source.name(),
            if errors == 1 { "" } else { "s" }
        );
        return Err(EXIT_INVALID);
    }
    let modules = validation.modules;
    validation
        .runbook
        .map(|runbook| (runbook, modules))
        .ok_or(EXIT_INVALID)
}

/// The runbook's variables resolved for the plan, with the context holding them, or their
/// problems printed (exit 2).
fn resolved(
    runbook: Runbook,
    source: &Source,
    vars: &VarArgs,
    engine: &TemplateEngine,
    warnings: Warnings,
    global: &GlobalArgs,
) -> Result<(Runbook, Context, Vec<ResolvedVar>), i32> {
    let mut context = Context::for_plan(&runbook, PlanPlaceholders);
    let resolved =
        resolve_vars(&runbook, &var_inputs(vars), &mut context, engine, true).map_err(|error| {
            err!("{}", render_error(&error));
            EXIT_INVALID
        })?;
    match resolved {
        Ok(resolved) => Ok((runbook, context, resolved)),
        Err(problems) => {
            print_diagnostics(source, &problems, warnings, global);
            errln!(
                "error: variables of `{}` are not valid: nothing was run",
                source.name()
            );
            Err(EXIT_INVALID)
        }
    }
}

/// Masks every secret value in `text`, and its common encodings (plan output can reach a
/// secret through `env.*`).
pub fn mask(text: String, secrets: &[String]) -> String {
    if secrets.is_empty() {
        return text;
    }
    crate::secrets::Masker::new(secrets.iter().cloned()).mask_str(&text)
}
