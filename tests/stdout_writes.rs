//! Every write to stdout is checked (issue 10, item 11): a command whose output cannot be
//! written (`> /dev/full`, a full disk) says so and exits 74 instead of 0 with a truncated
//! file; a reader that closes the pipe early (`| head`) is not an error.

mod common;

use std::time::Duration;

use common::{Output, Test};

const LIMIT: Duration = Duration::from_secs(60);

const RUNBOOK: &str = r#"
version: 1
name: printed
steps:
  - id: a
    readonly: true
    run: echo hello
"#;

/// Runs `runbook ARGS` with stdout sent to `/dev/full` (`{file}`, `{dir}` expanded).
fn to_full_disk(test: Test, args: &[&str]) -> Output {
    let output = test
        .wrap(["sh", "-c", "exec \"$0\" \"$@\" > /dev/full"])
        .args(args)
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

#[test]
fn output_lost_to_a_full_disk_exits_74_naming_the_cause() {
    let first = Test::new()
        .runbook(RUNBOOK)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    let state = directory.join("state").display().to_string();
    let file = directory.join("runbook.yaml").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["schema"],
        vec!["validate", &file],
        vec!["plan", &file],
        vec!["plan", &file, "--format", "json"],
        vec!["plan", &file, "--format", "dot"],
        vec!["history", "--state-dir", &state],
        vec!["show", "last", "--state-dir", &state],
        vec!["report", "last", "--format", "md", "--state-dir", &state],
        vec!["report", "last", "--format", "html", "--state-dir", &state],
        vec!["report", "last", "--format", "json", "--state-dir", &state],
    ];
    for command in commands {
        let output = to_full_disk(Test::new().current_dir(&directory), &command);
        assert_eq!(output.code, 74, "{command:?}: {}", output.snapshot());
        assert!(
            output
                .stderr
                .contains("the output could not be written to stdout: No space left on device"),
            "{command:?}: {}",
            output.snapshot()
        );
    }
}

#[test]
fn a_run_whose_output_is_lost_keeps_its_exit_code_and_warns() {
    let output = to_full_disk(
        Test::new().runbook(RUNBOOK),
        &[
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ],
    );
    assert_eq!(output.code, 0, "the run succeeded: {}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("warning: the output could not be written to stdout"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn a_reader_closing_the_pipe_early_is_not_an_error() {
    let output = Test::new()
        .wrap([
            "bash",
            "-c",
            "\"$0\" \"$@\" | head -c 1 > /dev/null; exit ${PIPESTATUS[0]}",
        ])
        .args(["schema"])
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("could not be written"),
        "{}",
        output.snapshot()
    );
    assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
}
