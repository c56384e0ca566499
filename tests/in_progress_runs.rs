//! `show`, `history` and `report` of a run whose engine is still at work say it is in
//! progress (issue 10, item 18), not that it is unfinished as if its engine had died; once it
//! ends they show its outcome. (A run whose engine died is `unfinished`: tests/durable_runs.rs.)

mod common;

use std::time::Duration;

use common::Test;

const LIMIT: Duration = Duration::from_secs(60);

/// `wait` marks that it started, then waits for the test to create `release`.
const RUNBOOK: &str = r#"
version: 1
name: long-one
steps:
  - id: wait
    readonly: true
    run: |
      touch started
      while [ ! -e release ]; do sleep 0.05; done
"#;

#[test]
fn a_run_still_going_is_shown_in_progress_then_with_its_outcome() {
    let mut running = Test::new()
        .runbook(RUNBOOK)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .spawn();
    running.wait_for_file("started", LIMIT);
    let directory = running.path().to_path_buf();
    let state = directory.join("state").display().to_string();
    let engine = |args: &[&str]| {
        let output = Test::new()
            .current_dir(&directory)
            .args(args)
            .args(["--state-dir", &state])
            .run_within(LIMIT);
        assert_eq!(output.code, 0, "{args:?}: {}", output.snapshot());
        output.stdout
    };
    let checks: [(&[&str], &str); 5] = [
        (&["show", "last"], "outcome: in_progress"),
        (&["history"], "in_progress"),
        (
            &["report", "last", "--format", "md"],
            "in progress: its engine is still running it",
        ),
        (
            &["report", "last", "--format", "html"],
            "in progress: its engine is still running it",
        ),
        (
            &["report", "last", "--format", "json"],
            "\"in_progress\": true",
        ),
    ];
    for (args, expected) in checks {
        let shown = engine(args);
        assert!(
            shown.contains(expected),
            "{args:?}: {expected:?} missing:\n{shown}"
        );
        // A step still running has no duration yet ("unfinished" in its row); the run itself
        // is not called unfinished.
        assert!(!shown.contains("outcome: unfinished"), "{args:?}:\n{shown}");
        assert!(
            !shown.contains("the journal has no end record"),
            "{args:?}:\n{shown}"
        );
    }
    std::fs::write(directory.join("release"), "").expect("release");
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let shown = engine(&["show", "last"]);
    assert!(shown.contains("outcome: succeeded"), "{shown}");
}
