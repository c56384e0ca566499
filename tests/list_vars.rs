//! `type: list` vars (SPEC §3): a list from a YAML list, `--var k=a,b,c`, a `--vars-file`
//! list, or a JSON array in `env`; read in scripts with `{{#each}}`; each item checked against
//! `choices`; a value that is not a list refused before anything runs.

mod common;

use common::{Test, engine::engine};

const LISTS: &str = r#"
version: 1
name: lists
vars:
  services: [api, "web server", worker]
  regions: { type: list, default: "eu,us", choices: [eu, us, ap] }
  hosts: { type: list, env: LIST_VARS_HOSTS, default: [] }
steps:
  - id: each
    readonly: true
    run: |
      {{#each vars.services}}echo {{quote this}} {{@index}} >> log
      {{/each}}
      {{#each vars.regions}}echo region {{this}} >> log
      {{/each}}
      {{#each vars.hosts}}echo host {{quote this}} >> log
      {{/each}}
"#;

fn run_log(test: Test, extra: &[&str]) -> String {
    let mut args = vec!["run", "{file}", "--yes", "--state-dir", "{dir}/state"];
    args.extend(extra);
    let output = engine(test, &args);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    std::fs::read_to_string(output.directory.join("log")).expect("log")
}

#[test]
fn a_yaml_list_default_and_a_comma_default_feed_each() {
    let log = run_log(Test::new().runbook(LISTS), &[]);
    assert_eq!(
        log, "api 0\nweb server 1\nworker 2\nregion eu\nregion us\n",
        "{log}"
    );
}

#[test]
fn a_list_comes_from_the_command_line_a_vars_file_and_a_json_array_in_env() {
    let test = Test::new()
        .runbook(LISTS)
        .file("values.yaml", "services:\n  - one\n  - two\n")
        .env("LIST_VARS_HOSTS", r#"["h1", "h 2"]"#);
    let log = run_log(
        test,
        &[
            "--var",
            "regions=ap, eu",
            "--vars-file",
            "{dir}/values.yaml",
        ],
    );
    assert_eq!(
        log, "one 0\ntwo 1\nregion ap\nregion eu\nhost h1\nhost h 2\n",
        "{log}"
    );
}

#[test]
fn the_plan_shows_a_list_value_and_the_expanded_script() {
    let output = engine(
        Test::new().runbook(LISTS),
        &["plan", "{file}", "--var", "regions=us"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains(r#"services = ["api","web server","worker"]  (default)"#),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("echo region us >> log"),
        "{}",
        output.stdout
    );
}

#[test]
fn an_item_outside_choices_is_refused_naming_it_and_nothing_runs() {
    let output = engine(
        Test::new().runbook(LISTS),
        &[
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
            "--var",
            "regions=eu,mars",
        ],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("`mars` is not an allowed value of variable `regions` (from --var)"),
        "{}",
        output.stderr
    );
    assert!(!output.directory.join("log").exists());
}

#[test]
fn a_value_that_is_not_a_list_is_refused() {
    let output = engine(
        Test::new()
            .runbook(LISTS)
            .env("LIST_VARS_HOSTS", "[\"h1\", [\"nested\"]]"),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains(
            "the value of list variable `hosts` (from env LIST_VARS_HOSTS) is not a list"
        ),
        "{}",
        output.stderr
    );
}

#[test]
fn an_empty_required_list_is_missing() {
    let runbook = r#"
version: 1
name: lists
vars:
  services: { type: list, required: true }
steps:
  - id: each
    readonly: true
    run: "{{#each vars.services}}echo {{quote this}}{{/each}}"
"#;
    let output = engine(
        Test::new().runbook(runbook),
        &["plan", "{file}", "--var", "services="],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("required variable `services` is empty"),
        "{}",
        output.stderr
    );
}

#[test]
fn list_declarations_that_cannot_work_are_refused() {
    let runbook = r#"
version: 1
name: lists
vars:
  a: { type: string, default: [x, y] }
  b: { default: [x, "{{vars.a}}"] }
  c: { default: [x], secret: true }
  d: { default: [x, zz], choices: [x, y] }
  e: { choices: [[x], y] }
steps:
  - id: each
    readonly: true
    run: echo
"#;
    let output = engine(Test::new().runbook(runbook), &["validate", "{file}"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    for message in [
        "`vars.a` is `type: string` but its default is a list",
        "an item of the list `vars.b`, `{{vars.a}}`, is a template",
        "list variable `vars.c` cannot be `secret`",
        "the default of `vars.d`, `zz`, is not one of its `choices`",
        "a choice of `vars.e` is a list: each choice is one value",
    ] {
        assert!(
            output.stderr.contains(message),
            "{message}:\n{}",
            output.stderr
        );
    }
}

#[test]
fn a_list_reaches_env_as_json() {
    let runbook = r#"
version: 1
name: lists
vars:
  services: [api, "web server"]
steps:
  - id: each
    readonly: true
    run: printf '%s\n' "$SERVICES" > log
    env:
      SERVICES: "{{json vars.services}}"
"#;
    let log = run_log(Test::new().runbook(runbook), &[]);
    assert_eq!(log, "[\"api\",\"web server\"]\n");
}
