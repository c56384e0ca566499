//! A step with both `for_each` and `on` (SPEC §12, §13) through the binary against real sshd
//! servers on 127.0.0.1: instances `id[item]@host`, each reading its own host's instance of
//! an item (`steps.<id>.items.<item>.outputs`, in its steps and its rollout's `verify`), a
//! rolling failure undoing every item of a host in its batch, a host within `max_failed`
//! undone alone, `rollback RUN` per instance, a module call with both, and the plan.

mod common;

use std::path::{Path, PathBuf};

use common::fleet::Hosts;
use common::{Output, Test, json_events};

/// `install` for each of the items `api` and `worker` on every `web` host, rolled out one
/// host per batch (each batch's `verify` reading its host's `worker` instance), then `check`
/// on each host reading that host's `worker` instance. Each
/// compensation appends what it undoes to `undo` in the test directory; `check` fails on
/// the hosts listed in the test directory's `fail`.
fn runbook(hosts: &Hosts, directory: &Path) -> String {
    runbook_with(hosts, directory, "0")
}

/// `runbook`, with `max_failed` hosts tolerated.
fn runbook_with(hosts: &Hosts, directory: &Path, max_failed: &str) -> String {
    let undo = directory.join("undo");
    let fail = directory.join("fail");
    format!(
        r#"version: 1
name: services
concurrency: 1
{hosts}rollout:
  web:
    batch: [1]
    max_failed: {max_failed}
    verify:
      - name: its own host's worker
        run: test {{{{quote steps.install.items.worker.outputs.unit}}}} = "worker-$RUNBOOK_HOST"
steps:
  - id: install
    name: "install {{{{item}}}} on {{{{host.name}}}}"
    on: web
    for_each: [api, worker]
    run: |
      echo "{{{{item}}}} {{{{item_index}}}}" > {{{{host.vars.root}}}}/{{{{item}}}}
      echo "unit={{{{item}}}}-$RUNBOOK_HOST" >> "$RUNBOOK_OUTPUT"
    rollback: echo "{{{{steps.install.outputs.unit}}}} {{{{item}}}}@$RUNBOOK_HOST" >> {undo}
  - id: check
    on: web
    needs: [install]
    run: |
      if grep -qx "$RUNBOOK_HOST" {fail} 2>/dev/null; then echo "check failed on $RUNBOOK_HOST" >&2; exit 3; fi
      echo "{{{{steps.install.items.worker.outputs.unit}}}}" > {{{{host.vars.root}}}}/checked
    rollback: echo "check@$RUNBOOK_HOST" >> {undo}
"#,
        hosts = hosts.yaml(),
        undo = undo.display(),
        fail = fail.display(),
    )
}

fn run_id(output: &Output) -> String {
    let runs = output.directory.join("xdg-state/runbook/runs");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&runs)
        .expect("the runs directory")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    entries.sort();
    entries
        .pop()
        .and_then(|path| path.file_name()?.to_str().map(str::to_string))
        .expect("a run id")
}

#[test]
fn each_item_runs_on_each_host_and_reads_its_own_hosts_instance() {
    let hosts = Hosts::start(&["web1", "web2"]);
    let test = Test::new();
    let text = runbook(&hosts, test.path());
    let output = test
        .runbook(&text)
        .args(["--log-format", "json", "run", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for name in ["web1", "web2"] {
        assert_eq!(hosts.lines(name, "api"), ["api 0"]);
        assert_eq!(hosts.lines(name, "worker"), ["worker 1"]);
        assert_eq!(hosts.lines(name, "checked"), [format!("worker-{name}")]);
    }
    let events = json_events(&output.stdout);
    let finished: Vec<&str> = events
        .iter()
        .filter(|event| event["event"] == "step_finished")
        .filter_map(|event| event["step"].as_str())
        .collect();
    assert_eq!(
        finished,
        [
            "install[api]@web1",
            "install[worker]@web1",
            "check@web1",
            "install[api]@web2",
            "install[worker]@web2",
            "check@web2"
        ],
        "{}",
        output.snapshot()
    );
    let show = Test::new()
        .args(["show", &run_id(&output)])
        .env(
            "XDG_STATE_HOME",
            &output.directory.join("xdg-state").display().to_string(),
        )
        .run();
    assert_eq!(show.code, 0, "{}", show.snapshot());
    assert!(
        show.stdout.contains("rollout web batch 2 on web2"),
        "{}",
        show.snapshot()
    );
    // The name, a template, says which item and host each instance is.
    assert!(
        show.stdout.contains("install[worker]@web2")
            && show.stdout.contains("      name: install worker on web2\n"),
        "{}",
        show.snapshot()
    );
}

#[test]
fn a_failure_on_a_later_host_undoes_every_item_of_that_host_then_the_earlier_batch() {
    let hosts = Hosts::start(&["web1", "web2", "web3"]);
    let test = Test::new().file("fail", "web2\n");
    let text = runbook(&hosts, test.path());
    let output = test.runbook(&text).args(["run", "{file}"]).run();
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(
        common::lines(&output.directory, "undo"),
        [
            "check@web2",
            "worker-web2 worker@web2",
            "api-web2 api@web2",
            "check@web1",
            "worker-web1 worker@web1",
            "api-web1 api@web1",
        ],
        "{}",
        output.snapshot()
    );
    assert!(
        hosts.lines("web3", "api").is_empty(),
        "the last batch never started"
    );
}

#[test]
fn a_host_within_max_failed_has_every_item_undone_alone_and_the_rollout_goes_on() {
    let hosts = Hosts::start(&["web1", "web2", "web3"]);
    let test = Test::new().file("fail", "web2\n");
    let text = runbook_with(&hosts, test.path(), "1");
    let output = test.runbook(&text).args(["run", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        common::lines(&output.directory, "undo"),
        ["check@web2", "worker-web2 worker@web2", "api-web2 api@web2"],
        "{}",
        output.snapshot()
    );
    assert_eq!(
        hosts.lines("web3", "checked"),
        ["worker-web3"],
        "the rollout went on"
    );
}

#[test]
fn rollback_run_undoes_each_instance_batch_by_batch() {
    let hosts = Hosts::start(&["web1", "web2"]);
    let test = Test::new();
    let text = runbook(&hosts, test.path());
    let output = test.runbook(&text).args(["run", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let rollback = Test::new()
        .args(["rollback", &run_id(&output)])
        .env(
            "XDG_STATE_HOME",
            &output.directory.join("xdg-state").display().to_string(),
        )
        .run();
    assert_eq!(rollback.code, 0, "{}", rollback.snapshot());
    assert_eq!(
        common::lines(&output.directory, "undo"),
        [
            "check@web2",
            "worker-web2 worker@web2",
            "api-web2 api@web2",
            "check@web1",
            "worker-web1 worker@web1",
            "api-web1 api@web1",
        ],
        "{}",
        rollback.snapshot()
    );
}

/// A module that starts a service; its compensation stops it, naming what it started.
const SERVICE: &str = r#"version: 1
name: service
vars:
  label: { required: true }
  log: { required: true }
outputs:
  unit: "{{steps.start.outputs.unit}}"
steps:
  - id: start
    run: |
      echo "start {{vars.label}}@$RUNBOOK_HOST" >> {{quote vars.log}}
      echo "unit={{vars.label}}-$RUNBOOK_HOST" >> "$RUNBOOK_OUTPUT"
    outputs: [unit]
    rollback: echo "stop {{steps.start.outputs.unit}}" >> {{quote vars.log}}
"#;

#[test]
fn a_module_call_with_for_each_and_on_runs_once_per_item_and_host_and_undoes_per_host() {
    let hosts = Hosts::start(&["web1", "web2"]);
    let test = Test::new()
        .file("modules/service.yaml", SERVICE)
        .file("fail", "web2\n");
    let log = test.path().join("log");
    let fail = test.path().join("fail");
    let text = format!(
        r#"version: 1
name: services
concurrency: 1
{hosts}rollout:
  web:
    batch: [1]
steps:
  - id: svc
    on: web
    for_each: [api, worker]
    uses: modules/service.yaml
    with:
      label: "{{{{item}}}}"
      log: "{log}"
  - id: check
    on: web
    needs: [svc]
    readonly: true
    run: |
      echo "check {{{{steps.svc.items.worker.outputs.unit}}}}" >> {log}
      if grep -qx "$RUNBOOK_HOST" {fail}; then exit 3; fi
"#,
        hosts = hosts.yaml(),
        log = log.display(),
        fail = fail.display(),
    );
    let output = test.runbook(&text).args(["run", "{file}"]).run();
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(
        common::lines(&output.directory, "log"),
        [
            "start api@web1",
            "start worker@web1",
            "check worker-web1",
            "start api@web2",
            "start worker@web2",
            "check worker-web2",
            "stop worker-web2",
            "stop api-web2",
            "stop worker-web1",
            "stop api-web1",
        ],
        "{}",
        output.snapshot()
    );
}

#[test]
fn the_plan_shows_each_item_on_each_host_and_what_a_failure_in_each_batch_undoes() {
    let output = Test::new()
        .runbook(
            r#"version: 1
name: services
hosts:
  web1: { address: 10.0.0.11, groups: [web] }
  web2: { address: 10.0.0.12, groups: [web] }
  web3: { address: 10.0.0.13, groups: [web] }
rollout:
  web:
    batch: [1, 2]
steps:
  - id: install
    name: "install {{item}} on {{host.name}}"
    on: web
    for_each: [api, worker]
    run: echo "unit={{item}}-{{host.name}}" >> "$RUNBOOK_OUTPUT"
    rollback: echo "stop {{quote steps.install.outputs.unit}}"
  - id: check
    on: web
    needs: [install]
    readonly: true
    run: echo {{quote steps.install.items.worker.outputs.unit}}
"#,
        )
        .args(["plan", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!(output.snapshot());
}

#[test]
fn the_mermaid_drawing_names_each_item_and_host_with_keys_mermaid_accepts() {
    let output = Test::new()
        .runbook(
            r#"version: 1
name: services
hosts:
  web1: { address: 10.0.0.11, groups: [web] }
steps:
  - id: install
    name: "install {{item}} on {{host.name}}"
    on: web
    for_each: [api, v1.2]
    readonly: true
    run: "true"
  - id: after
    needs: [install]
    for_each: [x]
    readonly: true
    run: "true"
"#,
        )
        .args(["plan", "{file}", "--format", "mermaid"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    for expected in [
        "  install_item_api_at_web1[\"install api on web1\"]\n",
        "  install_item_v1_dot_2_at_web1[\"install v1.2 on web1\"]\n",
        "  install_item_api_at_web1 --> after_item_x\n",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected}\n{}",
            output.stdout
        );
    }
}

#[test]
fn a_step_without_on_must_name_the_host_of_the_item_it_reads() {
    let runbook = r#"version: 1
name: services
hosts:
  web1: { address: 10.0.0.11, groups: [web] }
  web2: { address: 10.0.0.12, groups: [web] }
steps:
  - id: install
    on: web
    for_each: [api, worker]
    readonly: true
    run: echo "unit={{item}}" >> "$RUNBOOK_OUTPUT"
  - id: report
    needs: [install]
    readonly: true
    run: echo {{quote steps.install.items.api.hosts.web2.outputs.unit}} {{quote steps.install.items.api.outputs.unit}}
"#;
    let output = Test::new()
        .runbook(runbook)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!(output.snapshot());
}
