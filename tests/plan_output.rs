//! `plan` through the binary: text and JSON snapshots of the examples, variable precedence,
//! secret masking, condition evaluation, the DAG pictures, and `run --dry-run`.

mod common;

use common::Test;
use serde_json::Value;

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::read_to_string(path).expect("example")
}

fn plan_json(test: Test) -> Value {
    plan_json_with(test, &[])
}

fn plan_json_with(test: Test, extra: &[&str]) -> Value {
    let output = test
        .args(["plan", "{file}", "--format", "json"])
        .args(extra)
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    serde_json::from_str(&output.stdout).expect("plan JSON")
}

fn var<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["vars"]
        .as_array()
        .expect("vars")
        .iter()
        .find(|var| var["name"] == name)
        .expect("var present")
}

#[test]
fn plan_text_of_each_example() {
    for name in [
        "hello.yaml",
        "deploy-local.yaml",
        "approval.yaml",
        "probes.yaml",
        "rollback.yaml",
        "decision-matrix.yaml",
    ] {
        let output = Test::new()
            .runbook_bytes(name, example(name).as_bytes())
            .args(["plan", name])
            .env("HOME", "/home/operator")
            .run();
        assert_eq!(output.code, 0, "{name}: {}", output.snapshot());
        insta::assert_snapshot!(format!("plan_text_{name}"), output.snapshot());
    }
}

#[test]
fn plan_json_of_the_deploy_example() {
    let output = Test::new()
        .runbook(&example("deploy-local.yaml"))
        .args(["plan", "{file}", "--format", "json"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(plan["format_version"], 1);
    assert_eq!(
        plan["waves"],
        serde_json::json!([
            ["install_v1"],
            ["backup"],
            ["deploy"],
            ["serve"],
            ["check_version"]
        ])
    );
    let deploy = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|step| step["id"] == "deploy")
        .expect("deploy");
    assert_eq!(deploy["command"], "echo '2.0.0' > \"$APP_DIR/VERSION\"");
    assert_eq!(
        deploy["rollback"]["command"],
        "cp -a '<steps.backup.outputs.dir>'/. \"$APP_DIR/\""
    );
    assert_eq!(deploy["on_failure"]["compensates_itself"], true);
    assert_eq!(
        deploy["on_failure"]["compensates"],
        serde_json::json!(["backup"])
    );
    assert_eq!(
        plan["rollback"]["order"],
        serde_json::json!([["serve"], ["deploy"], ["backup"]])
    );
    let check = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|step| step["id"] == "check_version")
        .expect("check");
    assert_eq!(check["verify"][0]["kind"], "http");
    assert_eq!(check["verify"][0]["timing"], "within 3s every 250ms");
    let redacted = output
        .stdout
        .replace(&output.directory.display().to_string(), "[DIR]");
    insta::assert_snapshot!("plan_json_deploy_local", redacted);
}

const PRECEDENCE: &str = r#"
version: 1
name: precedence
vars:
  level:
    default: from-default
    env: LEVEL_FROM_ENV
    file: level.txt
steps:
  - id: show
    run: echo {{quote vars.level}}
    readonly: true
"#;

#[test]
fn variable_precedence_is_var_then_vars_file_then_env_then_file_then_default() {
    let level = |plan: &Value| {
        var(plan, "level")["value"]
            .as_str()
            .expect("value")
            .to_string()
    };
    let source = |plan: &Value| {
        var(plan, "level")["source"]
            .as_str()
            .expect("source")
            .to_string()
    };

    let plan = plan_json(Test::new().runbook(PRECEDENCE));
    assert_eq!(
        (level(&plan), source(&plan)),
        ("from-default".into(), "default".into())
    );

    let plan = plan_json(
        Test::new()
            .runbook(PRECEDENCE)
            .file("level.txt", "from-file\n"),
    );
    assert_eq!(
        (level(&plan), source(&plan)),
        ("from-file".into(), "file level.txt".into())
    );

    let plan = plan_json(
        Test::new()
            .runbook(PRECEDENCE)
            .file("level.txt", "from-file\n")
            .env("LEVEL_FROM_ENV", "from-env"),
    );
    assert_eq!(
        (level(&plan), source(&plan)),
        ("from-env".into(), "env LEVEL_FROM_ENV".into())
    );

    let test = Test::new()
        .runbook(PRECEDENCE)
        .file("level.txt", "from-file\n")
        .file("vars.yaml", "level: from-vars-file\n")
        .env("LEVEL_FROM_ENV", "from-env");
    let plan = plan_json_with(test, &["--vars-file", "{dir}/vars.yaml"]);
    assert_eq!(
        (level(&plan), source(&plan)),
        ("from-vars-file".into(), "--vars-file".into())
    );

    let test = Test::new()
        .runbook(PRECEDENCE)
        .file("vars.yaml", "level: from-vars-file\n")
        .env("LEVEL_FROM_ENV", "from-env");
    let plan = plan_json_with(
        test,
        &[
            "--vars-file",
            "{dir}/vars.yaml",
            "--var",
            "level=first",
            "--var",
            "level=from-command-line",
        ],
    );
    assert_eq!(
        (level(&plan), source(&plan)),
        ("from-command-line".into(), "--var".into())
    );
}

#[test]
fn a_default_can_use_env_and_vars_declared_above() {
    let runbook = r#"
version: 1
name: defaults
vars:
  base: "{{env.BASE_DIR}}/app"
  backups: "{{vars.base}}/backups"
steps:
  - id: show
    run: echo {{quote vars.backups}}
    readonly: true
"#;
    let plan = plan_json(Test::new().runbook(runbook).env("BASE_DIR", "/srv"));
    assert_eq!(var(&plan, "backups")["value"], "/srv/app/backups");
    assert_eq!(plan["steps"][0]["command"], "echo '/srv/app/backups'");
}

#[test]
fn a_secret_is_masked_all_through_a_text_plan_written_in_many_pieces() {
    // The text plan is written as it is rendered, in chunks: a secret that falls across two
    // of them is masked all the same.
    let mut runbook = String::from(
        "version: 1\nname: many\nvars:\n  token: { env: TOKEN, secret: true, required: true }\nsteps:\n",
    );
    for index in 0..2000 {
        runbook.push_str(&format!(
            "  - id: s{index}\n    run: echo Tr0ub4dor-xyzzy {index}\n    readonly: true\n"
        ));
    }
    let output = Test::new()
        .runbook(&runbook)
        .env("TOKEN", "Tr0ub4dor-xyzzy")
        .args(["plan", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.len() > 100_000, "{}", output.stdout.len());
    assert!(!output.stdout.contains("Tr0ub4dor"), "{}", output.stdout);
    assert_eq!(output.stdout.matches("echo •••••• ").count(), 2000);
    assert!(output.stdout.contains("echo •••••• 1999\n"));
}

#[test]
fn secrets_are_masked_everywhere_in_the_plan() {
    let runbook = r#"
version: 1
name: secrets
vars:
  db_password: { env: DB_PASSWORD, secret: true, required: true }
env:
  PGPASSWORD: "{{vars.db_password}}"
steps:
  - id: dump
    run: pg_dump -h 127.0.0.1 app > dump.sql
    env:
      ALSO: "{{env.DB_PASSWORD}}"
    rollback: rm -f dump.sql
"#;
    for format in ["text", "json", "mermaid", "dot"] {
        let output = Test::new()
            .runbook(runbook)
            .env("DB_PASSWORD", "Tr0ub4dor&3-xyzzy")
            .args(["plan", "{file}", "--format", format])
            .run();
        assert_eq!(output.code, 0, "{}", output.snapshot());
        assert!(
            !output.stdout.contains("Tr0ub4dor"),
            "{format}: {}",
            output.stdout
        );
        assert!(
            !output.stderr.contains("Tr0ub4dor"),
            "{format}: {}",
            output.stderr
        );
        if format == "text" {
            assert!(
                output.stdout.contains("PGPASSWORD=••••••"),
                "{}",
                output.stdout
            );
            assert!(output.stdout.contains("ALSO=••••••"), "{}", output.stdout);
        }
    }
}

#[test]
fn a_missing_required_var_names_the_var_and_how_to_give_it() {
    let runbook = r#"
version: 1
name: required
vars:
  db_url: { env: DATABASE_URL, required: true, description: Database to back up }
steps:
  - id: a
    run: touch "$MARKER"
    readonly: true
"#;
    let output = Test::new().runbook(runbook).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("required variable `db_url` (Database to back up) has no value"),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("DATABASE_URL"), "{}", output.stderr);
    assert!(
        output.stderr.contains("runbook.yaml:5:3"),
        "{}",
        output.stderr
    );
    let output = Test::new()
        .runbook(runbook)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(
        output.code,
        0,
        "validate does not demand required values: {}",
        output.snapshot()
    );
}

#[test]
fn conditions_are_evaluated_when_they_can_be() {
    let runbook = r#"
version: 1
name: conditions
vars:
  environment: { default: staging, choices: [staging, production] }
steps:
  - id: gate
    if: "{{eq vars.environment 'production'}}"
    approve: Go?
  - id: produce
    run: echo "x=1" >> "$RUNBOOK_OUTPUT"
    readonly: true
  - id: later
    needs: [produce]
    if: "{{eq steps.produce.outputs.x '1'}}"
    run: echo later
    readonly: true
"#;
    let step = |plan: &Value, id: &str| {
        plan["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|step| step["id"] == id)
            .cloned()
            .expect("step")
    };
    let plan = plan_json(Test::new().runbook(runbook));
    assert_eq!(step(&plan, "gate")["condition"]["decision"], "skipped");
    assert_eq!(
        step(&plan, "later")["condition"]["decision"],
        "decided at run time"
    );
    let plan = plan_json_with(
        Test::new().runbook(runbook),
        &["--var", "environment=production"],
    );
    assert_eq!(step(&plan, "gate")["condition"]["decision"], "runs");
}

#[test]
fn mermaid_and_dot_draw_rollback_edges_apart_from_needs() {
    let runbook = example("deploy-local.yaml");
    let output = Test::new()
        .runbook(&runbook)
        .args(["plan", "{file}", "--format", "mermaid"])
        .run();
    assert_eq!(output.code, 0);
    assert!(output.stdout.starts_with("flowchart TD\n"));
    assert!(
        output.stdout.contains("  backup --> deploy\n"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("  deploy -. undo .-> backup\n"),
        "{}",
        output.stdout
    );
    let output = Test::new()
        .runbook(&runbook)
        .args(["plan", "{file}", "--format", "dot"])
        .run();
    assert_eq!(output.code, 0);
    assert!(
        output.stdout.contains("\"backup\" -> \"deploy\";"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("\"deploy\" -> \"backup\" [style=dashed"),
        "{}",
        output.stdout
    );
}

#[test]
fn run_dry_run_prints_the_same_plan() {
    let runbook = example("hello.yaml");
    let plan = Test::new().runbook(&runbook).args(["plan", "{file}"]).run();
    let dry_run = Test::new()
        .runbook(&runbook)
        .args(["run", "--dry-run", "{file}"])
        .run();
    assert_eq!(plan.code, 0);
    assert_eq!(dry_run.code, 0);
    assert_eq!(
        plan.stdout
            .replace(&plan.directory.display().to_string(), "D"),
        dry_run
            .stdout
            .replace(&dry_run.directory.display().to_string(), "D")
    );
}

#[test]
fn an_unreadable_vars_file_is_refused() {
    let output = Test::new()
        .runbook(&example("hello.yaml"))
        .args(["plan", "{file}", "--vars-file", "{dir}/missing.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output
            .stderr
            .contains("cannot read vars file `[DIR]/missing.yaml`"),
        "{}",
        output.stderr
    );
    let output = Test::new()
        .runbook(&example("hello.yaml"))
        .file("vars.yaml", "- a list\n")
        .args(["plan", "{file}", "--vars-file", "{dir}/vars.yaml"])
        .run();
    assert_eq!(output.code, 2);
    assert!(
        output.stderr.contains("is not a YAML mapping"),
        "{}",
        output.stderr
    );
}

#[test]
fn an_environment_variable_missing_at_plan_time_names_the_place() {
    let runbook = r#"
version: 1
name: env-missing
steps:
  - id: a
    run: echo {{quote env.SURELY_NOT_SET_ANYWHERE}}
    readonly: true
"#;
    let output = Test::new().runbook(runbook).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(output.stderr.contains("steps[0].run"), "{}", output.stderr);
    assert!(
        output.stderr.contains("SURELY_NOT_SET_ANYWHERE"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_number_in_a_vars_file_keeps_its_spelling() {
    let runbook = r#"
version: 1
name: numbers
vars:
  release: { choices: ["1.9", "1.10"], default: "1.9" }
steps:
  - id: show
    run: echo {{quote vars.release}}
    readonly: true
"#;
    let test = Test::new()
        .runbook(runbook)
        .file("vars.yaml", "release: 1.10\n");
    let plan = plan_json_with(test, &["--vars-file", "{dir}/vars.yaml"]);
    assert_eq!(var(&plan, "release")["value"], "1.10");
}

#[test]
fn templated_probe_timing_is_rendered_and_checked_before_anything_runs() {
    let runbook = r#"
version: 1
name: watch
vars:
  window: { default: 5m }
  limit: { default: "5" }
steps:
  - id: watch
    verify:
      - name: error rate
        run: echo 0.4
        expect: { stdout_number: "< {{vars.limit}}" }
        hold: "{{vars.window}}"
        interval: 1s
"#;
    let plan = plan_json_with(Test::new().runbook(runbook), &["--var", "window=2m"]);
    let probe = &plan["steps"][0]["verify"][0];
    assert_eq!(probe["timing"], "hold 2m every 1s");
    assert!(
        probe["expect"]
            .as_array()
            .expect("expect")
            .iter()
            .any(|item| item == "stdout number < 5"),
        "{probe}"
    );
    let output = Test::new()
        .runbook(runbook)
        .args([
            "run",
            "{file}",
            "--var",
            "window=soon",
            "--state-dir",
            "{dir}/state",
        ])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains("renders to `soon`, not a duration"),
        "{}",
        output.stderr
    );
    assert!(
        !output.directory.join("state/runs").exists(),
        "nothing may run"
    );
}

/// A compensation's `env` is rendered (secrets masked), and every multi-line value sits
/// under its own line instead of flush left.
const MULTI_LINE: &str = r#"
version: 1
name: layout
description: |
  First line of the description.
  Second line.
vars:
  token:
    env: LAYOUT_TOKEN
    secret: true
  banner:
    default: "hello\nworld"
env:
  BANNER: "{{vars.banner}}"
steps:
  - id: migrate
    run: |
      echo one
      echo two
    env:
      NOTE: "{{vars.banner}}"
    rollback:
      run: |
        echo undo
        echo more
      env:
        TOKEN: "{{vars.token}}"
        WHO: "{{runbook.name}}"
  - id: gate
    needs: [migrate]
    approve: |
      Ship it?
      Really?
"#;

#[test]
fn plan_shows_compensation_env_and_indents_multi_line_values() {
    let output = Test::new()
        .runbook(MULTI_LINE)
        .env("LAYOUT_TOKEN", "layout-secret-value")
        .args(["plan", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(!output.stdout.contains("layout-secret-value"));
    insta::assert_snapshot!("plan_text_multi_line", output.snapshot());
    // No line of the plan but its headings starts flush left.
    for line in output.stdout.lines() {
        assert!(
            line.is_empty()
                || line.starts_with(' ')
                || [
                    "plan for",
                    "variables",
                    "environment",
                    "wave ",
                    "rollback",
                    "if a step"
                ]
                .iter()
                .any(|heading| line.starts_with(heading)),
            "flush left: {line:?}\n{}",
            output.stdout
        );
    }
    let plan = plan_json(
        Test::new()
            .runbook(MULTI_LINE)
            .env("LAYOUT_TOKEN", "layout-secret-value"),
    );
    let env = &plan["steps"][0]["rollback"]["env"];
    assert_eq!(env[0]["name"], "TOKEN");
    assert_eq!(env[0]["value"], "••••••");
    assert_eq!(env[1]["value"], "layout");
}
