//! A module input's default may be a template of the module's own context (SPEC §13, §3):
//! `{{run.timestamp}}` and inputs declared above it, with the values the call gives them, so
//! a used module and the module run alone agree. A cycle of defaults, a read of a var that is
//! not an input, of a step, or of a secret input from a plain one is refused in the module.

mod common;

use common::{Test, engine::engine};

const DUMP: &str = r#"
version: 1
name: dump
vars:
  backup_dir: { required: true }
  file: { default: "{{vars.backup_dir}}/db.sql.gz" }
  stamp: "{{run.timestamp}}"
  label: { default: "{{vars.file}} at {{vars.stamp}}" }
steps:
  - id: write
    readonly: true
    run: |
      echo "file=$FILE stamp={{vars.stamp}} label=$LABEL" >> log
    env:
      FILE: "{{vars.file}}"
      LABEL: "{{vars.label}}"
"#;

/// The line with its `run.timestamp` (`YYYYmmdd_HHMMSS`) replaced by `[TS]`, after checking it.
fn stamped(line: &str) -> String {
    let at = line.find("stamp=").expect("a stamp") + "stamp=".len();
    let stamp = &line[at..at + 15];
    assert!(
        stamp.chars().enumerate().all(|(index, c)| if index == 8 {
            c == '_'
        } else {
            c.is_ascii_digit()
        }),
        "{line}"
    );
    line.replace(stamp, "[TS]")
}

#[test]
fn templated_defaults_take_the_calls_inputs_as_when_run_alone() {
    let main = r#"
version: 1
name: main
vars:
  root: /srv/backups
steps:
  - id: literal
    uses: modules/dump.yaml
    with:
      backup_dir: /var/backups
  - id: templated
    needs: [literal]
    uses: modules/dump.yaml
    with:
      backup_dir: "{{vars.root}}/nightly"
  - id: given
    needs: [templated]
    uses: modules/dump.yaml
    with:
      backup_dir: /unused
      file: /elsewhere/x.gz
"#;
    let used = engine(
        Test::new().runbook(main).file("modules/dump.yaml", DUMP),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(used.code, 0, "{}", used.snapshot());
    let lines: Vec<String> = common::lines(&used.directory, "log")
        .iter()
        .map(|line| stamped(line))
        .collect();
    assert_eq!(
        lines,
        [
            "file=/var/backups/db.sql.gz stamp=[TS] label=/var/backups/db.sql.gz at [TS]",
            "file=/srv/backups/nightly/db.sql.gz stamp=[TS] label=/srv/backups/nightly/db.sql.gz at [TS]",
            "file=/elsewhere/x.gz stamp=[TS] label=/elsewhere/x.gz at [TS]",
        ]
    );
    let alone = engine(
        Test::new().file("modules/dump.yaml", DUMP),
        &[
            "run",
            "{dir}/modules/dump.yaml",
            "--var",
            "backup_dir=/var/backups",
            "--state-dir",
            "{dir}/state",
        ],
    );
    assert_eq!(alone.code, 0, "{}", alone.snapshot());
    let alone: Vec<String> = common::lines(&alone.directory, "modules/log")
        .iter()
        .map(|line| stamped(line))
        .collect();
    assert_eq!(alone, lines[..1]);
}

#[test]
fn the_plan_renders_a_templated_default_with_the_calls_values() {
    let main = r#"
version: 1
name: main
steps:
  - id: backup
    uses: modules/dump.yaml
    with:
      backup_dir: /var/backups
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/dump.yaml", DUMP),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("env FILE=/var/backups/db.sql.gz"),
        "{}",
        output.stdout
    );
}

#[test]
fn bad_templated_defaults_are_refused_in_the_module() {
    let module = r#"
version: 1
name: bad
vars:
  token: { default: x, secret: true }
  first: { default: "{{vars.second}}/a" }
  second: { default: "{{vars.first}}/b" }
  other: { default: "{{vars.nowhere}}" }
  early: { default: "{{steps.write.outputs.file}}" }
  leak: { default: "t={{vars.token}}" }
  broken: { default: "{{vars.token" }
steps:
  - id: write
    readonly: true
    run: touch marker
"#;
    let main = r#"
version: 1
name: main
steps:
  - id: bad
    uses: modules/bad.yaml
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/bad.yaml", module),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.marker_exists(), "nothing runs");
    let stderr = output.stderr.replace("\n  │ ", " ");
    for message in [
        "read each other in a cycle: `first` -> `second` -> `first`",
        "reads `vars.nowhere`, which is not an input of the module",
        "the default of input `early` of module `modules/bad.yaml` reads a step",
        "reads secret input `token`, and `leak` is not `secret: true`",
        "the default of input `broken` of module `modules/bad.yaml` is not a valid template",
    ] {
        assert!(stderr.contains(message), "{message}:\n{}", output.stderr);
    }
    insta::assert_snapshot!("bad_defaults", output.snapshot());
}
