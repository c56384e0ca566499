//! A journal that cannot be written has one behaviour in every phase (issue 10, item 5): no
//! further step or compensation starts, the run exits 4 saying "the journal could not be
//! written: <cause>; fix it, then `runbook rollback RUN`", no compensation that was not tried
//! is blamed, and once the journal is writable again `rollback RUN` finishes the job.
//! The journal is made unwritable with `chattr +i` (root on a filesystem that supports it;
//! elsewhere the tests say so and pass without checking).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Output, Test};

const LIMIT: Duration = Duration::from_secs(60);

fn chattr(flag: &str, path: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether `chattr +i` works here (it needs root and a filesystem with the attribute).
fn immutable_files_work() -> bool {
    let directory = tempfile::tempdir().expect("tempdir");
    let probe = directory.path().join("probe");
    std::fs::write(&probe, "x").expect("write");
    let works = chattr("+i", &probe);
    chattr("-i", &probe);
    if !works {
        eprintln!("chattr +i does not work here: the journal-failure behaviour is not checked");
    }
    works
}

fn journals(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("runs"))
        .expect("runs")
        .flatten()
        .map(|entry| entry.path().join("journal.jsonl"))
        .collect()
}

fn run(yaml: &str) -> Output {
    let output = Test::new()
        .runbook(yaml)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .run_within(LIMIT);
    for journal in journals(&output.directory.join("state")) {
        chattr("-i", &journal);
    }
    assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
    output
}

fn assert_one_behaviour(output: &Output) {
    assert_eq!(output.code, 4, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("the journal could not be written: journal write failed"),
        "{}",
        output.snapshot()
    );
    assert!(
        output
            .stdout
            .contains("; fix it, then `runbook rollback 20"),
        "{}",
        output.snapshot()
    );
    assert!(
        !output.stdout.contains("undo it by hand"),
        "{}",
        output.snapshot()
    );
    assert!(
        !output.stdout.contains("compensation failed"),
        "{}",
        output.snapshot()
    );
}

fn lines(directory: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(directory.join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rollback_later(output: &Output) -> Output {
    let directory = &output.directory;
    let state = directory.join("state").display().to_string();
    let later = Test::new()
        .current_dir(directory)
        .args(["rollback", "last", "--state-dir", &state])
        .run_within(LIMIT);
    assert!(!later.stderr.contains("panicked"), "{}", later.snapshot());
    later
}

#[test]
fn a_journal_lost_during_the_forward_phase_stops_everything_and_rollback_finishes_later() {
    if !immutable_files_work() {
        return;
    }
    let output = run(r#"
version: 1
name: lost-forward
steps:
  - id: a
    run: chattr +i "$RUNBOOK_RUN_DIR/journal.jsonl"
    rollback: echo a >> undone
  - id: b
    needs: [a]
    run: echo b >> started
    rollback: echo b >> undone
"#);
    assert_one_behaviour(&output);
    assert!(
        lines(&output.directory, "started").is_empty(),
        "b never starts"
    );
    assert!(
        lines(&output.directory, "undone").is_empty(),
        "nothing is compensated"
    );
    let later = rollback_later(&output);
    assert_eq!(later.code, 0, "{}", later.snapshot());
    assert_eq!(lines(&output.directory, "undone"), ["a"]);
}

#[test]
fn a_journal_lost_during_the_rollback_blames_no_compensation_and_rollback_finishes_later() {
    if !immutable_files_work() {
        return;
    }
    let output = run(r#"
version: 1
name: lost-rollback
steps:
  - id: a
    run: "true"
    rollback: echo a >> undone
  - id: b
    needs: [a]
    run: "true"
    rollback: |
      echo b >> undone
      test -e once || { touch once; chattr +i "$RUNBOOK_RUN_DIR/journal.jsonl"; }
  - id: c
    needs: [b]
    readonly: true
    run: exit 1
"#);
    assert_one_behaviour(&output);
    assert_eq!(
        lines(&output.directory, "undone"),
        ["b"],
        "a's undo is not started"
    );
    let later = rollback_later(&output);
    assert_eq!(later.code, 0, "{}", later.snapshot());
    // b's end was never recorded, so it runs again (compensations are at least once).
    assert_eq!(lines(&output.directory, "undone"), ["b", "b", "a"]);
}

#[test]
fn a_hook_after_the_journal_was_lost_is_not_started_and_says_why() {
    if !immutable_files_work() {
        return;
    }
    let output = run(r#"
version: 1
name: lost-hook
hooks:
  always:
    - name: notify
      run: echo hook >> started
steps:
  - id: a
    run: chattr +i "$RUNBOOK_RUN_DIR/journal.jsonl"
    rollback: echo a >> undone
"#);
    assert_one_behaviour(&output);
    assert!(
        lines(&output.directory, "started").is_empty(),
        "the hook never starts: {}",
        output.snapshot()
    );
    assert!(
        output
            .stdout
            .contains("hook `notify` failed: could not start: journal write failed"),
        "{}",
        output.snapshot()
    );
}
