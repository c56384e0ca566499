//! Decisions through the binary (SPEC §2, §6): numbers compare as numbers, one truthiness for
//! `if`, `not` and the block helpers, a number against a text is an error naming both, `plan`
//! shows what only a run can decide as decided at run time with both branches, and top-level
//! `x-` keys hold YAML anchors.

mod common;

use std::time::Duration;

use common::{Output, Test};
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

fn run(yaml: &str, extra: &[&str]) -> Output {
    let output = Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--state-dir", "{dir}/state", "--yes"])
        .args(extra)
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

fn read(output: &Output, name: &str) -> Option<String> {
    std::fs::read_to_string(output.directory.join(name)).ok()
}

const THRESHOLD: &str = r#"
version: 1
name: threshold
vars:
  rate: "9"
  limit: "10"
steps:
  - id: over
    if: "{{gt vars.rate vars.limit}}"
    readonly: true
    run: echo over > over
  - id: under
    if: "{{lt vars.rate vars.limit}}"
    readonly: true
    run: |
      echo "{{#if (gte vars.rate vars.limit)}}page{{else}}wait{{/if}} {{eq vars.rate '9.0'}}" > under
"#;

#[test]
fn nine_is_below_ten_so_the_under_branch_runs() {
    let output = run(THRESHOLD, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(read(&output, "over"), None, "9 > 10 must be false");
    assert_eq!(read(&output, "under").as_deref(), Some("wait true\n"));
    // And the other way round, with the values from the command line.
    let output = run(THRESHOLD, &["--var", "rate=100", "--var", "limit=20"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(read(&output, "over").as_deref(), Some("over\n"));
    assert_eq!(read(&output, "under"), None);
}

#[test]
fn one_point_zero_equals_one_and_texts_compare_exactly() {
    let output = run(
        r#"
version: 1
name: equal
vars:
  version: "1.0"
steps:
  - id: same
    if: "{{eq vars.version 1}}"
    readonly: true
    run: echo "{{ne vars.version '1.00'}} {{eq 'Prod' 'prod'}} {{eq 'prod' 'prod'}}" > same
"#,
        &[],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(read(&output, "same").as_deref(), Some("false false true\n"));
}

#[test]
fn a_number_against_a_text_fails_naming_both_values() {
    let yaml = r#"
version: 1
name: mismatch
vars:
  rate: "9"
  limit: n/a
steps:
  - id: check
    readonly: true
    run: echo {{gt vars.rate vars.limit}}
"#;
    let output = Test::new().runbook(yaml).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("number_against_text_in_plan", output.snapshot());

    // A value only the run knows fails the step that compares it, never silently false.
    let output = run(
        r#"
version: 1
name: mismatch
steps:
  - id: measure
    readonly: true
    run: echo "rate=n/a" >> "$RUNBOOK_OUTPUT"
  - id: page
    needs: [measure]
    if: "{{gt steps.measure.outputs.rate 5}}"
    readonly: true
    run: touch paged
"#,
        &[],
    );
    assert_ne!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("cannot compare `n/a` with `5`: one is a number and the other is not"),
        "{}",
        output.snapshot()
    );
    assert!(
        output.stdout.contains("steps[1].if"),
        "{}",
        output.snapshot()
    );
    assert_eq!(read(&output, "paged"), None);
}

#[test]
fn false_words_are_false_everywhere() {
    let mut yaml = String::from("version: 1\nname: truthiness\nsteps:\n");
    let conditions = [
        ("not_false", "{{not 'false'}}", true),
        ("capital_false", "False", false),
        ("null_word", "null", false),
        ("spaced_off", " off ", false),
        ("block_no", "{{#if 'NO'}}yes{{/if}}", false),
        ("unless_zero", "{{#unless '0'}}yes{{/unless}}", true),
        ("word", "n/a", true),
    ];
    for (id, condition, _) in conditions {
        yaml.push_str(&format!(
            "  - id: {id}\n    if: {condition:?}\n    readonly: true\n    run: touch {id}\n"
        ));
    }
    let output = run(&yaml, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for (id, condition, runs) in conditions {
        assert_eq!(read(&output, id).is_some(), runs, "`{condition}`");
    }
}

const DECISION: &str = r#"
version: 1
name: triage
steps:
  - id: measure
    readonly: true
    run: echo "rate=9" >> "$RUNBOOK_OUTPUT"
  - id: classify
    needs: [measure]
    readonly: true
    run: |
      echo "{{#if (gt steps.measure.outputs.rate 5)}}sev=P1 action=page{{else}}sev=P3 action=none{{/if}}"
  - id: page
    needs: [measure]
    if: "{{gte steps.measure.outputs.rate 5}}"
    irreversible: true
    run: echo paging
"#;

#[test]
fn plan_shows_run_time_decisions_with_both_branches() {
    let output = Test::new().runbook(DECISION).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(!output.stdout.contains("sev=P3 action=none\n"));
    insta::assert_snapshot!("plan_text_of_a_decision", output.snapshot());

    let output = Test::new()
        .runbook(DECISION)
        .args(["plan", "{file}", "--format", "json"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: Value = serde_json::from_str(&output.stdout).expect("plan JSON");
    let step = |id: &str| {
        plan["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|step| step["id"] == id)
            .cloned()
            .expect("step")
    };
    assert_eq!(
        step("classify")["decisions"],
        serde_json::json!([{
            "place": "steps[1].run",
            "condition": "gt steps.measure.outputs.rate 5",
            "then": "sev=P1 action=page",
            "else": "sev=P3 action=none",
        }])
    );
    let condition = &step("page")["condition"];
    assert_eq!(condition["decided_at_run_time"], true);
    assert_eq!(condition["decision"], "decided at run time");
    assert_eq!(
        condition["template"],
        "{{gte steps.measure.outputs.rate 5}}"
    );
    assert!(step("measure").get("decisions").is_none());

    // The run takes one branch.
    let output = run(DECISION, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("sev=P1 action=page"),
        "{}",
        output.stdout
    );
    assert!(!output.stdout.contains("sev=P3"), "{}", output.stdout);
    assert!(output.stdout.contains("paging"), "{}", output.stdout);
}

#[test]
fn x_keys_hold_anchors_and_other_unknown_keys_are_refused() {
    let yaml = r#"
version: 1
name: anchors
x-common: &common
  readonly: true
  retry: { attempts: 3, delay: 1s }
x-greeting: &greeting echo hello > greeted
steps:
  - id: greet
    <<: *common
    run: *greeting
"#;
    let output = Test::new()
        .runbook(yaml)
        .args(["plan", "{file}", "--format", "json"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: Value = serde_json::from_str(&output.stdout).expect("plan JSON");
    assert_eq!(plan["steps"][0]["retry"]["attempts"], 3);
    assert_eq!(plan["steps"][0]["command"], "echo hello > greeted");
    let output = run(yaml, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(read(&output, "greeted").as_deref(), Some("hello\n"));

    let refused = yaml.replace("x-common", "y-common");
    let output = Test::new()
        .runbook(&refused)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("y_key_refused", output.snapshot());
}

#[test]
fn validate_flags_comparisons_of_literals() {
    let output = Test::new()
        .runbook(
            r#"
version: 1
name: literals
steps:
  - id: a
    if: "{{gt 'abc' 'abd'}}"
    readonly: true
    run: echo {{lt 1 "2"}} {{gte 5 'n/a'}}
"#,
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("literal_comparisons", output.snapshot());
}

#[test]
fn an_if_that_cannot_be_decided_fails_even_a_step_allowed_to_fail() {
    // `allow_failure` covers a step that ran and failed, not a decision that could not be
    // made: otherwise `after` would go on as if `try_fix` had been decided and had failed.
    let output = run(
        r#"
version: 1
name: undecided
steps:
  - id: measure
    readonly: true
    run: echo "rate=n/a" >> "$RUNBOOK_OUTPUT"
  - id: try_fix
    needs: [measure]
    if: "{{gt steps.measure.outputs.rate 10}}"
    allow_failure: true
    readonly: true
    run: touch fixed
  - id: after
    needs: [try_fix]
    irreversible: true
    run: touch rolled_back
"#,
        &[],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("failed `try_fix`: cannot render `steps[1].if`"),
        "{}",
        output.snapshot()
    );
    assert_eq!(read(&output, "rolled_back"), None);
}
