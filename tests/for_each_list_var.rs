//! `for_each: "{{vars.regions}}"` over a `list` var (SPEC §13): the instances come from the
//! var's value wherever it was given (default, `--var k=a,b`, a JSON array, `--vars-file`);
//! `plan`, `run` and `validate --var` see them, `validate` without a value checks the step
//! once and says so, an empty list makes no instance, and `rollback RUN` compensates the
//! instances the run recorded. Bad items are snapshot-tested among tests/fixtures/bad.

mod common;

use common::{Output, Test, engine::LIMIT, engine::engine, lines};

const REGIONS: &str = r#"
version: 1
name: regions
vars:
  regions: { type: list, default: "eu,us" }
steps:
  - id: prepare
    run: echo prepare >> log
    rollback: echo undo prepare >> log
  - id: deploy
    needs: [prepare]
    for_each: "{{vars.regions}}"
    run: |
      echo "deploy {{item}} {{item_index}}" >> log
      echo "at=at-{{item}}" >> "$RUNBOOK_OUTPUT"
    outputs: [at]
    rollback: echo "undo {{item}} {{quote steps.deploy.outputs.at}}" >> log
  - id: check
    needs: [deploy]
    irreversible: true
    run: |
      echo check >> log
      exit "$CHECK_EXIT"
    env:
      CHECK_EXIT: "{{env.REGIONS_CHECK_EXIT}}"
"#;

fn plan(args: &[&str]) -> Output {
    let mut all = vec!["plan", "{file}"];
    all.extend_from_slice(args);
    let output = engine(
        Test::new()
            .runbook(REGIONS)
            .env("REGIONS_CHECK_EXIT", "0")
            .file("vars.yaml", "regions: [ap, sa]\n"),
        &all,
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    output
}

#[test]
fn the_plan_has_one_instance_per_item_of_the_value_wherever_it_was_given() {
    for (args, items) in [
        (vec![], ["eu", "us"].as_slice()),
        (vec!["--var", "regions=ap,sa,me"], &["ap", "sa", "me"]),
        (vec!["--var", r#"regions=["ca","mx"]"#], &["ca", "mx"]),
        (vec!["--vars-file", "{dir}/vars.yaml"], &["ap", "sa"]),
    ] {
        let output = plan(&args);
        let needs: Vec<String> = items.iter().map(|item| format!("deploy[{item}]")).collect();
        let mut expected = vec![
            format!("check  (needs {})", needs.join(", ")),
            format!("full rollback order: {} -> prepare", needs.join(" + ")),
        ];
        for (index, item) in items.iter().enumerate() {
            expected.push(format!(
                "deploy[{item}]  (needs prepare)\n    written at runbook.yaml:10\n"
            ));
            expected.push(format!("$ echo \"deploy {item} {index}\" >> log"));
        }
        for text in expected {
            assert!(
                output.stdout.contains(&text),
                "{args:?}: {text}:\n{}",
                output.stdout
            );
        }
    }
}

#[test]
fn validate_checks_the_step_once_without_a_value_and_each_instance_with_one() {
    let output = engine(Test::new().runbook(REGIONS), &["validate", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains(
            "note: step `deploy` runs once per item of `vars.regions`: checked once, its instances are decided by the var's value"
        ),
        "{}",
        output.stdout
    );
    let output = engine(
        Test::new().runbook(REGIONS),
        &["validate", "{file}", "--format", "json"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let report: serde_json::Value = serde_json::from_str(&output.stdout).expect("json");
    assert_eq!(
        report["files"][0]["notes"][0]
            .as_str()
            .map(|note| note.starts_with("step `deploy` runs once per item of `vars.regions`")),
        Some(true),
        "{}",
        output.stdout
    );
    let output = engine(
        Test::new().runbook(REGIONS),
        &["validate", "{file}", "--var", "regions=eu,eu"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("`for_each` item `eu` (from `vars.regions`) of step `deploy` is repeated"),
        "{}",
        output.stderr
    );
    let output = engine(
        Test::new().runbook(REGIONS),
        &["validate", "{file}", "--var", "regions=eu,eu west"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains(
            "`for_each` item `eu west` (from `vars.regions`) of step `deploy` cannot name an instance"
        ),
        "{}",
        output.stderr
    );
    let output = engine(
        Test::new().runbook(REGIONS),
        &["validate", "{file}", "--var", "regions=eu,us"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(!output.stdout.contains("note:"), "{}", output.stdout);
}

#[test]
fn a_read_of_one_instance_is_checked_against_the_items() {
    let runbook = REGIONS.replace(
        "echo check >> log",
        "echo check {{quote steps.deploy.items.eu.outputs.at}} >> log",
    );
    let output = engine(Test::new().runbook(&runbook), &["validate", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let output = engine(
        Test::new().runbook(&runbook),
        &["plan", "{file}", "--var", "regions=us"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.replace("\n  │ ", " ").contains(
            "`steps.deploy.items.eu.outputs.at` names `eu`, not an item of `deploy`'s `for_each`"
        ),
        "{}",
        output.stderr
    );
}

#[test]
fn an_empty_list_makes_no_instance_and_dependents_go_on() {
    let output = engine(
        Test::new().runbook(REGIONS).env("REGIONS_CHECK_EXIT", "0"),
        &[
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
            "--var",
            "regions=",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "log"), ["prepare", "check"]);
}

#[test]
fn a_step_needing_an_empty_for_each_still_waits_for_what_that_step_needed() {
    let output = plan(&["--var", "regions="]);
    assert!(
        output.stdout.contains("  check  (needs prepare)"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("2 steps in 2 waves"),
        "{}",
        output.stdout
    );
}

#[test]
fn a_failed_run_and_a_rollback_later_compensate_the_instances_of_the_given_value() {
    let first = engine(
        Test::new().runbook(REGIONS).env("REGIONS_CHECK_EXIT", "0"),
        &[
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
            "--var",
            "regions=ap,sa,me",
        ],
    );
    assert_eq!(first.code, 0, "{}", first.snapshot());
    std::fs::write(first.directory.join("log"), "").expect("empty the log");
    let state = first.directory.join("state").display().to_string();
    let rolled = Test::new()
        .current_dir(&first.directory)
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
        ["undo ap 'at-ap'", "undo me 'at-me'", "undo sa 'at-sa'"]
    );
}
