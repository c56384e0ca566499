//! The command-line interface as clap types (SPEC §11).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A declarative YAML runbook engine: steps as a DAG, verification probes, rollback.
#[derive(Debug, Parser)]
#[command(name = "runbook", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts, before or after it.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Where runs are recorded [env: RUNBOOK_STATE_DIR] [default: .runbook]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Progress display
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Log format of `run`
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
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Use the runbook even though it changed since the run
    #[arg(long)]
    pub allow_changed: bool,
    /// Most compensations running at once
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id, a unique prefix of one, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Use the runbook even though it changed since the run
    #[arg(long)]
    pub allow_changed: bool,
    /// An in-doubt step did finish (repeatable)
    #[arg(long, value_name = "ID")]
    pub assume_succeeded: Vec<String>,
    /// An in-doubt step failed: roll back (repeatable)
    #[arg(long, value_name = "ID")]
    pub assume_failed: Vec<String>,
    /// Approve every approval gate
    #[arg(long)]
    pub yes: bool,
    /// Approve one gate (repeatable)
    #[arg(long, value_name = "ID")]
    pub approve: Vec<String>,
    /// Most steps running at once
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: Option<u32>,
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

/// Variable inputs shared by `validate`, `plan` and `run`.
#[derive(Debug, Args, Clone, Default)]
pub struct VarArgs {
    /// Set a variable (repeatable): `--var env=production`
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub vars: Vec<(String, String)>,
    /// A YAML file mapping variable names to values
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
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
