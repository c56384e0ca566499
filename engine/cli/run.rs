//! `runbook run`: validates and plans first (nothing runs from an invalid runbook), then
//! executes.

use super::args::{GlobalArgs, RunArgs};
use super::load::load;
use super::plan::print_plan;
use crate::errors::EXIT_INVALID;

pub fn run(args: &RunArgs, global: &GlobalArgs) -> i32 {
    if args.dry_run {
        return print_plan(&args.file, &args.vars, args.format, global);
    }
    match load(&args.file, &args.vars, global) {
        Ok(loaded) => {
            errln!(
                "error: `{}` is valid, but this build of runbook cannot execute runs yet: the executor is not built (use `runbook plan`)",
                loaded.source.name()
            );
            EXIT_INVALID
        }
        Err(code) => code,
    }
}
