//! A step's `name` is a template (SPEC §4, §6): rendered with the run's vars, a `for_each`
//! instance's `item`, a module call's inputs and upstream outputs, in `plan`, in the JSON
//! events, `show` and reports; a name that reads what does not exist is refused by
//! `validate` like any template, before anything runs.

mod common;

use std::time::Duration;

use common::{Output, Test, json_events};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

const MODULE: &str = r#"version: 1
name: backup
vars:
  label: { required: true }
steps:
  - id: dump
    name: "dump the {{vars.label}} database"
    readonly: true
    run: echo "dump {{vars.label}}" >> log
"#;

const NAMED: &str = r#"version: 1
name: named
vars:
  env: { default: staging }
steps:
  - id: tag
    name: "tag the {{vars.env}} release"
    readonly: true
    run: echo "version=v7" >> "$RUNBOOK_OUTPUT"
  - id: deploy
    name: "deploy {{item}} ({{item_index}}) of {{steps.tag.outputs.version}} to {{upper vars.env}}"
    needs: [tag]
    for_each: [api, worker]
    readonly: true
    run: echo "deploy {{item}}" >> log
  - id: restart
    name: "restart on {{vars.env}}"
    needs: [deploy]
    for_each: [api]
    readonly: true
    run: echo restart >> log
  - id: db
    uses: modules/backup.yaml
    with:
      label: orders
  - id: plain
    name: Plain name
    readonly: true
    run: echo plain >> log
"#;

fn engine(test: Test, args: &[&str]) -> Output {
    let output = test.args(args).run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

fn named() -> Test {
    Test::new()
        .runbook(NAMED)
        .file("modules/backup.yaml", MODULE)
}

#[test]
fn the_plan_renders_each_name_with_the_vars_the_item_and_the_module_inputs() {
    let output = engine(named(), &["plan", "{file}", "--var", "env=prod"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!(output.snapshot());
}

#[test]
fn a_run_journals_each_name_rendered_and_show_prints_it() {
    let output = engine(
        named(),
        &[
            "--log-format",
            "json",
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let names: Vec<(String, String)> = json_events(&output.stdout)
        .iter()
        .filter(|event| event["event"] == "step_started")
        .map(|event| {
            (
                event["step"].as_str().unwrap_or_default().to_string(),
                event["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for expected in [
        ("tag", "tag the staging release"),
        ("deploy[api]", "deploy api (0) of v7 to STAGING"),
        ("deploy[worker]", "deploy worker (1) of v7 to STAGING"),
        ("restart[api]", "restart on staging [api]"),
        ("db.dump", "dump the orders database"),
        ("plain", "Plain name"),
    ] {
        assert!(
            names.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} in {names:?}"
        );
    }
    let state = output.directory.join("state").display().to_string();
    let show = engine(Test::new(), &["show", "last", "--state-dir", &state]);
    assert_eq!(show.code, 0, "{}", show.snapshot());
    for expected in [
        "  deploy[worker]       succeeded          attempts 1  ",
        "      name: deploy worker (1) of v7 to STAGING\n",
        "      name: dump the orders database\n",
    ] {
        assert!(
            show.stdout.contains(expected),
            "{expected}\n{}",
            show.stdout
        );
    }
    let report = engine(
        Test::new(),
        &[
            "report",
            "last",
            "--state-dir",
            &state,
            "--format",
            "html",
            "--output",
            "{dir}/report.html",
        ],
    );
    assert_eq!(report.code, 0, "{}", report.snapshot());
    let html = std::fs::read_to_string(report.directory.join("report.html")).expect("report.html");
    assert!(
        html.contains("deploy[worker] (deploy worker (1) of v7 to STAGING)"),
        "the chart's row names the instance:\n{html}"
    );
}

#[test]
fn a_name_reading_an_unknown_var_a_secret_or_a_step_not_upstream_is_refused() {
    let runbook = r#"version: 1
name: bad-names
vars:
  env: { default: prod }
  token: { secret: true, env: TOKEN }
steps:
  - id: first
    name: "deploy to {{vars.enviroment}}"
    readonly: true
    run: echo "version=1" >> "$RUNBOOK_OUTPUT"
  - id: second
    name: "with {{vars.token}} after {{steps.first.outputs.version}}"
    readonly: true
    run: "true"
"#;
    let output = engine(
        Test::new().runbook(runbook).file("ran", ""),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.directory.join("state/runs").exists(), "nothing ran");
    insta::assert_snapshot!(output.snapshot());
}
