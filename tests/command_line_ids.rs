//! Step ids given on the command line are checked before anything runs (issue 10, item 15):
//! `--approve` must name an approval gate, `--assume-succeeded`/`--assume-failed` a step,
//! and one step cannot be assumed both ways. Each mistake exits 2 naming it, with a hint.

mod common;

use std::time::Duration;

use common::{Output, Test};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// `prepare` marks the test directory: when the marker exists, something ran.
const RUNBOOK: &str = r#"
version: 1
name: gated
steps:
  - id: prepare
    readonly: true
    run: touch "$MARKER"
  - id: go_ahead
    needs: [prepare]
    approve: Deploy now?
  - id: deploy
    needs: [go_ahead]
    readonly: true
    run: "true"
"#;

fn no_panic(output: &Output) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
}

fn run(args: &[&str]) -> Output {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(args)
        .run_within(LIMIT);
    no_panic(&output);
    output
}

#[test]
fn an_approve_naming_no_gate_is_refused_before_anything_runs() {
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["--approve", "go_ahaed"],
            &[
                "`--approve go_ahaed`: the runbook has no approval gate `go_ahaed`",
                "did you mean `go_ahead`?",
            ],
        ),
        (
            &["--approve", "deploy"],
            &["`--approve deploy`: step `deploy` is not an approval gate"],
        ),
        (
            &["--approve", "go_ahead", "--approve", "nothing_like_it"],
            &[
                "no approval gate `nothing_like_it`",
                "approval gates: go_ahead",
            ],
        ),
    ];
    for (args, expected) in cases {
        let output = run(args);
        assert_eq!(output.code, 2, "{args:?}: {}", output.snapshot());
        for text in expected {
            assert!(
                output.stderr.contains(text),
                "{args:?}: {text:?} missing:\n{}",
                output.snapshot()
            );
        }
        assert!(
            output.stderr.contains("nothing was run"),
            "{}",
            output.snapshot()
        );
        assert!(!output.marker_exists(), "{args:?}: a step ran");
        assert!(
            !output.directory.join("state/runs").exists()
                || std::fs::read_dir(output.directory.join("state/runs"))
                    .expect("runs")
                    .next()
                    .is_none(),
            "{args:?}: no run was recorded"
        );
    }
    let approved = run(&["--approve", "go_ahead"]);
    assert_eq!(approved.code, 0, "{}", approved.snapshot());
}

#[test]
fn resume_refuses_unknown_and_contradictory_assumptions() {
    let first = run(&["--yes"]);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    let state = directory.join("state").display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--assume-failed", "deploi"],
            "`--assume-failed deploi`: the runbook has no step `deploi`",
        ),
        (
            &["--assume-succeeded", "zzz"],
            "`--assume-succeeded zzz`: the runbook has no step `zzz`",
        ),
        (
            &["--assume-succeeded", "deploy", "--assume-failed", "deploy"],
            "step `deploy` is given both `--assume-succeeded` and `--assume-failed`",
        ),
        (
            &["--approve", "prepare"],
            "step `prepare` is not an approval gate",
        ),
    ];
    for (args, expected) in cases {
        let output = Test::new()
            .current_dir(&directory)
            .args(["resume", "last", "--state-dir", &state])
            .args(args)
            .run_within(LIMIT);
        no_panic(&output);
        assert_eq!(output.code, 2, "{args:?}: {}", output.snapshot());
        assert!(
            output.stderr.contains(expected),
            "{args:?}: {expected:?} missing:\n{}",
            output.snapshot()
        );
    }
}
