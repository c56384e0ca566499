//! Any duration may be a template (SPEC §2): a step's `timeout`, `grace` and `retry.delay`,
//! `defaults`, a compensation's, a hook's and the run's `timeout`. A template is checked as
//! soon as its values are known (`plan`, `validate --var`, `run` before anything starts) and
//! rendered when it is used.

mod common;

use std::time::Duration;

use common::{Output, Test, json_events};
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// Every kind of duration, each from a var.
const TIMED: &str = r#"
version: 1
name: timed
vars:
  t: { default: 20s }
  run_limit: { default: 10m }
  delay: { default: 50ms }
  grace: { default: 3s }
  hook_limit: { default: 40s }
timeout: "{{vars.run_limit}}"
defaults:
  grace: "{{vars.grace}}"
steps:
  - id: work
    timeout: "{{vars.t}}"
    retry: { attempts: 2, delay: "{{vars.delay}}" }
    run: echo "timeout=15s" >> "$RUNBOOK_OUTPUT"
    outputs: [timeout]
    rollback:
      run: echo undone >> undo
      timeout: "{{steps.work.outputs.timeout}}"
      retry: { attempts: 2, delay: "{{vars.delay}}" }
hooks:
  always:
    - run: touch "$MARKER"
      timeout: "{{vars.hook_limit}}"
"#;

fn no_panic(output: &Output) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
}

fn engine(runbook: &str, args: &[&str]) -> Output {
    let output = Test::new().runbook(runbook).args(args).run_within(LIMIT);
    no_panic(&output);
    output
}

fn plan_json(runbook: &str, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "{file}", "--format", "json"];
    args.extend(extra);
    let output = engine(runbook, &args);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    serde_json::from_str(&output.stdout).expect("plan JSON")
}

#[test]
fn the_plan_shows_templated_durations_rendered() {
    let plan = plan_json(TIMED, &["--var", "t=90s", "--var", "delay=2s"]);
    assert_eq!(plan["timeout"], "10m", "{plan}");
    let step = &plan["steps"][0];
    assert_eq!(step["timeout"], "90s", "{step}");
    assert_eq!(step["grace"], "3s", "{step}");
    assert_eq!(step["retry"]["delay"], "2s", "{step}");
    assert_eq!(step["rollback"]["retry"]["delay"], "2s", "{step}");
    assert_eq!(
        step["rollback"]["timeout"], "<steps.work.outputs.timeout>",
        "what only a run knows is shown as such: {step}"
    );
}

#[test]
fn a_bad_templated_duration_is_refused_by_plan_validate_and_run_before_anything_runs() {
    let cases: [(&str, &str); 5] = [
        (
            "t=banana",
            "`steps[0].timeout` renders to `banana`, not a duration",
        ),
        (
            "delay=soon",
            "`steps[0].retry.delay` renders to `soon`, not a duration",
        ),
        ("grace=x", "`defaults.grace` renders to `x`, not a duration"),
        (
            "run_limit=forever",
            "`timeout` renders to `forever`, not a duration",
        ),
        (
            "hook_limit=1 minute please",
            "`hooks.always[0].timeout` renders to `1 minute please`, not a duration",
        ),
    ];
    for (var, message) in cases {
        for command in [
            vec!["plan", "{file}", "--var", var],
            vec!["validate", "{file}", "--var", var],
            vec!["run", "{file}", "--var", var, "--state-dir", "{dir}/state"],
        ] {
            let output = engine(TIMED, &command);
            assert_eq!(output.code, 2, "{command:?}: {}", output.snapshot());
            assert!(
                output.stderr.contains(message),
                "{command:?} should say {message:?}:\n{}",
                output.stderr
            );
            assert!(!output.marker_exists(), "{command:?}: nothing may run");
            assert!(
                !output.directory.join("state/runs").exists(),
                "{command:?}: no run may start"
            );
        }
    }
    let fine = engine(TIMED, &["validate", "{file}", "--var", "t=2m"]);
    assert_eq!(fine.code, 0, "{}", fine.snapshot());
}

#[test]
fn a_literal_bad_duration_is_still_a_validate_error() {
    let output = engine(
        r#"
version: 1
name: literal
steps:
  - id: work
    run: "true"
    retry: { attempts: 2, delay: fortnight }
"#,
        &["validate", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("`retry.delay` is not a duration: `fortnight`"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_templated_duration_may_not_read_a_secret() {
    let output = engine(
        r#"
version: 1
name: secret-limit
vars:
  t: { default: 5s, secret: true }
steps:
  - id: work
    run: "true"
    timeout: "{{vars.t}}"
"#,
        &["validate", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("secret `vars.t` is pasted into `steps[0].timeout`"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_templated_step_timeout_stops_the_step() {
    let output = engine(
        r#"
version: 1
name: slow
vars:
  t: { default: 10m }
steps:
  - id: slow
    timeout: "{{vars.t}}"
    grace: "{{vars.t}}"
    run: exec sleep 30
"#,
        &[
            "run",
            "{file}",
            "--var",
            "t=300ms",
            "--state-dir",
            "{dir}/state",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let events = json_events(&output.stdout);
    let finished = events
        .iter()
        .find(|event| event["event"] == "step_finished" && event["step"] == "slow")
        .expect("the step finished");
    assert_eq!(finished["status"], "failed", "{finished}");
    let message = finished["message"].as_str().unwrap_or_default();
    assert!(message.contains("timed out after 300ms"), "{message}");
}

#[test]
fn a_templated_run_timeout_stops_the_run() {
    let output = engine(
        r#"
version: 1
name: slow-run
vars:
  limit: { default: 1h }
timeout: "{{vars.limit}}"
steps:
  - id: slow
    run: exec sleep 30
    rollback: echo undone >> undo
"#,
        &[
            "run",
            "{file}",
            "--var",
            "limit=300ms",
            "--state-dir",
            "{dir}/state",
        ],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let all = format!("{}{}", output.stdout, output.stderr);
    assert!(
        all.contains("the run reached its `timeout` of 300ms"),
        "{}",
        output.snapshot()
    );
    assert_eq!(
        std::fs::read_to_string(output.directory.join("undo")).expect("compensated"),
        "undone\n"
    );
}

#[test]
fn a_templated_retry_delay_is_waited_between_attempts() {
    let output = engine(
        r#"
version: 1
name: flaky
vars:
  delay: { default: 1h }
steps:
  - id: flaky
    retry: { attempts: 3, delay: "{{vars.delay}}", backoff: 2 }
    run: |
      echo try >> tries
      test "$(wc -l < tries)" -ge 3
"#,
        &[
            "run",
            "{file}",
            "--var",
            "delay=40ms",
            "--state-dir",
            "{dir}/state",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let waits: Vec<Value> = json_events(&output.stdout)
        .into_iter()
        .filter(|event| event["event"] == "attempt_failed")
        .map(|event| event["retry_in"].clone())
        .collect();
    assert_eq!(waits, vec![Value::from(40), Value::from(80)]);
}

#[test]
fn a_compensation_timeout_may_come_from_the_steps_own_output() {
    let output = engine(
        r#"
version: 1
name: undo-limit
steps:
  - id: work
    run: |
      echo "undo_limit=100ms" >> "$RUNBOOK_OUTPUT"
      exit 1
    rollback:
      run: |
        echo started >> undo
        exec sleep 30
      timeout: "{{steps.work.outputs.undo_limit}}"
"#,
        &[
            "run",
            "{file}",
            "--state-dir",
            "{dir}/state",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(output.code, 3, "{}", output.snapshot());
    assert_eq!(
        std::fs::read_to_string(output.directory.join("undo")).expect("compensation ran"),
        "started\n"
    );
    let events = json_events(&output.stdout);
    let undo = events
        .iter()
        .find(|event| event["event"] == "step_finished" && event["phase"] == "compensation")
        .expect("the compensation finished");
    let message = undo["message"].as_str().unwrap_or_default();
    assert!(message.contains("timed out after 100ms"), "{undo}");
}

#[test]
fn a_default_duration_is_checked_once_for_all_steps() {
    let runbook = r#"
version: 1
name: defaults
vars:
  t: { default: 5m }
defaults:
  timeout: "{{vars.t}}"
  grace: "{{vars.missing}}"
steps:
  - id: a
    run: "true"
  - id: b
    run: "true"
"#;
    let output = engine(runbook, &["validate", "{file}"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert_eq!(
        output
            .stderr
            .matches("`vars.missing` is not declared (used in `defaults.grace`)")
            .count(),
        1,
        "{}",
        output.stderr
    );
    let fixed = runbook.replace("{{vars.missing}}", "{{vars.t}}");
    let plan = plan_json(&fixed, &["--var", "t=45s"]);
    for step in plan["steps"].as_array().expect("steps") {
        assert_eq!(step["timeout"], "45s", "{step}");
        assert_eq!(step["grace"], "45s", "{step}");
    }
    let output = engine(&fixed, &["plan", "{file}", "--var", "t=later"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert_eq!(
        output.stderr.matches("renders to `later`").count(),
        2,
        "one error for each default that uses it:\n{}",
        output.stderr
    );
}
