//! The module files a run used are kept in its directory next to the runbook copy, and its
//! recorded digest covers them (SPEC §10, §13): `rollback RUN` uses the copies whatever
//! happened to the files; with `--use-current`, an edited module is an edited runbook
//! (refused, naming the module, unless `--allow-changed`).

mod common;

use std::path::{Path, PathBuf};

use common::engine::LIMIT;
use common::{Output, Test};

const MODULE: &str = r#"
version: 1
name: undoable
vars:
  label: { required: true }
steps:
  - id: change
    run: echo "change {{vars.label}}" >> log
    rollback: echo "undo {{vars.label}} as run" >> log
"#;

const RUNBOOK: &str = r#"
version: 1
name: copies
steps:
  - id: first
    uses: lib/undoable.yaml
    with:
      label: one
  - id: fail
    needs: [first]
    run: exit "$COPIES_EXIT"
    env:
      COPIES_EXIT: "{{env.COPIES_EXIT}}"
"#;

fn engine(directory: &Path, args: &[&str]) -> Output {
    let state = directory.join("state").display().to_string();
    let mut all = args.to_vec();
    all.extend(["--state-dir", &state]);
    common::engine::engine(
        Test::new().current_dir(directory).env("COPIES_EXIT", "0"),
        &all,
    )
}

fn log(directory: &Path) -> Vec<String> {
    common::lines(directory, "log")
}

/// A finished run of `RUNBOOK` whose module was then edited, its log emptied: the test
/// directory (kept while the output lives) and the run's directory.
fn edited_after_a_run() -> (Output, PathBuf, PathBuf) {
    let first = Test::new()
        .runbook(RUNBOOK)
        .file("lib/undoable.yaml", MODULE)
        .env("COPIES_EXIT", "0")
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    let runs: Vec<PathBuf> = std::fs::read_dir(directory.join("state/runs"))
        .expect("runs")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 1);
    std::fs::write(
        directory.join("lib/undoable.yaml"),
        MODULE.replace("as run", "as edited"),
    )
    .expect("edit the module");
    std::fs::write(directory.join("log"), "").expect("empty the log");
    let run = runs[0].clone();
    (first, directory, run)
}

#[test]
fn the_run_directory_keeps_each_module_file_as_run() {
    let (_first, _, run) = edited_after_a_run();
    let index = std::fs::read_to_string(run.join("modules/index.json")).expect("index");
    assert!(index.contains("\"lib/undoable.yaml\""), "{index}");
    assert_eq!(
        std::fs::read_to_string(run.join("modules/1-undoable.yaml")).expect("copy"),
        MODULE
    );
    assert!(run.join("runbook.yaml").is_file());
}

#[test]
fn a_rollback_later_uses_the_module_as_run_whatever_the_file_says_now() {
    let (_first, directory, _) = edited_after_a_run();
    let rolled = engine(&directory, &["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(log(&directory), ["undo one as run"]);
}

#[test]
fn an_edited_module_is_an_edited_runbook_with_use_current() {
    let (_first, directory, _) = edited_after_a_run();
    let refused = engine(&directory, &["rollback", "last", "--use-current"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    for text in [
        "changed since run",
        "(module `lib/undoable.yaml`)",
        "nothing was done",
        "help: pass `--allow-changed` to use the file as it is now",
    ] {
        assert!(
            refused.stderr.contains(text),
            "{text}\n{}",
            refused.snapshot()
        );
    }
    assert!(log(&directory).is_empty());
    let rolled = engine(
        &directory,
        &["rollback", "last", "--use-current", "--allow-changed"],
    );
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(log(&directory), ["undo one as edited"]);
}

#[test]
fn a_deleted_module_file_does_not_block_a_rollback_later() {
    let (_first, directory, _) = edited_after_a_run();
    std::fs::remove_file(directory.join("lib/undoable.yaml")).expect("delete");
    let rolled = engine(&directory, &["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(log(&directory), ["undo one as run"]);
}
