//! Files under the state dir are opened without following a symbolic link and only when they
//! are regular files (issue 10, items 8 and 9): a run's journal replaced by a link (to a copy
//! of a journal, to `/dev/zero`) or by a FIFO is refused by `show`, `report`, `rollback` and
//! `resume` without hanging, and a link's target is never read as the run's nor truncated.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Output, Test};

const LIMIT: Duration = Duration::from_secs(30);

const RUNBOOK: &str = r#"
version: 1
name: files
steps:
  - id: a
    run: "true"
    rollback: echo a >> undone
"#;

fn engine(directory: &Path, args: &[&str]) -> Output {
    let state = directory.join("state").display().to_string();
    let output = Test::new()
        .current_dir(directory)
        .args(args)
        .args(["--state-dir", &state])
        .run_within(LIMIT);
    assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
    output
}

/// A finished run, and the path of its journal.
fn finished_run() -> (Output, String, PathBuf) {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let runs = output.directory.join("state/runs");
    let run = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .file_name()
        .to_string_lossy()
        .into_owned();
    let journal = runs.join(&run).join("journal.jsonl");
    (output, run, journal)
}

fn all_refuse(directory: &Path, run: &str) {
    for args in [
        vec!["show", run],
        vec!["report", run],
        vec!["rollback", run],
        vec!["resume", run],
    ] {
        let output = engine(directory, &args);
        assert_eq!(output.code, 2, "{args:?}: {}", output.snapshot());
    }
    assert!(
        !directory.join("undone").exists(),
        "nothing was compensated"
    );
}

#[test]
fn a_journal_replaced_by_a_link_is_not_followed_and_its_target_is_left_alone() {
    let (output, run, journal) = finished_run();
    let directory = output.directory.clone();
    let elsewhere = directory.join("elsewhere.jsonl");
    std::fs::rename(&journal, &elsewhere).expect("move the journal");
    let before = std::fs::read(&elsewhere).expect("read");
    std::os::unix::fs::symlink(&elsewhere, &journal).expect("link");
    all_refuse(&directory, &run);
    assert_eq!(
        std::fs::read(&elsewhere).expect("read"),
        before,
        "the target is untouched"
    );
    // `history` still answers.
    assert_eq!(engine(&directory, &["history"]).code, 0);
}

#[test]
fn a_journal_replaced_by_dev_zero_or_a_fifo_is_refused_without_hanging() {
    let (output, run, journal) = finished_run();
    let directory = output.directory.clone();
    std::fs::remove_file(&journal).expect("remove");
    std::os::unix::fs::symlink("/dev/zero", &journal).expect("link");
    all_refuse(&directory, &run);
    history_lists_it_as_damaged(&directory, &run);
    std::fs::remove_file(&journal).expect("remove");
    nix::unistd::mkfifo(&journal, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    all_refuse(&directory, &run);
    history_lists_it_as_damaged(&directory, &run);
}

/// `history` answers, and lists the run as damaged rather than leaving it out.
fn history_lists_it_as_damaged(directory: &Path, run: &str) {
    let history = engine(directory, &["history"]);
    assert_eq!(history.code, 0, "{}", history.snapshot());
    let row = history
        .stdout
        .lines()
        .find(|line| line.contains(run))
        .unwrap_or_else(|| panic!("no row for {run}: {}", history.snapshot()));
    assert!(row.contains("damaged"), "{row}");
}

/// `plant` puts a link to `victim` where `print`'s log will be opened.
const PLANTED_LOG: &str = r#"
version: 1
name: planted-log
steps:
  - id: plant
    readonly: true
    run: ln -s "$PWD/victim" "$RUNBOOK_RUN_DIR/logs/print.log"
  - id: print
    needs: [plant]
    readonly: true
    run: echo appended-output
"#;

#[test]
fn a_step_log_replaced_by_a_link_is_not_written_through() {
    let test = Test::new().runbook(PLANTED_LOG);
    std::fs::write(test.path().join("victim"), "original\n").expect("victim");
    let output = test
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .run_within(LIMIT);
    assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
    let victim = std::fs::read_to_string(output.directory.join("victim")).expect("victim");
    assert_eq!(victim, "original\n", "the link's target is untouched");
    assert_eq!(
        output.code,
        4,
        "the run stops, fail closed: {}",
        output.snapshot()
    );
    assert!(
        output.stdout.contains("cannot write the step logs"),
        "{}",
        output.snapshot()
    );
}
