//! `if`, `on` and `for_each` on a module call (SPEC §13): the call's `if` switches off every
//! step of the module (a step that needs the call is then skipped unless `after_skipped:
//! run`), and a module step's own `if` must hold as well; the call's `on` runs every step of
//! the module on those hosts; `for_each` makes one call per item, `call[item].step`. Problems
//! in a call's `if` and `on` point at the call's file, once.

mod common;

use common::{Test, engine::engine, lines};

const BACKUP: &str = r#"
version: 1
name: backup
vars:
  label: { required: true }
  kind: { default: full, choices: [full, quick] }
outputs:
  file: "{{steps.dump.outputs.file}}"
steps:
  - id: dump
    run: |
      echo "dump {{vars.label}}" >> log
      echo "file=backup-{{vars.label}}.gz" >> "$RUNBOOK_OUTPUT"
    outputs: [file]
    rollback: echo "remove {{quote steps.dump.outputs.file}}" >> log
  - id: check
    needs: [dump]
    if: "{{eq vars.kind \"full\"}}"
    readonly: true
    run: echo "check {{quote steps.dump.outputs.file}}" >> log
"#;

const SWITCHED: &str = r#"
version: 1
name: switched
vars:
  with_backup: "false"
steps:
  - id: start
    run: echo start >> log
    rollback: echo undo start >> log
  - id: db
    needs: [start]
    if: "{{vars.with_backup}}"
    uses: modules/backup.yaml
    with:
      label: db
  - id: after
    needs: [db]
    readonly: true
    run: echo after >> log
  - id: join
    needs: [db]
    after_skipped: run
    readonly: true
    run: echo join >> log
"#;

const ON_HOSTS: &str = r#"
version: 1
name: on-hosts
vars:
  with_backup: "true"
hosts:
  web1: { address: 10.0.0.11, groups: [web] }
  web2: { address: 10.0.0.12, groups: [web] }
steps:
  - id: files
    on: web
    if: "{{vars.with_backup}}"
    uses: modules/backup.yaml
    with:
      label: files
"#;

const EACH: &str = r#"
version: 1
name: each
vars:
  labels: { type: list, default: "db,files" }
steps:
  - id: start
    run: echo start >> log
    rollback: echo undo start >> log
  - id: bk
    needs: [start]
    for_each: "{{vars.labels}}"
    if: "{{ne item \"skipped\"}}"
    uses: modules/backup.yaml
    with:
      label: "{{item}}"
  - id: after
    needs: [bk]
    irreversible: true
    run: |
      echo "after {{quote steps.bk.items.db.outputs.file}}" >> log
      exit "$AFTER_EXIT"
    env:
      AFTER_EXIT: "{{env.MODULE_CALLS_AFTER_EXIT}}"
"#;

fn with_module(runbook: &str) -> Test {
    Test::new()
        .runbook(runbook)
        .file("modules/backup.yaml", BACKUP)
}

#[test]
fn a_call_whose_if_does_not_hold_skips_every_step_of_the_module() {
    let run = ["run", "{file}", "--yes", "--state-dir", "{dir}/state"];
    let output = engine(with_module(SWITCHED), &run);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "log"), ["start", "join"]);
    let mut args = run.to_vec();
    args.extend(["--var", "with_backup=true"]);
    let output = engine(with_module(SWITCHED), &args);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    assert_eq!(log[..3], ["start", "dump db", "check 'backup-db.gz'"]);
    let mut last = log[3..].to_vec();
    last.sort();
    assert_eq!(last, ["after", "join"]);
}

#[test]
fn the_plan_shows_the_call_on_and_if_on_every_step_of_the_module() {
    let output = engine(with_module(ON_HOSTS), &["plan", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for expected in [
        "files.dump\n    written at modules/backup.yaml:10, from `uses: modules/backup.yaml` at runbook.yaml:13\n    on web: files.dump@web1, files.dump@web2\n    if {{vars.with_backup}} = \"true\": runs\n",
        "files.check  (needs files.dump)\n    written at modules/backup.yaml:16, from `uses: modules/backup.yaml` at runbook.yaml:13\n    on web: files.check@web1, files.check@web2\n    skipped when `files.dump` is skipped\n    if {{and vars.with_backup (eq \"full\" \"full\")}} = \"true\": runs\n",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected}\n{}",
            output.stdout
        );
    }
}

#[test]
fn bad_call_if_and_on_are_refused_in_the_call_file() {
    for (name, runbook) in [
        (
            "call_if_unknown_var",
            ON_HOSTS.replace("{{vars.with_backup}}", "{{vars.with_bakup}}"),
        ),
        (
            "call_on_unknown_group",
            ON_HOSTS.replace("on: web", "on: webz"),
        ),
        (
            "call_if_not_one_tag",
            ON_HOSTS.replace("\"{{vars.with_backup}}\"", "\"x {{vars.with_backup}}\""),
        ),
    ] {
        let output = engine(with_module(&runbook), &["validate", "{file}"]);
        assert_eq!(output.code, 2, "{}", output.snapshot());
        insta::assert_snapshot!(name, output.snapshot());
    }
    let own_on = BACKUP.replace("  - id: check\n", "  - id: check\n    on: web1\n");
    let output = engine(
        Test::new()
            .runbook(ON_HOSTS)
            .file("modules/backup.yaml", &own_on),
        &["validate", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("call_on_and_step_on", output.snapshot());
    let own_for_each = BACKUP.replace("  - id: check\n", "  - id: check\n    for_each: [a, b]\n");
    let output = engine(
        Test::new()
            .runbook(EACH)
            .file("modules/backup.yaml", &own_for_each),
        &["validate", "{file}"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("call_for_each_and_step_for_each", output.snapshot());
}

#[test]
fn a_call_with_for_each_and_on_plans_each_module_step_per_item_and_host() {
    let output = engine(
        with_module(&ON_HOSTS.replace("    on: web\n", "    on: web\n    for_each: [a, b]\n")),
        &["plan", "{file}"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for expected in [
        "files.dump[a]\n    written at modules/backup.yaml:10, from `uses: modules/backup.yaml` at runbook.yaml:14\n    on web: files.dump[a]@web1, files.dump[a]@web2\n",
        "files.check[b]  (needs files.dump[b])\n",
        "    on web: files.check[b]@web1, files.check[b]@web2\n",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected}\n{}",
            output.stdout
        );
    }
}

#[test]
fn a_call_with_for_each_runs_the_module_once_per_item_and_a_failure_compensates_each() {
    let run = |exit: &str, labels: &str| {
        engine(
            with_module(EACH).env("MODULE_CALLS_AFTER_EXIT", exit),
            &[
                "run",
                "{file}",
                "--yes",
                "--state-dir",
                "{dir}/state",
                "--var",
                labels,
            ],
        )
    };
    let output = run("0", "labels=db,web,skipped");
    assert_eq!(output.code, 0, "{}", output.snapshot());
    // The `skipped` instance's `if` does not hold: `after`, which needs it, is skipped too.
    let mut log = lines(&output.directory, "log");
    assert_eq!(log.first().map(String::as_str), Some("start"));
    log.sort();
    assert_eq!(
        log,
        [
            "check 'backup-db.gz'",
            "check 'backup-web.gz'",
            "dump db",
            "dump web",
            "start"
        ]
    );
    let output = run("1", "labels=db,web");
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    let undo: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .skip_while(|line| !line.starts_with("after"))
        .skip(1)
        .collect();
    assert_eq!(undo.len(), 3, "{log:?}");
    assert_eq!(undo[2], "undo start", "{log:?}");
    let mut instances = undo[..2].to_vec();
    instances.sort();
    assert_eq!(
        instances,
        ["remove 'backup-db.gz'", "remove 'backup-web.gz'"]
    );
}

#[test]
fn the_plan_of_a_call_with_for_each_shows_each_instance_of_each_module_step() {
    let output = engine(
        with_module(EACH).env("MODULE_CALLS_AFTER_EXIT", "0"),
        &["plan", "{file}", "--var", "labels=db,web"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for expected in [
        "bk.dump[db]  (needs start)\n    written at modules/backup.yaml:10, from `uses: modules/backup.yaml` at runbook.yaml:14\n",
        "bk.check[web]  (needs bk.dump[web])\n    written at modules/backup.yaml:16, from `uses: modules/backup.yaml` at runbook.yaml:14\n",
        "if {{and (ne \"web\" \"skipped\") (eq \"full\" \"full\")}} = \"true\": runs",
        "after  (needs bk.dump[db], bk.dump[web], bk.check[db], bk.check[web])",
        "full rollback order: bk.dump[db] + bk.dump[web] -> start",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected}\n{}",
            output.stdout
        );
    }
}

#[test]
fn an_empty_call_list_runs_no_module_step_and_dependents_go_on() {
    let output = engine(
        with_module(&EACH.replace("{{quote steps.bk.items.db.outputs.file}}", "none"))
            .env("MODULE_CALLS_AFTER_EXIT", "0"),
        &[
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
            "--var",
            "labels=",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "log"), ["start", "after none"]);
}

#[test]
fn a_step_needing_an_empty_call_list_still_waits_for_what_the_call_needed() {
    let output = engine(
        with_module(&EACH.replace("{{quote steps.bk.items.db.outputs.file}}", "none"))
            .env("MODULE_CALLS_AFTER_EXIT", "0"),
        &["plan", "{file}", "--var", "labels="],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("  after  (needs start)"),
        "{}",
        output.stdout
    );
}

#[test]
fn bad_call_items_are_refused_naming_the_item() {
    let output = engine(with_module(EACH), &["validate", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("note: step `bk` runs once per item of `vars.labels`"),
        "{}",
        output.stdout
    );
    for (name, labels) in [
        ("call_item_not_id_safe", "labels=db,d b"),
        ("call_item_repeated", "labels=db,db"),
        ("call_item_read_not_an_item", "labels=web"),
    ] {
        let output = engine(with_module(EACH), &["validate", "{file}", "--var", labels]);
        assert_eq!(output.code, 2, "{}", output.snapshot());
        insta::assert_snapshot!(name, output.snapshot());
    }
}

#[test]
fn a_call_item_with_a_dot_is_read_in_brackets() {
    let runbook = EACH.replace(
        "steps.bk.items.db.outputs.file",
        "steps.bk.items.[v1.2].outputs.file",
    );
    let output = engine(
        with_module(&runbook).env("MODULE_CALLS_AFTER_EXIT", "0"),
        &[
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
            "--var",
            "labels=v1.2,v2",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    assert_eq!(
        log.last().map(String::as_str),
        Some("after 'backup-v1.2.gz'")
    );
    assert!(
        log.iter().any(|line| line == "check 'backup-v2.gz'"),
        "{log:?}"
    );
}

#[test]
fn a_module_calls_a_module_once_per_item_of_its_list_input() {
    let inner = r#"
version: 1
name: inner
vars:
  label: { required: true }
steps:
  - id: touch
    run: echo "touch {{vars.label}}" >> log
    rollback: echo "untouch {{vars.label}}" >> log
"#;
    let outer = r#"
version: 1
name: outer
vars:
  regions: { type: list, required: true }
steps:
  - id: each
    for_each: "{{vars.regions}}"
    uses: inner.yaml
    with:
      label: "{{item}}"
"#;
    let main = r#"
version: 1
name: nested
vars:
  regions: { type: list, default: "eu,us" }
steps:
  - id: o
    uses: lib/outer.yaml
    with:
      regions: "{{vars.regions}}"
  - id: fail
    needs: [o]
    irreversible: true
    run: exit 1
"#;
    let test = || {
        Test::new()
            .runbook(main)
            .file("lib/outer.yaml", outer)
            .file("lib/inner.yaml", inner)
    };
    let output = engine(test(), &["validate", "{file}"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("note: step `o.each` runs once per item of `vars.regions`"),
        "{}",
        output.stdout
    );
    let output = engine(
        test(),
        &[
            "run",
            "{file}",
            "--yes",
            "--state-dir",
            "{dir}/state",
            "--var",
            "regions=a,b",
        ],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let mut log = lines(&output.directory, "log");
    log.sort();
    assert_eq!(log, ["touch a", "touch b", "untouch a", "untouch b"]);
}
