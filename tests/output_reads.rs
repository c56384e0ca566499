//! `validate` warns where a template reads a step output that may not exist when it is
//! rendered (SPEC §4, §8 rule 6), with the fix; a read through `default`, or by a step that is
//! skipped together with the step it reads, passes. A `rollback_verify` that cannot be
//! rendered is reported as the runbook's problem, not as "the rollback did not bring the
//! system back".

mod common;

use std::time::Duration;

use common::Test;

const LIMIT: Duration = Duration::from_secs(60);

const READS: &str = r#"
version: 1
name: reads
steps:
  - id: measure
    if: "{{eq env.MEASURE 'yes'}}"
    readonly: true
    run: echo "rate=7" >> "$RUNBOOK_OUTPUT"
  - id: follow
    needs: [measure]
    readonly: true
    run: echo "skipped with measure, safe {{quote steps.measure.outputs.rate}}"
  - id: report
    needs: [follow]
    after_skipped: run
    readonly: true
    run: |
      echo "rate {{quote steps.measure.outputs.rate}}"
      echo "guarded {{quote (default steps.measure.outputs.rate 'n/a')}}"
  - id: probe
    allow_failure: true
    readonly: true
    run: echo "ok=1" >> "$RUNBOOK_OUTPUT"
  - id: deploy
    needs: [probe]
    run: echo deploy
    rollback:
      run: echo undo
      env:
        VERSION: "{{steps.deploy.outputs.version}}"
        PROBED: "{{steps.probe.outputs.ok}}"
      verify:
        - name: "back to {{steps.deploy.outputs.version}}"
          run: "true"
  - id: canary
    if: "{{eq env.CANARY 'yes'}}"
    allow_failure: true
    readonly: true
    run: echo "errors=0" >> "$RUNBOOK_OUTPUT"
  - id: widen
    needs: [canary]
    readonly: true
    run: echo "skipped with canary, but it may also have failed {{quote steps.canary.outputs.errors}}"
rollback_verify:
  - name: old version serves
    run: echo {{quote steps.deploy.outputs.version}}
"#;

#[test]
fn reads_of_outputs_that_may_be_missing_are_warned_with_the_fix() {
    let output = Test::new()
        .runbook(READS)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!("output_reads_warned", output.snapshot());
    assert!(
        !output.stderr.contains("steps[1].run"),
        "`follow` is skipped with `measure`: {}",
        output.stderr
    );
    let strict = Test::new()
        .runbook(READS)
        .args(["validate", "--strict", "{file}"])
        .run();
    assert_eq!(strict.code, 2, "{}", strict.snapshot());
}

#[test]
fn the_warned_join_fails_at_run_time_and_default_fixes_it() {
    // What the warning is about: with `measure` skipped, the join cannot render.
    let yaml = r#"
version: 1
name: join
steps:
  - id: measure
    if: "false"
    readonly: true
    run: echo "rate=7" >> "$RUNBOOK_OUTPUT"
  - id: report
    needs: [measure]
    after_skipped: run
    readonly: true
    run: echo rate {{quote steps.measure.outputs.rate}} > report
"#;
    let run = |yaml: &str| {
        Test::new()
            .runbook(yaml)
            .args(["run", "{file}", "--state-dir", "{dir}/state"])
            .run_within(LIMIT)
    };
    let output = run(yaml);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("`steps.measure.outputs.rate` is not defined"),
        "{}",
        output.snapshot()
    );
    let fixed = yaml.replace(
        "quote steps.measure.outputs.rate",
        "quote (default steps.measure.outputs.rate 'n/a')",
    );
    let output = run(&fixed);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        std::fs::read_to_string(output.directory.join("report")).ok(),
        Some("rate n/a\n".to_string())
    );
}

#[test]
fn a_rollback_verify_that_cannot_render_is_a_runbook_problem() {
    let yaml = r#"
version: 1
name: unverifiable
steps:
  - id: deploy
    run: exit 1
    rollback: echo undo
rollback_verify:
  - name: old version serves
    run: echo {{quote steps.deploy.outputs.version}}
"#;
    let output = Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(output.code, 3, "{}", output.snapshot());
    assert!(
        output.stdout.contains(
            "`rollback_verify` could not be checked, a problem of the runbook rather than of the system: cannot render"
        ),
        "{}",
        output.snapshot()
    );
    assert!(
        !output.stdout.contains("did not bring the system back"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn the_summary_and_failure_hooks_reading_an_output_are_warned_unless_guarded() {
    let output = Test::new()
        .runbook(
            r#"
version: 1
name: after-failure
steps:
  - id: deploy
    readonly: true
    run: echo "version=2" >> "$RUNBOOK_OUTPUT"
summary: "deployed {{steps.deploy.outputs.version}}, guarded {{default steps.deploy.outputs.version 'none'}}"
hooks:
  on_failure:
    - name: page
      run: echo failed at {{quote steps.deploy.outputs.version}}
  always:
    - name: note
      env:
        VERSION: "{{steps.deploy.outputs.version}}"
      run: echo "$VERSION"
  on_success:
    - name: done
      run: echo {{quote steps.deploy.outputs.version}}
"#,
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for what in ["the `summary`", "an `on_failure` hook", "an `always` hook"] {
        assert!(
            output
                .stderr
                .contains(&format!("{what} reads `steps.deploy.outputs.version`")),
            "{what}: {}",
            output.snapshot()
        );
    }
    assert_eq!(
        output.stderr.matches("before `deploy` wrote it").count(),
        3,
        "one warning each, none for the guarded read or on_success: {}",
        output.snapshot()
    );
}
