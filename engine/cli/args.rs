//! The command-line interface as clap types (SPEC §11).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// The parsed command line: global options and the subcommand.
#[derive(Debug, Args)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands that show a run as it happens, and so list the run-time output options
/// (`--progress`, `--log-format`) in their help. The others accept them (SPEC §11: global)
/// but ignore them, so their help does not mention them.
const SHOWS_A_RUN: [&str; 3] = ["run", "resume", "rollback"];

/// The options only `SHOWS_A_RUN` commands use.
const RUN_OUTPUT_OPTIONS: [&str; 2] = ["progress", "log_format"];

impl CommandFactory for Cli {
    fn command() -> clap::Command {
        let mut command = Cli::augment_args(clap::Command::new("runbook"))
            .version(env!("CARGO_PKG_VERSION"))
            .about(env!("CARGO_PKG_DESCRIPTION"))
            .propagate_version(true);
        // A subcommand that defines an option itself does not receive the global one: give
        // each command that ignores the run-time output options a hidden copy of them, so
        // they are still accepted there, but not shown.
        let hidden: Vec<clap::Arg> = command
            .get_arguments()
            .filter(|arg| RUN_OUTPUT_OPTIONS.contains(&arg.get_id().as_str()))
            .map(|arg| arg.clone().global(false).hide(true))
            .collect();
        let ignoring: Vec<String> = command
            .get_subcommands()
            .map(|subcommand| subcommand.get_name().to_string())
            .filter(|name| !SHOWS_A_RUN.contains(&name.as_str()))
            .collect();
        for name in ignoring {
            command = command.mut_subcommand(name, |subcommand| subcommand.args(hidden.clone()));
        }
        command
    }

    fn command_for_update() -> clap::Command {
        Cli::command()
    }
}

impl Parser for Cli {}

/// Options every subcommand accepts, before or after it.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Where runs are recorded [env: RUNBOOK_STATE_DIR] [default: $XDG_STATE_HOME/runbook or
    /// ~/.local/state/runbook]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Progress display of `run`, `resume` and `rollback`
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Log format of `run`, `resume` and `rollback`
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// No colours (also NO_COLOR)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Progress {
    Auto,
    Plain,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks against the format; report every problem
    Validate(ValidateArgs),
    /// Dry run: resolve variables, render templates and print the execution plan
    Plan(PlanArgs),
    /// Run a runbook
    Run(RunArgs),
    /// Print the JSON Schema of the runbook format
    Schema,
    /// Write a commented starter runbook
    Init(InitArgs),
    /// List the runs recorded in the state directory
    History(HistoryArgs),
    /// Show one run step by step
    Show(ShowArgs),
    /// Write a run's deployment summary: timeline, results, probes, rollback
    Report(ReportArgs),
    /// Compensate a finished run later, or finish an incomplete rollback
    Rollback(RollbackArgs),
    /// Continue a run whose engine died
    Resume(ResumeArgs),
    /// Approve an approval gate a run is waiting at, from any terminal
    Approve(AnswerArgs),
    /// Deny an approval gate a run is waiting at, from any terminal: the run rolls back
    Deny(AnswerArgs),
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// The id of the gate's step
    #[arg(value_name = "GATE")]
    pub gate: String,
    /// Why: recorded in the journal and shown with the gate's result
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Print the compensations it would run, in order, rendered; run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Take the runbook file as it is now instead of the copy kept with the run
    #[arg(long)]
    pub use_current: bool,
    /// With --use-current (or a run kept without a copy): use the file even though it changed
    #[arg(long)]
    pub allow_changed: bool,
    /// Most compensations running at once
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: Option<u32>,
    #[command(flatten)]
    pub secrets: SecretVarArgs,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Take the runbook file as it is now instead of the copy kept with the run
    #[arg(long)]
    pub use_current: bool,
    /// With --use-current (or a run kept without a copy): use the file even though it changed
    #[arg(long)]
    pub allow_changed: bool,
    /// An in-doubt step did finish (repeatable)
    #[arg(long, value_name = "ID")]
    pub assume_succeeded: Vec<String>,
    /// An in-doubt step failed: roll back (repeatable)
    #[arg(long, value_name = "ID")]
    pub assume_failed: Vec<String>,
    /// After `failed after pivot` or `--no-rollback` (exit 4), once the cause is fixed: run
    /// the failed steps and what follows them again
    #[arg(long)]
    pub retry_failed: bool,
    /// Approve every approval gate
    #[arg(long)]
    pub yes: bool,
    /// Approve one gate (repeatable)
    #[arg(long, value_name = "ID")]
    pub approve: Vec<String>,
    /// Most steps running at once
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: Option<u32>,
    #[command(flatten)]
    pub secrets: SecretVarArgs,
}

/// Secret values for `rollback RUN` and `resume RUN`: the journal records every other value,
/// but never a secret, so one the run was given by `--var` or `--vars-file` is given again.
#[derive(Debug, Args, Clone, Default)]
pub struct SecretVarArgs {
    /// A secret variable the run was given (the journal records no secret): `--var token=...`
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub vars: Vec<(String, String)>,
    /// A YAML file of secret variables the run was given
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RecordFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = RecordFormat::Text)]
    pub format: RecordFormat,
    /// List every run, not only the latest 20
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = RecordFormat::Text)]
    pub format: RecordFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    Md,
    Html,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Write the report to FILE instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Run inputs shared by `validate`, `plan` and `run`: variables and hosts.
#[derive(Debug, Args, Clone, Default)]
pub struct VarArgs {
    /// Set a variable (repeatable): `--var env=production`
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub vars: Vec<(String, String)>,
    /// A YAML file mapping variable names to values
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// More hosts: an inventory file mapping host names to hosts (repeatable)
    #[arg(long = "inventory", value_name = "FILE")]
    pub inventories: Vec<PathBuf>,
    /// Only these hosts: host or group names, comma-separated
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub limit: Vec<String>,
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DiagnosticFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Runbook files
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Treat warnings as errors
    #[arg(long)]
    pub strict: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
    pub format: DiagnosticFormat,
    /// Show every warning, not the first 10 of each kind
    #[arg(long)]
    pub all_warnings: bool,
    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Mermaid,
    Dot,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Runbook file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Show every warning, not the first 10 of each kind
    #[arg(long)]
    pub all_warnings: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Runbook file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Most steps running at once (overrides `concurrency`)
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: Option<u32>,
    /// Approve every approval gate
    #[arg(long)]
    pub yes: bool,
    /// Approve one gate (repeatable)
    #[arg(long, value_name = "ID")]
    pub approve: Vec<String>,
    /// On failure, do not compensate
    #[arg(long)]
    pub no_rollback: bool,
    /// Rehearse a failure: STEP runs, then is failed, so its rollback path runs for real
    #[arg(long, value_name = "STEP[@HOST]")]
    pub fail_at: Option<String>,
    /// Print the plan instead of running (same as `runbook plan`)
    #[arg(long)]
    pub dry_run: bool,
    /// Start even though an earlier run of this runbook is unfinished (its engine died)
    #[arg(long)]
    pub force: bool,
    /// Benchmarks only: keep the journal in memory, to measure what durability costs
    #[arg(long, hide = true)]
    pub journal_in_memory: bool,
    /// Plan output format with --dry-run
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Show every warning, not the first 10 of each kind
    #[arg(long)]
    pub all_warnings: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Runbook name; the file written is NAME.yaml
    #[arg(default_value = "my-runbook", value_name = "NAME")]
    pub name: String,
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_output_options_are_accepted_everywhere_and_reach_run() {
        let cli = Cli::try_parse_from(["runbook", "validate", "--progress", "plain", "x.yaml"])
            .expect("accepted by validate");
        assert!(matches!(cli.command, Command::Validate(_)));
        let cli = Cli::try_parse_from(["runbook", "--log-format", "json", "run", "x.yaml"])
            .expect("before the subcommand");
        assert_eq!(cli.global.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["runbook", "run", "x.yaml", "--progress", "none"])
            .expect("after it");
        assert_eq!(cli.global.progress, Progress::None);
    }
}
