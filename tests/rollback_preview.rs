//! The plan's "if a step fails" table is what a run does (SPEC §8.9): for every row of `plan
//! --format json`, a run where exactly that step fails compensates exactly the steps the row
//! lists, in its order, including a pivot that fails (compensated, exit 1) and failures after
//! a pivot that succeeded (only later steps compensated, exit 4).

mod common;

use std::time::Duration;

use common::{Test, json_events, lines};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// A chain around a pivot: steps with and without compensations, some `only_if_succeeded`.
/// `--var fail=ID` makes exactly step ID exit 1.
const RUNBOOK: &str = r#"
version: 1
name: preview
vars:
  fail:
    default: none
env:
  FAIL: "{{vars.fail}}"
steps:
  - id: a
    run: test "$FAIL" != a
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: test "$FAIL" != b
    rollback:
      run: echo b >> undo
      only_if_succeeded: true
  - id: c
    needs: [b]
    run: test "$FAIL" != c
    readonly: true
  - id: p
    needs: [c]
    pivot: true
    run: test "$FAIL" != p
    rollback: echo p >> undo
  - id: d
    needs: [p]
    run: test "$FAIL" != d
    rollback: echo d >> undo
  - id: e
    needs: [d]
    run: test "$FAIL" != e
    rollback:
      run: echo e >> undo
      only_if_succeeded: true
  - id: f
    needs: [e]
    run: test "$FAIL" != f
    rollback: echo f >> undo
"#;

/// Each step's failure row: the compensations it promises, in order, and the pivot it names.
fn failure_rows() -> Vec<(String, Vec<String>, Option<String>)> {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["plan", "{file}", "--format", "json"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: Value = serde_json::from_str(&output.stdout).expect("plan JSON");
    let steps = plan["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|step| {
            let id = step["id"].as_str().expect("id").to_string();
            let failure = &step["on_failure"];
            let mut expected = Vec::new();
            if failure["compensates_itself"] == true {
                expected.push(id.clone());
            }
            let listed = failure["compensates"].as_array().expect("compensates");
            assert_eq!(
                failure["compensates_total"].as_u64(),
                Some(listed.len() as u64),
                "a short runbook lists every compensation"
            );
            expected.extend(
                listed
                    .iter()
                    .map(|other| other.as_str().expect("an id").to_string()),
            );
            let pivot = failure["stopped_by_pivot"].as_str().map(str::to_string);
            (id, expected, pivot)
        })
        .collect()
}

#[test]
fn every_row_of_the_failure_table_is_what_the_run_compensates() {
    let rows = failure_rows();
    assert_eq!(rows.len(), 7);
    for (step, expected, pivot) in rows {
        let output = Test::new()
            .runbook(RUNBOOK)
            .args(["run", "{file}", "--state-dir", "{dir}/state"])
            .args(["--log-format", "json", "--var"])
            .args([format!("fail={step}")])
            .run_within(LIMIT);
        assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
        let compensated: Vec<String> = json_events(&output.stdout)
            .iter()
            .filter(|event| {
                event["event"] == "step_finished"
                    && event["phase"] == "compensation"
                    && event["status"] == "compensated"
            })
            .map(|event| event["step"].as_str().expect("step").to_string())
            .collect();
        assert_eq!(
            compensated,
            expected,
            "`{step}` failing: the run compensated {compensated:?}, the plan said {expected:?}\n{}",
            output.snapshot()
        );
        // The compensations really ran, in that order.
        assert_eq!(lines(&output.directory, "undo"), expected, "`{step}`");
        let code = if pivot.is_some() { 4 } else { 1 };
        assert_eq!(output.code, code, "`{step}` failing\n{}", output.snapshot());
    }
}

#[test]
fn a_failing_pivot_is_compensated_with_everything_before_it() {
    let rows = failure_rows();
    let (_, expected, pivot) = rows
        .iter()
        .find(|(step, _, _)| step == "p")
        .expect("a row for the pivot");
    assert_eq!(expected, &["p", "b", "a"]);
    assert_eq!(pivot, &None);
    let (_, expected, pivot) = rows
        .iter()
        .find(|(step, _, _)| step == "e")
        .expect("a row for `e`");
    assert_eq!(
        expected,
        &["d"],
        "`e` is only_if_succeeded; `d` came after the pivot"
    );
    assert_eq!(pivot.as_deref(), Some("p"));
}

#[test]
fn every_row_of_the_failure_table_is_what_a_rehearsal_compensates() {
    // The same rows, each failure forced by `--fail-at` instead of the script: the step runs
    // (and succeeds), then is failed, and the rollback is the row's, pivot rule included.
    for (step, expected, pivot) in failure_rows() {
        let output = Test::new()
            .runbook(RUNBOOK)
            .args(["run", "{file}", "--state-dir", "{dir}/state"])
            .args(["--log-format", "json", "--fail-at", &step])
            .run_within(LIMIT);
        assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
        assert_eq!(
            lines(&output.directory, "undo"),
            expected,
            "`{step}` rehearsed\n{}",
            output.snapshot()
        );
        let code = if pivot.is_some() { 4 } else { 1 };
        assert_eq!(
            output.code,
            code,
            "`{step}` rehearsed\n{}",
            output.snapshot()
        );
    }
}
