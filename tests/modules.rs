//! Modules (SPEC §13): a step with `uses: FILE` and `with:` brings another runbook file's
//! steps into the DAG as `call.step`, its `vars` the inputs checked at the call, its `outputs`
//! the call's, its compensations part of the one reverse-DAG rollback. Bad calls are refused
//! before anything runs, each naming the call's place and the module's.

mod common;

use common::{Test, engine::LIMIT, engine::engine, lines};

const BACKUP: &str = r#"
version: 1
name: backup
description: A labelled dump, removed again on rollback
vars:
  label: { required: true }
  kind: { default: full, choices: [full, quick] }
  token: { required: true, secret: true }
outputs:
  file: "{{steps.dump.outputs.file}}"
steps:
  - id: dump
    run: |
      echo "dump {{quote vars.label}} {{quote vars.kind}} $TOKEN" >> log
      echo "file=backup-{{vars.kind}}.gz" >> "$RUNBOOK_OUTPUT"
    env:
      TOKEN: "{{vars.token}}"
    outputs: [file]
    rollback:
      run: echo "remove {{quote steps.dump.outputs.file}}" >> log
      only_if_succeeded: true
  - id: check
    needs: [dump]
    readonly: true
    run: echo "check {{quote steps.dump.outputs.file}}" >> log
"#;

const MAIN: &str = r#"
version: 1
name: main
vars:
  token: { env: MODULES_TOKEN, secret: true }
steps:
  - id: start
    run: echo start >> log
    rollback: echo undo start >> log
  - id: db
    needs: [start]
    uses: modules/backup.yaml
    with:
      label: db
      token: "{{vars.token}}"
  - id: files
    needs: [start]
    uses: modules/backup.yaml
    with:
      label: files
      kind: quick
      token: "{{vars.token}}"
  - id: migrate
    needs: [db, files]
    irreversible: true
    run: |
      echo "migrate with {{quote steps.db.outputs.file}} and {{quote steps.files.outputs.file}}" >> log
      exit "$MIGRATE_EXIT"
    env:
      MIGRATE_EXIT: "{{env.MODULES_MIGRATE_EXIT}}"
"#;

fn with_backup(runbook: &str) -> Test {
    Test::new()
        .runbook(runbook)
        .file("modules/backup.yaml", BACKUP)
        .env("MODULES_TOKEN", "s3cr3t-token")
}

#[test]
fn a_module_used_twice_runs_with_each_calls_inputs_and_returns_its_outputs() {
    let output = engine(
        with_backup(MAIN).env("MODULES_MIGRATE_EXIT", "0"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    assert_eq!(log.first().map(String::as_str), Some("start"));
    assert_eq!(
        log.last().map(String::as_str),
        Some("migrate with 'backup-full.gz' and 'backup-quick.gz'")
    );
    for expected in [
        "dump 'db' 'full' s3cr3t-token",
        "dump 'files' 'quick' s3cr3t-token",
        "check 'backup-full.gz'",
        "check 'backup-quick.gz'",
    ] {
        assert!(
            log.iter().any(|line| line == expected),
            "{expected}: {log:?}"
        );
    }
    assert!(
        !output.stdout.contains("s3cr3t-token"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn a_failure_compensates_every_module_step_in_reverse_dag_order() {
    let output = engine(
        with_backup(MAIN).env("MODULES_MIGRATE_EXIT", "1"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    let undo: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|line| line.starts_with("remove") || line.starts_with("undo"))
        .collect();
    assert_eq!(undo.len(), 3, "{log:?}");
    assert_eq!(undo[2], "undo start", "{log:?}");
    let mut removed = undo[..2].to_vec();
    removed.sort();
    assert_eq!(
        removed,
        ["remove 'backup-full.gz'", "remove 'backup-quick.gz'"]
    );
}

#[test]
fn the_plan_shows_module_steps_under_their_call() {
    let output = engine(
        with_backup(MAIN).env("MODULES_MIGRATE_EXIT", "0"),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for expected in [
        "db.dump  (needs start)",
        "files.check  (needs files.dump)",
        "migrate  (needs db.dump, db.check, files.dump, files.check)",
        "full rollback order: db.dump + files.dump -> start",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected}:\n{}",
            output.stdout
        );
    }
}

#[test]
fn modules_use_modules_with_paths_relative_to_the_using_file() {
    let outer = r#"
version: 1
name: outer
vars:
  name: { required: true }
outputs:
  greeting: "{{steps.inner.outputs.said}}"
steps:
  - id: inner
    uses: lib/say.yaml
    with:
      word: "{{vars.name}}"
"#;
    let say = r#"
version: 1
name: say
vars:
  word: { required: true }
outputs:
  said: "{{steps.speak.outputs.said}}"
steps:
  - id: speak
    readonly: true
    run: |
      echo "hello {{quote vars.word}}" >> log
      echo "said=hello-{{vars.word}}" >> "$RUNBOOK_OUTPUT"
    outputs: [said]
"#;
    let main = r#"
version: 1
name: main
steps:
  - id: greet
    uses: modules/outer.yaml
    with:
      name: world
  - id: after
    needs: [greet]
    readonly: true
    run: echo "got {{quote steps.greet.outputs.greeting}}" >> log
"#;
    let output = engine(
        Test::new()
            .runbook(main)
            .file("modules/outer.yaml", outer)
            .file("modules/lib/say.yaml", say),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "log"),
        ["hello 'world'", "got 'hello-world'"]
    );
}

#[test]
fn a_module_validates_on_its_own() {
    let output = engine(
        Test::new().file("modules/backup.yaml", BACKUP),
        &["validate", "{dir}/modules/backup.yaml"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
}

#[test]
fn bad_calls_are_refused_naming_the_call_and_the_module() {
    let bad = r#"
version: 1
name: bad
vars:
  token: { env: MODULES_TOKEN, secret: true }
steps:
  - id: marker
    readonly: true
    run: touch marker
  - id: one
    uses: modules/backup.yaml
    with:
      lable: db
      kind: slow
      token: "{{vars.token}}"
  - id: two
    uses: modules/plain.yaml
    with:
      label: x
      note: "{{vars.token}}"
  - id: three
    uses: modules/nothere.yaml
  - id: four
    uses: modules/broken.yaml
  - id: five
    uses: modules/timed.yaml
  - id: six
    uses: modules/loop-a.yaml
  - id: seven
    uses: modules/leaky.yaml
"#;
    let test = with_backup(bad)
        .file(
            "modules/plain.yaml",
            "version: 1\nname: plain\nvars:\n  label: { required: true }\n  note: { default: none }\nsteps:\n  - id: x\n    readonly: true\n    run: echo {{quote vars.note}}\n",
        )
        .file("modules/broken.yaml", "version: 1\nname: broken\nstepz: []\n")
        .file(
            "modules/timed.yaml",
            "version: 1\nname: timed\ntimeout: 5m\nsteps:\n  - id: x\n    readonly: true\n    run: echo x\n",
        )
        .file(
            "modules/loop-a.yaml",
            "version: 1\nname: loop-a\nsteps:\n  - id: b\n    uses: loop-b.yaml\n",
        )
        .file(
            "modules/loop-b.yaml",
            "version: 1\nname: loop-b\nsteps:\n  - id: a\n    uses: loop-a.yaml\n",
        )
        .file(
            "modules/leaky.yaml",
            "version: 1\nname: leaky\nsteps:\n  - id: x\n    readonly: true\n    run: echo {{quote vars.token}}\n",
        );
    let output = engine(
        test,
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.directory.join("marker").exists(), "nothing runs");
    let stderr = output.stderr.replace("\n  │ ", " ");
    for message in [
        "step `one` does not give required input `label` of module `modules/backup.yaml`",
        "module `modules/backup.yaml` has no input `lable`",
        "`slow` is not an allowed value of input `kind` of module `modules/backup.yaml`",
        "secret `vars.token` is passed into input `note` of module `modules/plain.yaml`",
        "module `modules/nothere.yaml` of step `three` cannot be read (tried",
        "module `modules/broken.yaml` is not a runbook",
        "module `modules/timed.yaml` has `timeout`",
        "modules use each other in a cycle",
        "reads `vars.token`, which the module does not declare",
    ] {
        assert!(stderr.contains(message), "{message}:\n{}", output.stderr);
    }
    insta::assert_snapshot!("bad_calls", output.snapshot());
}

#[test]
fn a_rollback_later_compensates_the_module_steps_too() {
    let first = engine(
        with_backup(MAIN).env("MODULES_MIGRATE_EXIT", "0"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(first.code, 0, "{}", first.snapshot());
    std::fs::write(first.directory.join("log"), "").expect("empty the log");
    let state = first.directory.join("state").display().to_string();
    let rolled = Test::new()
        .current_dir(&first.directory)
        .env("MODULES_TOKEN", "s3cr3t-token")
        .env("MODULES_MIGRATE_EXIT", "0")
        .args(["rollback", "last", "--state-dir", &state])
        .run_within(LIMIT);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    let log = lines(&first.directory, "log");
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2], "undo start", "{log:?}");
    let mut removed = log[..2].to_vec();
    removed.sort();
    assert_eq!(
        removed,
        ["remove 'backup-full.gz'", "remove 'backup-quick.gz'"]
    );
}

#[test]
fn a_module_with_for_each_takes_an_input_from_a_step_output() {
    let fan = r#"
version: 1
name: fan
vars:
  who: { required: true }
outputs:
  api: "{{steps.hit.items.api.outputs.r}}"
steps:
  - id: hit
    for_each: [api, worker]
    readonly: true
    run: |
      echo "hit {{item}} for {{quote vars.who}}" >> log
      echo "r={{item}}-{{vars.who}}" >> "$RUNBOOK_OUTPUT"
    outputs: [r]
"#;
    let main = r#"
version: 1
name: fan-main
steps:
  - id: pre
    readonly: true
    run: echo "v=7" >> "$RUNBOOK_OUTPUT"
    outputs: [v]
  - id: f
    needs: [pre]
    uses: modules/fan.yaml
    with:
      who: "{{steps.pre.outputs.v}}"
  - id: after
    needs: [f]
    readonly: true
    run: echo "after {{quote steps.f.outputs.api}} {{quote steps.f.hit.items.worker.outputs.r}}" >> log
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/fan.yaml", fan),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let mut log = lines(&output.directory, "log");
    assert_eq!(log.pop().as_deref(), Some("after 'api-7' 'worker-7'"));
    log.sort();
    assert_eq!(log, ["hit api for '7'", "hit worker for '7'"]);
}

#[test]
fn the_plan_of_an_expanded_runbook() {
    let output = engine(
        with_backup(MAIN).env("MODULES_MIGRATE_EXIT", "0"),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("db.dump  (needs start)\n    written at modules/backup.yaml:12, from `uses: modules/backup.yaml` at runbook.yaml:12\n"),
        "{}",
        output.stdout
    );
    insta::assert_snapshot!("expanded_plan", output.snapshot());
}

#[test]
fn a_modules_steps_include_the_modules_own_snippets() {
    let module = r#"
version: 1
name: noisy
snippets:
  say: echo "module snippet {{quote vars.word}}" >> log
vars:
  word: { required: true }
steps:
  - id: speak
    readonly: true
    run: "{{> say}}"
"#;
    let main = r#"
version: 1
name: main
snippets:
  say: echo "caller snippet" >> log
steps:
  - id: mine
    readonly: true
    run: "{{> say}}"
  - id: call
    needs: [mine]
    uses: modules/noisy.yaml
    with:
      word: hi
"#;
    let output = engine(
        Test::new().runbook(main).file("modules/noisy.yaml", module),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "log"),
        ["caller snippet", "module snippet 'hi'"]
    );
}

#[test]
fn problems_with_a_modules_step_ids_and_needs_point_into_the_module_file() {
    let module = r#"
version: 1
name: broken
steps:
  - id: dump
    run: "true"
    readonly: true
  - id: dump
    run: "true"
    readonly: true
  - id: Check
    needs: [dumpp]
    run: "true"
    readonly: true
"#;
    let runbook = r#"
version: 1
name: main
steps:
  - id: start
    run: "true"
    readonly: true
  - id: db
    needs: [strat]
    uses: modules/broken.yaml
"#;
    let output = engine(
        Test::new()
            .runbook(runbook)
            .file("modules/broken.yaml", module),
        &["validate", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("module_ids_and_needs", output.snapshot());
}

#[test]
fn show_and_report_say_which_call_brought_each_module_step_in() {
    let first = engine(
        with_backup(MAIN).env("MODULES_MIGRATE_EXIT", "0"),
        &["run", "{file}", "--yes", "--state-dir", "{dir}/state"],
    );
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let state = first.directory.join("state").display().to_string();
    let command = |args: &[&str]| {
        let output = Test::new()
            .current_dir(&first.directory)
            .args(args)
            .args(["--state-dir", &state])
            .run_within(LIMIT);
        assert_eq!(output.code, 0, "{}", output.snapshot());
        output.stdout
    };
    let shown = command(&["show", "last"]);
    for expected in [
        "written at modules/backup.yaml:12, from `uses: modules/backup.yaml` at runbook.yaml:12",
        "written at modules/backup.yaml:22, from `uses: modules/backup.yaml` at runbook.yaml:18",
    ] {
        assert!(shown.contains(expected), "{expected}\n{shown}");
    }
    let markdown = command(&["report", "last"]);
    assert!(
        markdown.contains(
            "| `db.dump` | written at modules/backup.yaml:12, from \\`uses: modules/backup.yaml\\` at runbook.yaml:12 |"
        ),
        "{markdown}"
    );
    let html = command(&["report", "last", "--format", "html"]);
    assert!(html.contains("<h2>Modules and instances</h2>"), "{html}");
    assert!(
        html.contains("files.check") && html.contains("runbook.yaml:18"),
        "{html}"
    );
}
