//! `snippets:` and `{{> name}}` (SPEC §13): script text written once, inserted into any script
//! and rendered in that script's context, so the quoting lint and the secret rules see it as
//! part of the script. The refusals (unknown name, a cycle, a secret pasted through a snippet)
//! are snapshot-tested among tests/fixtures/bad.

mod common;

use std::time::Duration;

use common::{Output, Test};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

const SNIPPETS: &str = r#"
version: 1
name: snip
vars:
  service: { default: "api server" }
snippets:
  stop_service: |
    echo "stop {{quote vars.service}}" >> log
  note: echo "note from {{runbook.name}}" >> log
steps:
  - id: first
    run: |
      echo first >> log
      {{> note}}
    rollback:
      run: "{{> stop_service}}"
  - id: second
    needs: [first]
    irreversible: true
    run: |
      {{> note}}
      exit 3
"#;

fn engine(runbook: &str, args: &[&str]) -> Output {
    let output = Test::new().runbook(runbook).args(args).run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

#[test]
fn snippets_run_in_steps_and_compensations_with_the_scripts_values() {
    let output = engine(
        SNIPPETS,
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log = std::fs::read_to_string(output.directory.join("log")).expect("log");
    assert_eq!(
        log,
        "first\nnote from snip\nnote from snip\nstop 'api server'\n",
        "{}",
        output.snapshot()
    );
}

#[test]
fn the_plan_shows_scripts_with_their_snippets_inserted() {
    let output = engine(SNIPPETS, &["plan", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("$ echo first >> log\n      echo \"note from snip\" >> log"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("$ echo \"stop 'api server'\" >> log"),
        "{}",
        output.stdout
    );
    assert!(!output.stdout.contains("{{>"), "{}", output.stdout);
}

#[test]
fn the_quoting_lint_sees_through_a_snippet_and_points_at_the_include() {
    let runbook = r#"
version: 1
name: snip
vars:
  service: { default: "api server" }
snippets:
  stop: echo stopping {{vars.service}}
steps:
  - id: a
    readonly: true
    run: |
      echo start
      {{> stop}}
"#;
    let output = engine(runbook, &["validate", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stderr.contains(
            "`{{vars.service}}` is pasted into a shell script without `quote` (`steps[0].run`)"
        ),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("runbook.yaml:13:7"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("in snippet `stop`, written here"),
        "{}",
        output.stderr
    );
    let strict = engine(runbook, &["validate", "--strict", "{file}"]);
    assert_eq!(strict.code, 2, "{}", strict.snapshot());
}

#[test]
fn snippets_may_include_snippets_and_unused_ones_are_warned_about() {
    let runbook = r#"
version: 1
name: snip
snippets:
  inner: echo inner >> log
  outer: |
    echo outer >> log
    {{> inner}}
  spare: echo never
steps:
  - id: a
    readonly: true
    run: "{{> outer}}"
"#;
    let output = engine(
        runbook,
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let log = std::fs::read_to_string(output.directory.join("log")).expect("log");
    assert_eq!(log, "outer\ninner\n");
    let output = engine(runbook, &["validate", "{file}"]);
    assert!(
        output
            .stderr
            .contains("snippet `spare` is not used by any script"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_snippet_name_must_be_a_plain_name() {
    let runbook = r#"
version: 1
name: snip
snippets:
  "bad name": echo x
steps:
  - id: a
    readonly: true
    run: echo a
"#;
    let output = engine(runbook, &["validate", "{file}"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("snippet name `bad name` is not a valid name"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_snippet_outside_a_script_is_refused_saying_where_snippets_go() {
    let runbook = r#"
version: 1
name: snip
snippets:
  word: hello
steps:
  - id: a
    readonly: true
    run: echo "$WORD"
    env:
      WORD: "{{> word}}"
"#;
    let output = engine(runbook, &["validate", "{file}"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("`{{> name}}` inserts a snippet only into a script"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_snippet_included_on_an_indented_line_keeps_the_indentation() {
    let runbook = r#"
version: 1
name: snip
snippets:
  two_lines: |
    echo one >> log
    echo two >> log
steps:
  - id: a
    readonly: true
    run: |
      if true; then
        {{> two_lines}}
      fi
"#;
    let output = engine(runbook, &["plan", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains(
            "$ if true; then\n        echo one >> log\n        echo two >> log\n      fi"
        ),
        "{}",
        output.stdout
    );
}
