//! `$RUNBOOK_OUTPUT` is bounded (issue 10, item 10): more than 1 MiB or more than 1000 keys
//! fails the step with a clear message (and the run rolls back), a file the step replaced by
//! a FIFO or a symbolic link is refused without hanging or following it, parsing stays
//! linear, and lines that are neither form are reported instead of dropped silently.

mod common;

use std::time::Duration;

use common::{Output, Test};

const LIMIT: Duration = Duration::from_secs(60);

/// `writer` runs `script`; `after` prints what it got; `writer`'s compensation marks the
/// test directory, so a rollback is seen.
fn runbook(script: &str) -> String {
    format!(
        r#"
version: 1
name: outputs
steps:
  - id: writer
    run: |
{script}
    rollback: touch "$MARKER"
  - id: after
    needs: [writer]
    readonly: true
    run: echo "count={{{{steps.writer.outputs.count}}}}"
"#,
        script = script
            .lines()
            .map(|line| format!("      {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

fn run(script: &str) -> Output {
    let output = Test::new()
        .runbook(&runbook(script))
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

fn failed_with(output: &Output, message: &str) {
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        output.stdout.contains(message),
        "{message:?} missing:\n{}",
        output.snapshot()
    );
    assert!(output.marker_exists(), "the step is compensated");
    assert!(!output.stdout.contains("count="), "`after` never ran");
}

#[test]
fn more_than_1_mib_of_outputs_fails_the_step() {
    let output = run(
        "echo count=1 >> \"$RUNBOOK_OUTPUT\"\nhead -c 1100000 /dev/zero | tr '\\0' a | sed 's/^/big=/' >> \"$RUNBOOK_OUTPUT\"",
    );
    failed_with(
        &output,
        "step `writer` wrote more than 1 MiB to `$RUNBOOK_OUTPUT`, the limit",
    );
    let fits = run(
        "echo count=1 >> \"$RUNBOOK_OUTPUT\"\nhead -c 1000000 /dev/zero | tr '\\0' a | sed 's/^/big=/' >> \"$RUNBOOK_OUTPUT\"",
    );
    assert_eq!(fits.code, 0, "{}", fits.snapshot());
    assert!(fits.stdout.contains("count=1"), "{}", fits.stdout);
}

#[test]
fn more_than_1000_keys_fail_the_step_and_1000_do_not() {
    let output = run(
        "for i in $(seq 1 1000); do echo \"k$i=v\"; done >> \"$RUNBOOK_OUTPUT\"\necho count=1 >> \"$RUNBOOK_OUTPUT\"",
    );
    failed_with(
        &output,
        "step `writer` wrote 1001 output keys to `$RUNBOOK_OUTPUT`, more than the limit of 1000",
    );
    let fits = run(
        "for i in $(seq 1 999); do echo \"k$i=v\"; done >> \"$RUNBOOK_OUTPUT\"\necho count=1 >> \"$RUNBOOK_OUTPUT\"",
    );
    assert_eq!(fits.code, 0, "{}", fits.snapshot());
}

#[test]
fn a_key_written_80000_times_keeps_its_last_value() {
    // Quadratic parsing took minutes here; linear takes a moment (no timing is asserted: the
    // test's limit is the bound).
    let output = run("seq 1 80000 | sed 's/^/count=/' >> \"$RUNBOOK_OUTPUT\"");
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(output.stdout.contains("count=80000"), "{}", output.stdout);
}

#[test]
fn lines_that_are_neither_form_are_reported() {
    let output = run(
        "echo count=2 >> \"$RUNBOOK_OUTPUT\"\necho 'no equals sign' >> \"$RUNBOOK_OUTPUT\"\necho 'also junk' >> \"$RUNBOOK_OUTPUT\"",
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(output.stdout.contains("count=2"), "{}", output.stdout);
    assert!(
        output.stdout.contains(
            "step `writer`: 2 lines (the first: line 2) are of `$RUNBOOK_OUTPUT` neither `key=value` nor `key<<DELIMITER`"
        ),
        "{}",
        output.snapshot()
    );
    let unterminated = run(
        "echo count=3 >> \"$RUNBOOK_OUTPUT\"\nprintf 'notes<<EOF\\nnever closed\\n' >> \"$RUNBOOK_OUTPUT\"",
    );
    assert_eq!(unterminated.code, 0, "{}", unterminated.snapshot());
    assert!(
        unterminated
            .stdout
            .contains("line 2 is of `$RUNBOOK_OUTPUT` neither"),
        "{}",
        unterminated.snapshot()
    );
}

#[test]
fn an_output_file_replaced_by_a_fifo_or_a_link_is_refused() {
    let fifo = run("mkfifo \"$RUNBOOK_OUTPUT\"");
    failed_with(&fifo, "it is a FIFO, not a regular file");
    let link = run("echo count=9 > elsewhere\nln -s \"$PWD/elsewhere\" \"$RUNBOOK_OUTPUT\"");
    failed_with(&link, "it is a symbolic link, not a regular file");
}
