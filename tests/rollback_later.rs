//! `rollback RUN` later (SPEC §10): it uses the copy of the runbook kept with the run, so an
//! edited file no longer blocks it; `--dry-run` prints the compensations it would run, in
//! order, rendered with the recorded outputs and secrets masked, and runs nothing; a run with
//! nothing left to compensate says so and exits 0, whatever happened to the file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Output, Test, lines};

const LIMIT: Duration = Duration::from_secs(60);

const SECRET: &str = "hunter2-very-secret";

/// Three steps, each compensation using what its step recorded; the last one writes a path
/// with a space and a multi-line compensation, and reads the secret through `env`.
const RUNBOOK: &str = r#"
version: 1
name: later
vars:
  token:
    env: LATER_TOKEN
    secret: true
steps:
  - id: backup
    run: |
      echo backup >> ran
      echo "file=dumps/db 1.sql" >> "$RUNBOOK_OUTPUT"
    rollback:
      run: echo "backup {{steps.backup.outputs.file}}" >> undo
      only_if_succeeded: true
  - id: check
    needs: [backup]
    run: echo check >> ran
    readonly: true
  - id: deploy
    needs: [check]
    run: |
      echo deploy >> ran
      echo "release=v2" >> "$RUNBOOK_OUTPUT"
    rollback:
      run: |
        echo "deploy {{steps.deploy.outputs.release}}" >> undo
        test -n "$TOKEN"
      env:
        TOKEN: "{{vars.token}}"
        RELEASE: "{{steps.deploy.outputs.release}}"
      verify:
        - name: the old release serves
          run: "true"
rollback_verify:
  - name: everything is back
    run: "true"
"#;

/// A test directory holding a finished run of `RUNBOOK` in `state/`.
struct Case {
    first: Output,
}

impl Case {
    fn new() -> Case {
        let first = Test::new()
            .runbook(RUNBOOK)
            .env("LATER_TOKEN", SECRET)
            .args([
                "run",
                "{file}",
                "--state-dir",
                "{dir}/state",
                "--progress",
                "none",
            ])
            .run_within(LIMIT);
        assert_eq!(first.code, 0, "{}", first.snapshot());
        Case { first }
    }

    fn dir(&self) -> &Path {
        &self.first.directory
    }

    fn run_id(&self) -> String {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.dir().join("state/runs"))
            .expect("runs")
            .map(|entry| entry.expect("entry").path())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0]
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .to_string()
    }

    /// `runbook ARGS --state-dir <dir>/state` from the test directory, paths and the run id
    /// redacted.
    fn engine(&self, args: &[&str]) -> Output {
        let mut output = Test::new()
            .current_dir(self.dir())
            .env("LATER_TOKEN", SECRET)
            .args(args)
            .args([
                "--state-dir",
                &self.dir().join("state").display().to_string(),
            ])
            .run_within(LIMIT);
        let dir = self.dir().display().to_string();
        let run = self.run_id();
        for text in [&mut output.stdout, &mut output.stderr] {
            *text = text.replace(&dir, "[DIR]").replace(&run, "[RUN]");
        }
        output
    }

    fn edit_runbook(&self, text: &str) {
        std::fs::write(self.dir().join("runbook.yaml"), text).expect("edit the runbook");
    }
}

#[test]
fn dry_run_prints_the_compensations_in_order_rendered_and_runs_nothing() {
    let case = Case::new();
    let output = case.engine(&["rollback", "last", "--dry-run"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(!output.stdout.contains(SECRET), "{}", output.snapshot());
    assert!(lines(case.dir(), "undo").is_empty(), "nothing ran");
    insta::assert_snapshot!("rollback_dry_run", output.snapshot());
    // Nothing was recorded either: the real rollback still has everything to do.
    let rolled = case.engine(&["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(
        lines(case.dir(), "undo"),
        ["deploy v2", "backup dumps/db 1.sql"]
    );
}

#[test]
fn an_edited_runbook_no_longer_blocks_a_later_rollback() {
    let case = Case::new();
    let kept = case
        .dir()
        .join("state/runs")
        .join(case.run_id())
        .join("runbook.yaml");
    assert_eq!(
        std::fs::read_to_string(&kept).expect("the copy"),
        RUNBOOK,
        "the copy holds the runbook as run"
    );
    // The trap: the runbook was edited after the deploy (here so much it is not even valid).
    case.edit_runbook("version: 1\nname: later\nsteps: []\n");
    let rolled = case.engine(&["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(
        lines(case.dir(), "undo"),
        ["deploy v2", "backup dumps/db 1.sql"],
        "the compensations as run, with the recorded outputs"
    );
    // `--use-current` takes the file as it is now: its digest changed, so it is refused.
    let current = case.engine(&["rollback", "last", "--use-current"]);
    assert_eq!(current.code, 0, "{}", current.snapshot());
    assert!(
        current.stdout.contains("nothing left to compensate"),
        "{}",
        current.snapshot()
    );
}

#[test]
fn use_current_applies_the_digest_check() {
    let case = Case::new();
    case.edit_runbook(&format!("{RUNBOOK}# edited\n"));
    let refused = case.engine(&["rollback", "last", "--use-current"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    assert!(
        refused.stderr.contains("changed since run") && refused.stderr.contains("--allow-changed"),
        "{}",
        refused.snapshot()
    );
    assert!(lines(case.dir(), "undo").is_empty(), "nothing ran");
    let allowed = case.engine(&["rollback", "last", "--use-current", "--allow-changed"]);
    assert_eq!(allowed.code, 0, "{}", allowed.snapshot());
    assert_eq!(lines(case.dir(), "undo").len(), 2);
}

#[test]
fn a_run_already_rolled_back_has_nothing_left_to_compensate_even_with_an_edited_file() {
    let case = Case::new();
    let rolled = case.engine(&["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    // An older run directory (no copy) and an edited file: before, this was refused as
    // "changed"; there is nothing to do, and that is what it says.
    std::fs::remove_file(
        case.dir()
            .join("state/runs")
            .join(case.run_id())
            .join("runbook.yaml"),
    )
    .expect("remove the copy");
    case.edit_runbook(&format!("{RUNBOOK}# edited\n"));
    for args in [
        &["rollback", "last"][..],
        &["rollback", "last", "--dry-run"][..],
    ] {
        let again = case.engine(args);
        assert_eq!(again.code, 0, "{args:?}\n{}", again.snapshot());
        assert!(
            again
                .stdout
                .starts_with("run [RUN]: nothing left to compensate (rolled back at "),
            "{args:?}\n{}",
            again.snapshot()
        );
        assert!(again.stderr.is_empty(), "{}", again.snapshot());
    }
    assert_eq!(lines(case.dir(), "undo").len(), 2, "nothing ran again");
}

#[test]
fn a_compensation_that_cannot_be_rendered_is_shown_as_failing_by_the_dry_run() {
    // `cleanup` fails before writing its output; its compensation reads that output.
    let runbook = r#"
version: 1
name: broken-undo
steps:
  - id: cleanup
    run: echo cleanup >> ran
    rollback: echo "{{steps.cleanup.outputs.missing}}" >> undo
"#;
    let first = Test::new()
        .runbook(runbook)
        .args([
            "run",
            "{file}",
            "--state-dir",
            "{dir}/state",
            "--progress",
            "none",
        ])
        .run_within(LIMIT);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let preview = Test::new()
        .args(["rollback", "last", "--dry-run", "--state-dir"])
        .args([first.directory.join("state").display().to_string()])
        .run_within(LIMIT);
    assert_eq!(preview.code, 3, "{}", preview.snapshot());
    assert!(
        preview
            .stdout
            .contains("1. undo `cleanup`: would fail: cannot render")
            && preview.stdout.contains("steps.cleanup.outputs.missing"),
        "{}",
        preview.snapshot()
    );
    assert!(lines(&first.directory, "undo").is_empty(), "nothing ran");
}
