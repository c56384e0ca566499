//! Issue 12's rollback story through the binary: a module used twice with different inputs,
//! a `for_each` step after them and a module called `for_each`, then a failure. Every
//! instance and every module step is compensated, each after what came later in the DAG.

mod common;

use common::{Test, engine::engine};

const SNAPSHOT: &str = r#"
version: 1
name: snapshot
vars:
  label: { required: true }
outputs:
  file: "{{steps.take.outputs.file}}"
steps:
  - id: take
    run: |
      echo "take {{vars.label}}" >> log
      echo "file={{vars.label}}.snap" >> "$RUNBOOK_OUTPUT"
    outputs: [file]
    rollback:
      run: echo "undo take {{vars.label}}" >> log
  - id: check
    needs: [take]
    readonly: true
    run: echo "check {{vars.label}}" >> log
"#;

const MAIN: &str = r#"
version: 1
name: main
steps:
  - id: start
    run: echo start >> log
    rollback: echo "undo start" >> log
  - id: db
    needs: [start]
    uses: modules/snapshot.yaml
    with:
      label: db
  - id: files
    needs: [start]
    uses: modules/snapshot.yaml
    with:
      label: files
  - id: copy
    needs: [db, files]
    for_each: [eu, us]
    run: echo "copy {{item}}" >> log
    rollback: echo "undo copy {{item}}" >> log
  - id: regions
    needs: [copy]
    for_each: [north, south]
    uses: modules/snapshot.yaml
    with:
      label: "{{item}}"
  - id: fail
    needs: [regions]
    run: exit 1
"#;

#[test]
fn a_failure_compensates_every_instance_and_module_step_in_reverse_dag_order() {
    let output = engine(
        Test::new()
            .runbook(MAIN)
            .file("modules/snapshot.yaml", SNAPSHOT),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log: Vec<String> = std::fs::read_to_string(output.directory.join("log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with("undo"))
        .map(str::to_string)
        .collect();
    // Each level of the DAG, last first; inside a level the order is free.
    let levels: [&[&str]; 4] = [
        &["undo take north", "undo take south"],
        &["undo copy eu", "undo copy us"],
        &["undo take db", "undo take files"],
        &["undo start"],
    ];
    assert_eq!(
        log.len(),
        levels.iter().map(|level| level.len()).sum::<usize>(),
        "{log:?}"
    );
    let mut at = 0;
    for level in levels {
        let mut found: Vec<&str> = log[at..at + level.len()]
            .iter()
            .map(String::as_str)
            .collect();
        found.sort_unstable();
        assert_eq!(found, level, "{log:?}");
        at += level.len();
    }
}

#[test]
fn the_plan_lists_that_rollback_order() {
    let output = engine(
        Test::new()
            .runbook(MAIN)
            .file("modules/snapshot.yaml", SNAPSHOT),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!("plan", output.stdout);
}
