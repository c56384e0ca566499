//! Runs the binary with a test's arguments and fails the test if it panicked: the shape every
//! engine test starts from.

use std::time::Duration;

use super::{Output, Test};

/// How long a run of the binary may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `test` with `args` (see `Test::run` for `{file}` and `{dir}`) within `LIMIT`.
pub fn engine(test: Test, args: &[&str]) -> Output {
    engine_within(test, args, LIMIT)
}

/// `engine` with another limit.
pub fn engine_within(test: Test, args: &[&str], limit: Duration) -> Output {
    let output = test.args(args).run_within(limit);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}
