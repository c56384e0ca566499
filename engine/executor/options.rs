//! What the operator chose for this run on the command line.

/// Run options (SPEC §11).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `-j N`, overriding the runbook's `concurrency`.
    pub concurrency: Option<usize>,
    /// `--yes`: approve every gate.
    pub approve_all: bool,
    /// `--approve ID`: approve these gates.
    pub approve: Vec<String>,
    /// `--no-rollback`: on failure, compensate nothing.
    pub no_rollback: bool,
    /// `--fail-at STEP` (a rehearsal): the step at this index runs, then is failed, so the
    /// rollback path from that point runs for real.
    pub fail_at: Option<usize>,
}
