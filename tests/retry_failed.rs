//! `runbook resume RUN --retry-failed` (SPEC §10): after `failed after pivot` (exit 4) or a
//! failure with `--no-rollback` (exit 4), once a person fixed the cause, the failed step and
//! what follows it run again; the steps that succeeded do not.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test, lines};

const LIMIT: Duration = Duration::from_secs(60);

/// `migrate` fails until the file `fixed` exists in the runbook's directory.
const PIVOTED: &str = r#"
version: 1
name: pivoted
steps:
  - id: backup
    run: echo backup >> forward
    rollback: echo backup >> undo
  - id: switch
    needs: [backup]
    pivot: true
    run: echo switch >> forward
  - id: migrate
    needs: [switch]
    run: |
      echo migrate >> forward
      test -f fixed
    rollback: echo migrate >> undo
  - id: announce
    needs: [migrate]
    run: echo announce >> forward
    rollback: echo announce >> undo
"#;

fn run(yaml: &str, extra: &[&str]) -> Output {
    let output = Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(extra)
        .run_within(LIMIT);
    assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
    output
}

/// `runbook <words> --state-dir` the first run's state dir, as a second command.
fn again(first: &Output, words: &[&str]) -> Output {
    let state = first.directory.join("state").display().to_string();
    let output = Test::new()
        .args(words)
        .args(["--state-dir", &state])
        .run_within(LIMIT);
    assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
    output
}

fn fix(directory: &Path) {
    std::fs::write(directory.join("fixed"), "").expect("write the fix");
}

#[test]
fn after_a_failure_past_the_pivot_the_run_goes_on_forward() {
    let first = run(PIVOTED, &[]);
    assert_eq!(first.code, 4, "{}", first.snapshot());
    assert_eq!(
        lines(&first.directory, "forward"),
        ["backup", "switch", "migrate"]
    );
    assert_eq!(lines(&first.directory, "undo"), ["migrate"]);

    // Nothing fixed yet: the retry fails the same way, and stops at the pivot again.
    let retried = again(&first, &["resume", "last", "--retry-failed"]);
    assert_eq!(retried.code, 4, "{}", retried.snapshot());
    assert!(
        retried
            .stdout
            .contains("running again `migrate`, then what follows"),
        "{}",
        retried.snapshot()
    );

    fix(&first.directory);
    let retried = again(&first, &["resume", "last", "--retry-failed"]);
    assert_eq!(retried.code, 0, "{}", retried.snapshot());
    assert_eq!(
        lines(&first.directory, "forward"),
        [
            "backup", "switch", "migrate", "migrate", "migrate", "announce"
        ],
        "backup and switch ran once"
    );
    // The run keeps its own outcome, and the retry is told after it.
    let history = again(&first, &["history"]);
    let row = history
        .stdout
        .lines()
        .find(|line| line.contains("pivoted"))
        .unwrap_or_default();
    assert!(
        row.contains("failed after pivot (exit 4)")
            && row.contains("; retried later by ")
            && row.contains(": succeeded (exit 0) in "),
        "{}",
        history.snapshot()
    );

    // `migrate` ran again after its undo: a later rollback undoes it again (what finished
    // after the pivot), newest first.
    let rollback = again(&first, &["rollback", "last"]);
    assert_eq!(rollback.code, 0, "{}", rollback.snapshot());
    assert_eq!(
        lines(&first.directory, "undo"),
        ["migrate", "migrate", "announce", "migrate"]
    );
}

#[test]
fn after_a_failure_with_no_rollback_the_failed_step_runs_again() {
    let yaml = r#"
version: 1
name: kept
steps:
  - id: prepare
    run: echo prepare >> forward
    rollback: echo prepare >> undo
  - id: deploy
    needs: [prepare]
    run: |
      echo deploy >> forward
      test -f fixed
    rollback: echo deploy >> undo
  - id: verify
    needs: [deploy]
    readonly: true
    run: echo verify >> forward
"#;
    let first = run(yaml, &["--no-rollback"]);
    assert_eq!(first.code, 4, "{}", first.snapshot());
    fix(&first.directory);
    let retried = again(&first, &["resume", "last", "--retry-failed"]);
    assert_eq!(retried.code, 0, "{}", retried.snapshot());
    assert_eq!(
        lines(&first.directory, "forward"),
        ["prepare", "deploy", "deploy", "verify"]
    );
    assert!(lines(&first.directory, "undo").is_empty());

    // Finished: there is nothing left to retry.
    let twice = again(&first, &["resume", "last", "--retry-failed"]);
    assert_eq!(twice.code, 2, "{}", twice.snapshot());
    insta::assert_snapshot!(
        "retry_of_a_run_that_succeeded",
        twice.snapshot().replace(
            &twice.stderr[twice.stderr.find("run ").unwrap_or(0) + 4..][..21],
            "[RUN]"
        )
    );
}

#[test]
fn a_run_that_rolled_back_is_not_retried() {
    let yaml = r#"
version: 1
name: rolled
steps:
  - id: prepare
    run: echo prepare >> forward
    rollback: echo prepare >> undo
  - id: deploy
    needs: [prepare]
    run: exit 1
"#;
    let first = run(yaml, &[]);
    assert_eq!(first.code, 1, "{}", first.snapshot());
    let retried = again(&first, &["resume", "last", "--retry-failed"]);
    assert_eq!(retried.code, 2, "{}", retried.snapshot());
    assert!(
        retried
            .stderr
            .contains("did not stop with work left forward (rolled back): nothing to retry"),
        "{}",
        retried.snapshot()
    );
    assert_eq!(lines(&first.directory, "forward"), ["prepare"]);
}

#[test]
fn a_retry_whose_engine_died_is_resumed_as_a_retry() {
    // `first` waits for `go` during the retry, so the engine can be killed while it runs;
    // `second` has not run again yet, and its journal still says it failed.
    let yaml = r#"
version: 1
name: twice
steps:
  - id: switch
    pivot: true
    run: echo switch >> forward
  - id: first
    needs: [switch]
    run: |
      echo first >> forward
      if [ -f fixed ]; then touch first_running; while [ ! -f go ]; do sleep 0.05; done; fi
    rollback: echo first >> undo
  - id: second
    needs: [first]
    run: |
      echo second >> forward
      test -f fixed
    rollback: echo second >> undo
"#;
    let first = run(yaml, &[]);
    assert_eq!(first.code, 4, "{}", first.snapshot());
    assert_eq!(lines(&first.directory, "undo"), ["second", "first"]);
    fix(&first.directory);
    let state = first.directory.join("state").display().to_string();
    let retry = Test::new()
        .args(["resume", "last", "--retry-failed", "--state-dir", &state])
        .spawn();
    // The runbook's directory is the first run's: that is where `first` writes.
    let marker = first.directory.join("first_running");
    let deadline = std::time::Instant::now() + LIMIT;
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "`first` did not start again"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    retry.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = retry.finish(LIMIT);
    assert_eq!(killed.code, -1, "{}", killed.snapshot());
    std::fs::write(first.directory.join("go"), "").expect("let `first` finish");

    let resumed = again(&first, &["resume", "last"]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(
        lines(&first.directory, "forward"),
        ["switch", "first", "second", "first", "first", "second"],
        "`first` ran again after the kill (in doubt, idempotent), then `second`"
    );
}
