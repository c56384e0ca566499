//! `for_each` on a step (SPEC §13): one instance `id[item]` per item of a list written in the
//! runbook, `item` and `item_index` in its templates, `steps.<id>.items.<item>.outputs.<key>`
//! to read one instance, a step needing `id` waiting for all of them, and every instance
//! compensated in reverse DAG order. Bad items are snapshot-tested among tests/fixtures/bad.

mod common;

use common::{Test, engine::LIMIT, engine::engine, lines};

const FAN_OUT: &str = r#"
version: 1
name: fan-out
steps:
  - id: prepare
    run: echo prepare >> log
    rollback: echo undo prepare >> log
  - id: deploy
    needs: [prepare]
    for_each: [api, worker, web_v2]
    run: |
      echo "deploy {{item}} {{item_index}} {{quote item}}" >> log
      echo "pid=pid-{{item}}" >> "$RUNBOOK_OUTPUT"
    outputs: [pid]
    rollback: echo "undo {{item}} {{quote steps.deploy.outputs.pid}}" >> log
  - id: check
    needs: [deploy]
    irreversible: true
    run: |
      echo "check {{quote steps.deploy.items.worker.outputs.pid}}" >> log
      exit "$CHECK_EXIT"
    env:
      CHECK_EXIT: "{{env.FOR_EACH_CHECK_EXIT}}"
"#;

#[test]
fn instances_run_with_their_item_and_a_dependent_reads_one_of_them() {
    let output = engine(
        Test::new().runbook(FAN_OUT).env("FOR_EACH_CHECK_EXIT", "0"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let mut log = lines(&output.directory, "log");
    assert_eq!(log.first().map(String::as_str), Some("prepare"));
    assert_eq!(log.last().map(String::as_str), Some("check 'pid-worker'"));
    // The instances run side by side, in any order.
    log.sort();
    assert_eq!(
        log,
        [
            "check 'pid-worker'",
            "deploy api 0 'api'",
            "deploy web_v2 2 'web_v2'",
            "deploy worker 1 'worker'",
            "prepare",
        ]
    );
}

#[test]
fn a_failure_compensates_every_instance_before_what_they_needed() {
    let output = engine(
        Test::new().runbook(FAN_OUT).env("FOR_EACH_CHECK_EXIT", "1"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    let undo: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|line| line.starts_with("undo"))
        .collect();
    assert_eq!(undo.len(), 4, "{log:?}");
    assert_eq!(undo[3], "undo prepare", "{log:?}");
    let mut instances = undo[..3].to_vec();
    instances.sort();
    assert_eq!(
        instances,
        [
            "undo api 'pid-api'",
            "undo web_v2 'pid-web_v2'",
            "undo worker 'pid-worker'"
        ]
    );
}

#[test]
fn the_plan_shows_each_instance_with_its_values() {
    let output = engine(
        Test::new().runbook(FAN_OUT).env("FOR_EACH_CHECK_EXIT", "0"),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for expected in [
        "deploy[api]  (needs prepare)\n    written at runbook.yaml:8\n",
        "$ echo \"deploy worker 1 'worker'\" >> log",
        "check  (needs deploy[api], deploy[worker], deploy[web_v2])",
        "full rollback order: deploy[api] + deploy[worker] + deploy[web_v2] -> prepare",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected}:\n{}",
            output.stdout
        );
    }
}

#[test]
fn an_empty_list_makes_no_instance_and_dependents_go_on() {
    let runbook = r#"
version: 1
name: fan-out
steps:
  - id: deploy
    for_each: []
    readonly: true
    run: echo "deploy {{item}}" >> log
  - id: after
    needs: [deploy]
    readonly: true
    run: echo after >> log
"#;
    let output = engine(
        Test::new().runbook(runbook),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "log"), ["after"]);
}

#[test]
fn reads_that_do_not_name_an_instance_are_refused() {
    let runbook = r#"
version: 1
name: fan-out
steps:
  - id: deploy
    for_each: [api, worker]
    readonly: true
    run: echo "pid=1" >> "$RUNBOOK_OUTPUT"
    outputs: [pid]
  - id: after
    needs: [deploy]
    readonly: true
    run: |
      echo {{quote steps.deploy.outputs.pid}}
      echo {{quote steps.deploy.items.web.outputs.pid}}
      echo {{item}}
"#;
    let output = engine(Test::new().runbook(runbook), &["validate", "{file}"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    for message in [
        "step `deploy` runs once per item of its `for_each`: `steps.deploy.outputs.pid` does not say which",
        "`steps.deploy.items.web.outputs.pid` names `web`, not an item of `deploy`'s `for_each`",
        "`item` is known only in a step with `for_each`",
    ] {
        assert!(
            output.stderr.replace("\n  │ ", " ").contains(message),
            "{message}:\n{}",
            output.stderr
        );
    }
}

#[test]
fn a_rollback_later_compensates_each_instance_with_its_recorded_outputs() {
    let first = engine(
        Test::new().runbook(FAN_OUT).env("FOR_EACH_CHECK_EXIT", "0"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(first.code, 0, "{}", first.snapshot());
    std::fs::write(first.directory.join("log"), "").expect("empty the log");
    let state = first.directory.join("state").display().to_string();
    let rolled = Test::new()
        .current_dir(&first.directory)
        .env("FOR_EACH_CHECK_EXIT", "0")
        .args(["rollback", "last", "--state-dir", &state])
        .run_within(LIMIT);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    let log = lines(&first.directory, "log");
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[3], "undo prepare", "{log:?}");
    let mut instances = log[..3].to_vec();
    instances.sort();
    assert_eq!(
        instances,
        [
            "undo api 'pid-api'",
            "undo web_v2 'pid-web_v2'",
            "undo worker 'pid-worker'"
        ]
    );
}

#[test]
fn an_item_with_a_dot_names_an_instance_read_in_brackets() {
    let runbook = r#"
version: 1
name: releases
steps:
  - id: deploy
    for_each: [v1.2, v2]
    run: echo "pid=pid-{{item}}" >> "$RUNBOOK_OUTPUT"
    outputs: [pid]
    rollback: echo "undo {{item}} {{quote steps.deploy.outputs.pid}}" >> log
  - id: check
    needs: [deploy]
    irreversible: true
    run: |
      echo "check {{quote steps.deploy.items.[v1.2].outputs.pid}}" >> log
      exit 1
"#;
    let output = engine(
        Test::new().runbook(runbook),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    assert_eq!(log.first().map(String::as_str), Some("check 'pid-v1.2'"));
    let mut undo = log[1..].to_vec();
    undo.sort();
    assert_eq!(undo, ["undo v1.2 'pid-v1.2'", "undo v2 'pid-v2'"]);
    let plan = engine(Test::new().runbook(runbook), &["plan", "{file}"]);
    assert_eq!(plan.code, 0, "{}", plan.snapshot());
    assert!(
        plan.stdout
            .contains("check  (needs deploy[v1.2], deploy[v2])"),
        "{}",
        plan.stdout
    );
}
