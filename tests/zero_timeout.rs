//! A `timeout` of zero would stop every attempt at once, so it is refused wherever a
//! `timeout` is written (issue 10, item 18), as a zero probe `interval` is: exit 2 at its
//! place, nothing run.

mod common;

use std::time::Duration;

use common::Test;

const LIMIT: Duration = Duration::from_secs(60);

fn runbook(top: &str, step: &str, hooks: &str) -> String {
    format!(
        r#"
version: 1
name: zero
{top}
steps:
  - id: a
    run: touch "$MARKER"
    rollback: "true"
{step}
{hooks}
"#
    )
}

#[test]
fn a_zero_timeout_is_refused_wherever_it_is_written() {
    let cases = [
        runbook("", "    timeout: 0s", ""),
        runbook("", "    timeout: 0ms", ""),
        runbook("timeout: 0s", "", ""),
        runbook("defaults: { timeout: 0s }", "", ""),
        runbook("", "", "").replace(
            "rollback: \"true\"",
            "rollback: { run: \"true\", timeout: 0s }",
        ),
        runbook(
            "",
            "",
            "hooks:\n  always:\n    - run: \"true\"\n      timeout: 0s",
        ),
        runbook(
            "",
            "    verify:\n      - name: up\n        run: \"true\"\n        timeout: 0s",
            "",
        ),
        runbook(
            "",
            "    verify:\n      - name: up\n        http: { url: \"http://127.0.0.1:9/\", timeout: 0s }",
            "",
        ),
    ];
    for text in cases {
        for command in ["validate", "run"] {
            let output = Test::new()
                .runbook(&text)
                .args([command, "{file}", "--state-dir", "{dir}/state"])
                .run_within(LIMIT);
            assert_eq!(output.code, 2, "{text}\n{}", output.snapshot());
            assert!(
                output.stderr.contains("must be more than zero"),
                "{text}\n{}",
                output.snapshot()
            );
            assert!(output.stderr.contains("runbook.yaml:"), "{}", output.stderr);
            assert!(!output.marker_exists(), "nothing runs");
        }
    }
}

#[test]
fn a_templated_zero_timeout_is_refused_once_its_value_is_known() {
    let text = runbook(
        "vars:\n  t: { default: 5s }",
        "    timeout: \"{{vars.t}}\"",
        "",
    );
    let output = Test::new()
        .runbook(&text)
        .args([
            "run",
            "{file}",
            "--var",
            "t=0s",
            "--state-dir",
            "{dir}/state",
        ])
        .run_within(LIMIT);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains("must be more than zero"),
        "{}",
        output.snapshot()
    );
    assert!(!output.marker_exists(), "nothing runs");
    let fine = Test::new()
        .runbook(&text)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(fine.code, 0, "{}", fine.snapshot());
}
