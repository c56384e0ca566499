//! `runbook run` when something fails (SPEC §8, RELIABILITY §3): compensation order over the
//! DAG, `only_if_succeeded`, a failing compensation, `allow_failure`, skipped steps, pivots and
//! `--no-rollback`. Each compensation appends a line to a file in the test directory, so the
//! tests count and order what really ran.

mod common;

use std::time::Duration;

use common::{Output, Test, json_events, lines};
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// `runbook run` with its own state dir, every gate approved.
fn run(yaml: &str) -> Output {
    run_with(yaml, &[])
}

fn run_with(yaml: &str, extra: &[&str]) -> Output {
    let output = Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--yes", "--state-dir", "{dir}/state"])
        .args(extra)
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

/// The JSON events of a run with `--log-format json`.
fn run_json(yaml: &str) -> (Output, Vec<Value>) {
    let output = run_with(yaml, &["--log-format", "json"]);
    let events = json_events(&output.stdout);
    (output, events)
}

/// Events named `name` for `step` in `phase`.
fn events_of<'a>(events: &'a [Value], name: &str, step: &str, phase: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["event"] == name && event["step"] == step && event["phase"] == phase)
        .collect()
}

#[test]
fn a_chain_is_compensated_newest_first_including_the_failed_step() {
    let output = run(r#"
version: 1
name: chain
steps:
  - id: a
    run: echo a >> forward
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: echo b >> forward
    rollback: echo b >> undo
  - id: c
    needs: [b]
    run: |
      echo c >> forward
      exit 3
    rollback: echo c >> undo
"#);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["a", "b", "c"]);
    assert_eq!(lines(&output.directory, "undo"), ["c", "b", "a"]);
    assert!(
        output.stdout.contains(": failed; rolled back (exit 1)"),
        "{}",
        output.snapshot()
    );
    assert!(
        output.stdout.contains("failed `c`: exit code 3"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn a_diamond_is_compensated_in_reverse_dag_order() {
    let undo = |id: &str| format!("echo '{id} start' >> undo; echo '{id} end' >> undo");
    let yaml = format!(
        r#"
version: 1
name: diamond
steps:
  - id: a
    run: "true"
    rollback: {a}
  - id: b
    needs: [a]
    run: "true"
    rollback: {b}
  - id: c
    needs: [a]
    run: "true"
    rollback: {c}
  - id: d
    needs: [b, c]
    run: exit 1
    rollback: {d}
"#,
        a = undo("a"),
        b = undo("b"),
        c = undo("c"),
        d = undo("d"),
    );
    let output = run(&yaml);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log = lines(&output.directory, "undo");
    assert_eq!(log.len(), 8, "every compensation ran once: {log:?}");
    let at = |line: &str| {
        log.iter()
            .position(|entry| entry == line)
            .unwrap_or_else(|| panic!("{line:?} missing from {log:?}"))
    };
    assert_eq!(&log[..2], ["d start", "d end"], "d first: {log:?}");
    assert_eq!(&log[6..], ["a start", "a end"], "a last: {log:?}");
    assert!(at("d end") < at("b start") && at("d end") < at("c start"));
    assert!(at("b end") < at("a start") && at("c end") < at("a start"));
}

#[test]
fn only_if_succeeded_skips_the_failed_steps_own_compensation() {
    let output = run(r#"
version: 1
name: only-if
steps:
  - id: a
    run: "true"
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: "true"
    rollback: echo b >> undo
  - id: c
    needs: [b]
    run: exit 1
    rollback:
      run: echo c >> undo
      only_if_succeeded: true
"#);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "undo"), ["b", "a"]);
}

#[test]
fn a_failed_compensation_blocks_its_ancestors_but_not_independent_branches() {
    // a -> b -> f and x -> f; f fails; b's undo fails, so a's undo (which must come after it)
    // is blocked, while x's undo, independent of b, still runs.
    let yaml = r#"
version: 1
name: comp-fails
steps:
  - id: a
    run: "true"
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: "true"
    rollback: |
      echo b >> undo
      echo "cannot undo b" >&2
      exit 9
  - id: x
    run: "true"
    rollback: echo x >> undo
  - id: f
    needs: [b, x]
    run: exit 1
    rollback: echo f >> undo
"#;
    let output = run(yaml);
    assert_eq!(output.code, 3, "{}", output.snapshot());
    let mut undo = lines(&output.directory, "undo");
    assert_eq!(undo.first().map(String::as_str), Some("f"), "{undo:?}");
    undo.sort();
    assert_eq!(undo, ["b", "f", "x"], "a's undo must not run");
    let stdout = &output.stdout;
    assert!(stdout.contains("needs a person:"), "{}", output.snapshot());
    assert!(
        stdout.contains("compensation of `b` failed"),
        "{}",
        output.snapshot()
    );
    assert!(
        stdout.contains("compensation of `a` was not run"),
        "{}",
        output.snapshot()
    );
    assert!(
        stdout.contains("rollback incomplete (exit 3)"),
        "{}",
        output.snapshot()
    );
    let summary_row = stdout
        .lines()
        .find(|line| line.starts_with("a "))
        .unwrap_or_else(|| panic!("no summary row for a:\n{}", output.snapshot()));
    assert!(summary_row.contains("blocked"), "{summary_row}");

    let (json, events) = run_json(yaml);
    assert_eq!(json.code, 3, "{}", json.snapshot());
    let blocked: Vec<&Value> = events
        .iter()
        .filter(|event| event["event"] == "compensation_blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{events:?}");
    assert_eq!(blocked[0]["step"], "a");
    assert_eq!(blocked[0]["waiting_on"], serde_json::json!(["b"]));
    assert!(events_of(&events, "step_started", "a", "compensation").is_empty());
    let finished = events.last().expect("run_finished");
    assert_eq!(finished["event"], "run_finished");
    assert_eq!(finished["outcome"], "rollback_incomplete");
    assert_eq!(finished["exit_code"], 3);
    let needs = finished["needs_a_person"].to_string();
    assert!(needs.contains("`b`") && needs.contains("`a`"), "{finished}");
}

#[test]
fn allowed_failure_lets_dependents_run_and_rolls_nothing_back() {
    let output = run(r#"
version: 1
name: allowed
steps:
  - id: flaky
    run: exit 2
    allow_failure: true
    rollback: echo flaky >> undo
  - id: after
    needs: [flaky]
    run: echo after >> forward
    rollback: echo after >> undo
"#);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["after"]);
    assert!(lines(&output.directory, "undo").is_empty());
    let row = output
        .stdout
        .lines()
        .find(|line| line.starts_with("flaky "))
        .unwrap_or_else(|| panic!("no summary row:\n{}", output.snapshot()));
    assert!(row.contains("failed (allowed)"), "{row}");
    assert!(
        output.stdout.contains("succeeded (exit 0)"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn skipped_steps_are_never_compensated_and_a_join_after_them_runs() {
    let yaml = r#"
version: 1
name: skipped
steps:
  - id: first
    run: "true"
    rollback: echo first >> undo
  - id: maybe
    needs: [first]
    if: "false"
    run: echo maybe >> forward
    rollback: echo maybe >> undo
  - id: then
    needs: [maybe]
    after_skipped: run
    run: echo then >> forward
    rollback: echo then >> undo
  - id: boom
    needs: [then]
    run: exit 1
"#;
    let (output, events) = run_json(yaml);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["then"]);
    assert_eq!(lines(&output.directory, "undo"), ["then", "first"]);
    assert!(
        events
            .iter()
            .any(|event| event["event"] == "step_skipped" && event["step"] == "maybe"),
        "{events:?}"
    );
    assert!(events_of(&events, "step_started", "maybe", "compensation").is_empty());
    assert!(events_of(&events, "step_finished", "maybe", "compensation").is_empty());
}

#[test]
fn a_failure_after_a_pivot_compensates_nothing_before_it() {
    let output = run(r#"
version: 1
name: pivot
steps:
  - id: s1
    run: "true"
    rollback: echo s1 >> undo
  - id: s2
    needs: [s1]
    run: "true"
    rollback: echo s2 >> undo
  - id: s3
    needs: [s2]
    pivot: true
    run: "true"
    rollback: echo s3 >> undo
  - id: s4
    needs: [s3]
    run: exit 1
"#);
    assert_eq!(output.code, 4, "{}", output.snapshot());
    assert!(lines(&output.directory, "undo").is_empty());
    let stdout = &output.stdout;
    assert!(stdout.contains("needs a person:"), "{}", output.snapshot());
    assert!(
        stdout.contains("finish or repair `s4` by hand"),
        "{}",
        output.snapshot()
    );
    for id in ["s1", "s2"] {
        assert!(
            stdout.contains(&format!("`{id}` finished before pivot `s3`")),
            "{}",
            output.snapshot()
        );
    }
    assert!(
        stdout.contains("failed after pivot (exit 4)"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn no_rollback_exits_4_and_compensates_nothing() {
    let output = run_with(
        r#"
version: 1
name: no-rollback
steps:
  - id: a
    run: "true"
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: exit 1
    rollback: echo b >> undo
"#,
        &["--no-rollback"],
    );
    assert_eq!(output.code, 4, "{}", output.snapshot());
    assert!(lines(&output.directory, "undo").is_empty());
    assert!(
        output.stdout.contains("`a` ran and was not compensated"),
        "{}",
        output.snapshot()
    );
}
