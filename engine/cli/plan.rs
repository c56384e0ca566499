//! `runbook plan`: the dry run, printed as text, JSON, Mermaid or DOT.

use super::args::{GlobalArgs, PlanArgs, PlanFormat, VarArgs};
use super::load::{load, mask};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::plan::{to_dot, to_mermaid, to_text};

pub fn plan(args: &PlanArgs, global: &GlobalArgs) -> i32 {
    print_plan(&args.file, &args.vars, args.format, global)
}

/// Prints the plan of a runbook; shared with `run --dry-run`.
pub fn print_plan(
    file: &std::path::Path,
    vars: &VarArgs,
    format: PlanFormat,
    global: &GlobalArgs,
) -> i32 {
    let loaded = match load(file, vars, global) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let output = match format {
        PlanFormat::Text => to_text(&loaded.plan),
        PlanFormat::Json => match serde_json::to_string_pretty(&loaded.plan) {
            Ok(json) => json + "\n",
            Err(error) => {
                errln!("error: cannot serialize the plan: {error}");
                return EXIT_INVALID;
            }
        },
        PlanFormat::Mermaid => to_mermaid(&loaded.plan),
        PlanFormat::Dot => to_dot(&loaded.plan),
    };
    out!("{}", mask(output, &loaded.secret_values()));
    EXIT_SUCCESS
}
