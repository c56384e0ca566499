//! Parses the command line, dispatches to the subcommand, and returns the exit code.

use clap::Parser;

use super::args::{Cli, Command};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};

/// Runs the CLI and returns the process exit code (SPEC §8).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { EXIT_INVALID } else { 0 };
        }
    };
    let runs_steps = matches!(
        cli.command,
        Command::Run(_) | Command::Rollback(_) | Command::Resume(_)
    );
    let code = match &cli.command {
        Command::Validate(args) => super::validate::validate(args, &cli.global),
        Command::Plan(args) => super::plan::plan(args, &cli.global),
        Command::Run(args) => super::run::run(args, &cli.global),
        Command::Schema => super::schema::schema(),
        Command::Init(args) => super::init::init(args),
        Command::History(args) => super::history::history(args, &cli.global),
        Command::Show(args) => super::history::show(args, &cli.global),
        Command::Report(args) => super::report::report(args, &cli.global),
        Command::Rollback(args) => super::recover::rollback(args, &cli.global),
        Command::Resume(args) => super::recover::resume(args, &cli.global),
        Command::Approve(args) => super::answer::answer(args, true, &cli.global),
        Command::Deny(args) => super::answer::answer(args, false, &cli.global),
    };
    match super::output::stdout_failure() {
        // What ran is in the journal and its exit code says how it ended; only the printing
        // is lost.
        Some(cause) if runs_steps => {
            errln!("warning: the output could not be written to stdout: {cause}");
            code
        }
        Some(cause) if code == EXIT_SUCCESS => {
            errln!("error: the output could not be written to stdout: {cause}");
            crate::errors::EXIT_IO
        }
        _ => code,
    }
}
