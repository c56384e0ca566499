//! A module's `outputs` may be any template of its steps' outputs and its inputs (SPEC §13):
//! `"{{steps.dump.outputs.file}} ({{steps.dump.outputs.rows}} rows)"` reaches the caller as
//! `steps.<call>.outputs.<key>` (and one item's as `steps.<call>.items.<item>.outputs.<key>`),
//! through modules inside modules too. Read inside an expression, a templated output is
//! refused, saying how to read it.

mod common;

use common::{Test, engine::engine, lines};

const COUNT: &str = r#"
version: 1
name: count
vars:
  label: { required: true }
outputs:
  file: "{{steps.dump.outputs.file}}"
  summary: "{{steps.dump.outputs.file}} ({{steps.dump.outputs.rows}} rows, {{vars.label}})"
  label: "{{vars.label}}"
  fixed: counted
steps:
  - id: dump
    readonly: true
    run: |
      echo "file={{vars.label}}.gz" >> "$RUNBOOK_OUTPUT"
      echo "rows=4" >> "$RUNBOOK_OUTPUT"
    outputs: [file, rows]
"#;

#[test]
fn a_templated_output_reaches_the_caller_whole() {
    let main = r#"
version: 1
name: main
vars:
  which: db
summary: "{{steps.backup.outputs.summary}}"
steps:
  - id: backup
    uses: modules/count.yaml
    with:
      label: "{{vars.which}}"
  - id: report
    needs: [backup]
    readonly: true
    run: echo "{{quote steps.backup.outputs.label}} {{quote steps.backup.outputs.fixed}} $SUMMARY" >> log
    env:
      SUMMARY: "{{steps.backup.outputs.summary}}"
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/count.yaml", COUNT),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "log"),
        ["'db' 'counted' db.gz (4 rows, db)"]
    );
}

#[test]
fn each_items_templated_output_reaches_the_caller() {
    let main = r#"
version: 1
name: main
steps:
  - id: each
    for_each: [a, b]
    uses: modules/count.yaml
    with:
      label: "{{item}}"
  - id: pick
    needs: [each]
    readonly: true
    run: echo "$A / $B / {{quote steps.each.items.b.outputs.label}}" >> log
    env:
      A: "{{steps.each.items.a.outputs.summary}}"
      B: "{{steps.each.items.b.outputs.summary}}"
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/count.yaml", COUNT),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "log"),
        ["a.gz (4 rows, a) / b.gz (4 rows, b) / 'b'"]
    );
}

#[test]
fn a_module_returns_a_template_of_a_modules_templated_output() {
    let outer = r#"
version: 1
name: outer
vars:
  name: { required: true }
outputs:
  line: "outer saw {{steps.inner.outputs.summary}}"
steps:
  - id: inner
    uses: count.yaml
    with:
      label: "{{vars.name}}"
"#;
    let main = r#"
version: 1
name: main
steps:
  - id: outer
    uses: modules/outer.yaml
    with:
      name: x
  - id: report
    needs: [outer]
    readonly: true
    run: echo "$LINE" >> log
    env:
      LINE: "{{steps.outer.outputs.line}}"
"#;
    let output = engine(
        Test::new()
            .runbook(main)
            .file("modules/outer.yaml", outer)
            .file("modules/count.yaml", COUNT),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "log"),
        ["outer saw x.gz (4 rows, x)"]
    );
}

#[test]
fn a_templated_output_inside_an_expression_is_refused() {
    let main = r#"
version: 1
name: main
steps:
  - id: backup
    uses: modules/count.yaml
    with:
      label: db
  - id: report
    needs: [backup]
    readonly: true
    run: echo {{quote steps.backup.outputs.summary}} > marker
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/count.yaml", COUNT),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.marker_exists(), "nothing runs");
    insta::assert_snapshot!("output_in_expression", output.snapshot());
}
