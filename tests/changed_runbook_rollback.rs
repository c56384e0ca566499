//! `rollback RUN --use-current --allow-changed` with a runbook edited since the run (issue 10,
//! item 7): a step that ran with a compensation and was not undone, whose step or `rollback` is
//! gone from the file now, is named with its recorded compensation and nothing is done (exit 2),
//! instead of "nothing to compensate"; an edit that keeps every needed compensation is fine.
//! Without `--use-current` the copy of the runbook kept with the run is used, whatever the edit.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test};

const LIMIT: Duration = Duration::from_secs(60);

const ORIGINAL: &str = r#"
version: 1
name: changed
steps:
  - id: a
    run: "true"
    rollback: echo a >> undone
  - id: b
    needs: [a]
    run: "true"
    rollback: echo b >> undone
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

fn undone(directory: &Path) -> Vec<String> {
    std::fs::read_to_string(directory.join("undone"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn first_run() -> Output {
    let output = Test::new()
        .runbook(ORIGINAL)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    output
}

#[test]
fn a_compensation_the_edited_runbook_lost_is_named_and_nothing_is_done() {
    let edits = [
        (
            ORIGINAL.replace(
                "  - id: b\n    needs: [a]\n    run: \"true\"\n    rollback: echo b >> undone\n",
                "",
            ),
            "`b`: echo b >> undone",
        ),
        (
            ORIGINAL.replace("    rollback: echo a >> undone\n", "    readonly: true\n"),
            "`a`: echo a >> undone",
        ),
        (ORIGINAL.replace("id: b", "id: b2"), "`b`: echo b >> undone"),
    ];
    for (edited, expected) in edits {
        let first = first_run();
        let directory = first.directory.clone();
        std::fs::write(directory.join("runbook.yaml"), &edited).expect("edit");
        // The copy kept with the run is what a rollback uses; the file as it is now only
        // with `--use-current`.
        let refused = engine(
            &directory,
            &["rollback", "last", "--use-current", "--allow-changed"],
        );
        assert_eq!(refused.code, 2, "{edited}\n{}", refused.snapshot());
        for text in [
            "recorded compensations that the runbook",
            "no longer has: nothing was done",
            expected,
        ] {
            assert!(
                refused.stderr.contains(text),
                "{text:?}:\n{}",
                refused.snapshot()
            );
        }
        assert!(undone(&directory).is_empty(), "nothing ran");
    }
}

#[test]
fn an_edit_that_keeps_every_needed_compensation_rolls_back() {
    let first = first_run();
    let directory = first.directory.clone();
    let edited = ORIGINAL.replace("name: changed", "name: changed\ndescription: edited later");
    std::fs::write(directory.join("runbook.yaml"), edited).expect("edit");
    let rolled = engine(
        &directory,
        &["rollback", "last", "--use-current", "--allow-changed"],
    );
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(undone(&directory), ["b", "a"]);
}
