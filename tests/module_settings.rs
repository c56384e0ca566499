//! A module's own top-level `env` and `defaults` (SPEC §13): used, its steps get them as when
//! the module runs alone. Its `env` sits under a step's own `env` and over the caller's; its
//! `defaults` fill what a step does not say. What cannot mean the same when used is refused.

mod common;

use common::{Test, engine::engine, lines};

const GREET: &str = r#"
version: 1
name: greet
vars:
  who: { default: world }
env:
  GREETING: "hello {{vars.who}}"
  LEVEL: module
defaults:
  shell: ["sh", "-c"]
  timeout: 45s
  retry: { attempts: 2, delay: 10ms }
steps:
  - id: say
    readonly: true
    run: echo "$GREETING level=$LEVEL step=$STEP_ONLY caller=${CALLER:-none} shell=$0" >> log
    env:
      STEP_ONLY: own
  - id: flaky
    needs: [say]
    readonly: true
    run: |
      if [ ! -f flaky-once ]; then touch flaky-once; exit 1; fi
      echo "flaky ok level=$LEVEL" >> log
    env:
      LEVEL: step
  - id: bash
    needs: [flaky]
    readonly: true
    shell: ["bash", "-c"]
    timeout: 5s
    run: echo "own shell=$0" >> log
"#;

const MAIN: &str = r#"
version: 1
name: main
env:
  CALLER: main
  LEVEL: caller
  GREETING: from the caller
steps:
  - id: greet
    uses: modules/greet.yaml
    with:
      who: team
  - id: after
    needs: [greet]
    readonly: true
    run: echo "after level=$LEVEL greeting=$GREETING" >> log
"#;

#[test]
fn a_used_module_gets_its_env_and_defaults_as_when_run_alone() {
    let alone = engine(
        Test::new().file("modules/greet.yaml", GREET),
        &[
            "run",
            "{dir}/modules/greet.yaml",
            "--var",
            "who=team",
            "--state-dir",
            "{dir}/state",
        ],
    );
    assert_eq!(alone.code, 0, "{}", alone.snapshot());
    let used = engine(
        Test::new().runbook(MAIN).file("modules/greet.yaml", GREET),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(used.code, 0, "{}", used.snapshot());
    assert_eq!(
        lines(&alone.directory, "modules/log"),
        [
            "hello team level=module step=own caller=none shell=sh",
            "flaky ok level=step",
            "own shell=bash",
        ]
    );
    // The same, but the caller's env is there too; the caller's own step keeps the caller's.
    assert_eq!(
        lines(&used.directory, "log"),
        [
            "hello team level=module step=own caller=main shell=sh",
            "flaky ok level=step",
            "own shell=bash",
            "after level=caller greeting=from the caller",
        ]
    );
}

#[test]
fn the_plan_shows_a_used_modules_defaults_on_its_steps() {
    let output = engine(
        Test::new().runbook(MAIN).file("modules/greet.yaml", GREET),
        &["plan", "{file}", "--format", "json"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: serde_json::Value = serde_json::from_str(&output.stdout).expect("a JSON plan");
    let steps = plan["steps"].as_array().expect("steps");
    let step = |id: &str| {
        steps
            .iter()
            .find(|step| step["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {steps:?}"))
    };
    assert_eq!(step("greet.say")["timeout"], "45s");
    assert_eq!(step("greet.say")["shell"][0], "sh");
    assert_eq!(step("greet.say")["retry"]["attempts"], 2);
    assert_eq!(step("greet.bash")["timeout"], "5s");
    assert_eq!(step("greet.bash")["shell"][0], "bash");
    assert_eq!(step("after")["shell"][0], "bash");
    assert!(step("after")["timeout"].is_null(), "{}", step("after"));
}

#[test]
fn modules_inside_modules_get_each_enclosing_modules_env() {
    let outer = r#"
version: 1
name: outer
env:
  OUTER: outer
  LEVEL: outer
steps:
  - id: inner
    uses: inner.yaml
"#;
    let inner = r#"
version: 1
name: inner
env:
  LEVEL: inner
steps:
  - id: say
    readonly: true
    run: echo "outer=$OUTER level=$LEVEL caller=$CALLER" >> log
"#;
    let main = r#"
version: 1
name: main
env:
  CALLER: main
  LEVEL: main
steps:
  - id: outer
    uses: modules/outer.yaml
"#;
    let output = engine(
        Test::new()
            .runbook(main)
            .file("modules/outer.yaml", outer)
            .file("modules/inner.yaml", inner),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "log"),
        ["outer=outer level=inner caller=main"]
    );
}

#[test]
fn a_modules_relative_defaults_cwd_is_refused_at_the_call() {
    let module = r#"
version: 1
name: here
defaults:
  cwd: data
steps:
  - id: x
    readonly: true
    run: touch marker
"#;
    let main = r#"
version: 1
name: main
steps:
  - id: here
    uses: modules/here.yaml
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/here.yaml", module),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.marker_exists(), "nothing runs");
    insta::assert_snapshot!("relative_defaults_cwd", output.snapshot());
}

#[test]
fn a_problem_in_a_used_modules_env_points_into_the_module_once() {
    let module = r#"
version: 1
name: broken
env:
  WHERE: "{{vars.nowhere}}"
steps:
  - id: a
    readonly: true
    run: touch marker
  - id: b
    readonly: true
    run: echo b
"#;
    let main = r#"
version: 1
name: main
steps:
  - id: broken
    uses: modules/broken.yaml
"#;
    let output = engine(
        Test::new()
            .runbook(main)
            .file("modules/broken.yaml", module),
        &["validate", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("env_problem", output.snapshot());
}

#[test]
fn each_item_of_a_call_with_for_each_gets_the_modules_env_with_its_input() {
    let main = r#"
version: 1
name: main
steps:
  - id: greet
    for_each: [ann, bob]
    uses: modules/greet.yaml
    with:
      who: "{{item}}"
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/greet.yaml", GREET),
        &["run", "{file}", "--state-dir", "{dir}/state", "-j", "1"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let mut said: Vec<String> = lines(&output.directory, "log")
        .into_iter()
        .filter(|line| line.starts_with("hello"))
        .collect();
    said.sort();
    assert_eq!(
        said,
        [
            "hello ann level=module step=own caller=none shell=sh",
            "hello bob level=module step=own caller=none shell=sh",
        ]
    );
}
