//! Hosts, inventories, `--limit` and rollouts (SPEC §12) through the binary: what `plan`
//! shows (instances, their edges, batches and what a failure in each undoes, in JSON, text,
//! Mermaid and DOT) and what `validate` refuses (running them: tests/fleet_run.rs).

mod common;

use common::Test;
use serde_json::Value;

/// A backup on the engine's machine, a migration on `db1`, then a release and a switch
/// rolled out over three web hosts in batches [1, 50%], and a local announcement.
const FLEET: &str = r#"
version: 1
name: fleet
hosts:
  web1: { address: 10.0.0.11, groups: [web], vars: { app_port: "8081" } }
  web2: { address: 10.0.0.12, port: 2222, user: deploy, groups: [web], vars: { app_port: "8082" } }
  web3: { address: 10.0.0.13, groups: [web], vars: { app_port: "8083" } }
  db1: { address: db.internal, groups: [db] }
ssh:
  user: ops
rollout:
  web:
    batch: [1, "50%"]
    pause: 5s
    verify:
      - name: health
        http: { url: "http://{{host.address}}:{{host.vars.app_port}}/health" }
steps:
  - id: backup
    run: touch "$MARKER"
    rollback: echo undo backup
  - id: migrate
    on: db1
    needs: [backup]
    run: touch "$MARKER"
    rollback: echo unmigrate
  - id: release
    on: web
    needs: [migrate]
    run: echo release on port {{host.vars.app_port}}
    rollback: echo unrelease
  - id: switch
    on: web
    needs: [release]
    run: echo switch
    rollback: echo unswitch
  - id: smoke
    on: web1
    needs: [switch]
    run: echo smoke
    readonly: true
  - id: announce
    needs: [switch]
    run: echo done
    readonly: true
"#;

fn plan_json(test: Test) -> Value {
    plan_json_with(test, &[])
}

fn plan_json_with(test: Test, extra: &[&str]) -> Value {
    let output = test
        .args(["plan", "{file}", "--format", "json"])
        .args(extra)
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    serde_json::from_str(&output.stdout).expect("the plan is JSON")
}

fn step<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|step| step["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

fn instance_ids(plan: &Value, id: &str) -> Vec<String> {
    step(plan, id)["instances"]
        .as_array()
        .map(|instances| {
            instances
                .iter()
                .map(|instance| instance["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn instance<'a>(plan: &'a Value, step_id: &str, id: &str) -> &'a Value {
    step(plan, step_id)["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|instance| instance["id"] == id)
        .unwrap_or_else(|| panic!("no instance {id}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|item| item.as_str().unwrap_or_default().to_string())
        .collect()
}

/// `batch` sizes of a rollout over `count` hosts of group `web`.
fn batch_sizes(count: usize, batch: &str) -> Vec<Vec<String>> {
    let hosts: String = (1..=count)
        .map(|index| format!("  web{index}: {{ address: 10.0.0.{index}, groups: [web] }}\n"))
        .collect();
    let runbook = format!(
        "version: 1\nname: sizes\nhosts:\n{hosts}rollout:\n  web: {{ batch: {batch} }}\nsteps:\n  - id: deploy\n    on: web\n    run: echo deploy\n    rollback: echo undo\n"
    );
    let plan = plan_json(Test::new().runbook(&runbook));
    plan["rollouts"][0]["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|batch| strings(&batch["hosts"]))
        .collect()
}

#[test]
fn steps_on_hosts_become_instances_in_inventory_order() {
    let plan = plan_json(Test::new().runbook(FLEET));
    assert_eq!(instance_ids(&plan, "migrate"), ["migrate@db1"]);
    assert_eq!(
        instance_ids(&plan, "release"),
        ["release@web1", "release@web2", "release@web3"]
    );
    assert_eq!(instance_ids(&plan, "smoke"), ["smoke@web1"]);
    assert!(step(&plan, "backup").get("instances").is_none());
    let hosts: Vec<&str> = plan["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|host| host["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(hosts, ["web1", "web2", "web3", "db1"]);
    let web2 = &plan["hosts"][1];
    assert_eq!(web2["port"], 2222);
    assert_eq!(web2["user"], "deploy");
    assert_eq!(plan["hosts"][0]["user"], "ops", "the `ssh` default user");
}

#[test]
fn instances_on_the_same_hosts_need_their_own_host_and_others_need_every_instance() {
    let plan = plan_json(Test::new().runbook(FLEET));
    // The same hosts: one edge per host.
    assert_eq!(
        strings(&instance(&plan, "switch", "switch@web2")["needs"]),
        ["release@web2"]
    );
    // Other hosts: every instance of the step named.
    assert_eq!(
        strings(&instance(&plan, "release", "release@web3")["needs"]),
        ["migrate@db1"]
    );
    assert_eq!(
        strings(&instance(&plan, "smoke", "smoke@web1")["needs"]),
        ["switch@web1", "switch@web2", "switch@web3"]
    );
    // A step on the engine's machine after a step on hosts keeps its step-level `needs`; its
    // failure undoes every instance, the last batch first.
    let announce = step(&plan, "announce");
    assert_eq!(strings(&announce["needs"]), ["switch"]);
    assert_eq!(
        strings(&announce["on_failure"]["compensates"]),
        [
            "switch@web3",
            "switch@web2",
            "release@web3",
            "release@web2",
            "switch@web1",
            "release@web1",
            "migrate@db1",
            "backup"
        ]
    );
}

#[test]
fn templates_reading_host_are_rendered_per_instance() {
    let plan = plan_json(Test::new().runbook(FLEET));
    assert_eq!(
        instance(&plan, "release", "release@web2")["command"],
        "echo release on port 8082"
    );
    assert_eq!(
        step(&plan, "release")["command"],
        "echo release on port <host.vars.app_port>"
    );
    assert!(
        instance(&plan, "switch", "switch@web2")
            .get("command")
            .is_none()
    );
    assert_eq!(
        plan["rollouts"][0]["verify"][0]["target"],
        "GET http://<host.address>:<host.vars.app_port>/health"
    );
}

#[test]
fn each_batch_failure_undoes_its_batch_then_earlier_batches_then_what_ran_before() {
    let plan = plan_json(Test::new().runbook(FLEET));
    let rollout = &plan["rollouts"][0];
    assert_eq!(rollout["group"], "web");
    assert_eq!(strings(&rollout["steps"]), ["release", "switch"]);
    assert_eq!(rollout["pause"], "5s");
    assert_eq!(rollout["tolerated"], 0);
    let batches = rollout["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 2);
    assert_eq!(strings(&batches[0]["hosts"]), ["web1"]);
    assert_eq!(strings(&batches[1]["hosts"]), ["web2", "web3"]);
    let second = &batches[1]["on_failure"];
    let hosts: Vec<Vec<String>> = second["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(strings)
        .collect();
    assert_eq!(hosts, [vec!["web2", "web3"], vec!["web1"]]);
    assert_eq!(
        strings(&second["compensates"]),
        [
            "switch@web3",
            "switch@web2",
            "release@web3",
            "release@web2",
            "switch@web1",
            "release@web1"
        ]
    );
    assert_eq!(
        strings(&second["before_rollout"]),
        ["migrate@db1", "backup"]
    );
    let first = &batches[0]["on_failure"];
    assert_eq!(
        strings(&first["compensates"]),
        ["switch@web1", "release@web1"]
    );
    // An instance's row: itself, its host's upstream, the earlier batches, then the rest.
    assert_eq!(
        strings(&instance(&plan, "switch", "switch@web3")["on_failure"]["compensates"]),
        [
            "release@web3",
            "switch@web1",
            "release@web1",
            "migrate@db1",
            "backup"
        ]
    );
}

#[test]
fn batch_sizes_are_counts_or_shares_rounded_up_and_the_last_repeats() {
    assert_eq!(batch_sizes(1, "[\"50%\"]"), [vec!["web1"]]);
    assert_eq!(
        batch_sizes(3, "[\"50%\"]"),
        [vec!["web1", "web2"], vec!["web3"]]
    );
    let sizes: Vec<usize> = batch_sizes(10, "[1, \"25%\"]")
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [1, 3, 3, 3]);
}

#[test]
fn the_text_plan_shows_batches_and_what_each_failure_undoes() {
    let output = Test::new().runbook(FLEET).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!("fleet_text_plan", output.snapshot());
}

#[test]
fn limit_by_name_and_by_group() {
    let plan = plan_json_with(Test::new().runbook(FLEET), &["--limit", "web1,db1"]);
    assert_eq!(instance_ids(&plan, "release"), ["release@web1"]);
    assert_eq!(instance_ids(&plan, "migrate"), ["migrate@db1"]);
    assert_eq!(strings(&plan["limit"]), ["web1", "db1"]);
    assert_eq!(
        plan["rollouts"][0]["batches"].as_array().map(Vec::len),
        Some(1)
    );

    let plan = plan_json_with(Test::new().runbook(FLEET), &["--limit", "web"]);
    assert_eq!(
        instance_ids(&plan, "switch"),
        ["switch@web1", "switch@web2", "switch@web3"]
    );
    assert!(instance_ids(&plan, "migrate").is_empty());
    assert_eq!(
        strings(&instance(&plan, "release", "release@web1")["needs"]),
        Vec::<String>::new(),
        "a step with no selected host has no instance to wait for"
    );
}

#[test]
fn a_limit_matching_nothing_is_refused_naming_the_pattern_and_the_known_names() {
    for command in ["plan", "validate", "run"] {
        let output = Test::new()
            .runbook(FLEET)
            .args([command, "{file}", "--limit", "web1,wbe"])
            .run();
        assert_eq!(output.code, 2, "{}", output.snapshot());
        assert!(
            output
                .stderr
                .contains("`--limit wbe` matches no host or group"),
            "{}",
            output.stderr
        );
        assert!(!output.marker_exists());
        if command == "plan" {
            insta::assert_snapshot!("limit_matches_nothing", output.snapshot());
        }
    }
}

#[test]
fn mermaid_and_dot_draw_instances_and_batches() {
    let mermaid = Test::new()
        .runbook(FLEET)
        .args(["plan", "{file}", "--format", "mermaid"])
        .run();
    assert_eq!(mermaid.code, 0, "{}", mermaid.snapshot());
    for line in [
        "subgraph web_batch_2[\"web batch 2\"]",
        "release_at_web3[\"release@web3\"]",
        "release_at_web2 --> switch_at_web2",
        "migrate_at_db1 --> release_at_web1",
        "switch_at_web3 --> announce",
        "switch_at_web2 -. undo .-> release_at_web2",
    ] {
        assert!(mermaid.stdout.contains(line), "{line}:\n{}", mermaid.stdout);
    }
    let dot = Test::new()
        .runbook(FLEET)
        .args(["plan", "{file}", "--format", "dot"])
        .run();
    assert_eq!(dot.code, 0, "{}", dot.snapshot());
    for line in [
        "subgraph \"cluster_web_batch_1\"",
        "\"switch_at_web1\" [label=\"switch@web1\", peripheries=2];",
        "\"release_at_web1\" -> \"switch_at_web1\";",
    ] {
        assert!(dot.stdout.contains(line), "{line}:\n{}", dot.stdout);
    }
}

const ON_WEB: &str = r#"
version: 1
name: on-web
inventory: hosts.yaml
steps:
  - id: deploy
    on: web
    run: echo deploy to {{host.address}}
    rollback: echo undo
"#;

#[test]
fn hosts_come_from_the_inventory_file_and_inventory_option() {
    let plan = plan_json_with(
        Test::new()
            .runbook(ON_WEB)
            .file("hosts.yaml", "web1: { address: 10.0.0.1, groups: [web] }\n")
            .file(
                "more/extra.yaml",
                "web2: { address: 10.0.0.2, groups: [web] }\n",
            ),
        &["--inventory", "more/extra.yaml"],
    );
    assert_eq!(
        instance_ids(&plan, "deploy"),
        ["deploy@web1", "deploy@web2"]
    );
    assert_eq!(
        instance(&plan, "deploy", "deploy@web2")["command"],
        "echo deploy to 10.0.0.2"
    );
}

#[test]
fn validate_takes_the_inventory_option_too() {
    let runbook = ON_WEB.replace("inventory: hosts.yaml\n", "");
    let without = Test::new()
        .runbook(&runbook)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(without.code, 2, "{}", without.snapshot());
    assert!(without.stderr.contains("unknown host or group `web`"));
    let with = Test::new()
        .runbook(&runbook)
        .file("hosts.yaml", "web1: { address: 10.0.0.1, groups: [web] }\n")
        .args(["validate", "{file}", "--inventory", "hosts.yaml"])
        .run();
    assert_eq!(with.code, 0, "{}", with.snapshot());
}

#[test]
fn the_same_host_in_the_runbook_and_the_inventory_is_refused() {
    let runbook = ON_WEB.replace(
        "inventory: hosts.yaml\n",
        "inventory: hosts.yaml\nhosts:\n  web1: { address: 10.0.0.9, groups: [web] }\n",
    );
    let output = Test::new()
        .runbook(&runbook)
        .file("hosts.yaml", "web2: { address: 10.0.0.2, groups: [web] }\nweb1: { address: 10.0.0.1, groups: [web] }\n")
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("duplicate_host", output.snapshot());
}

#[test]
fn a_malformed_inventory_is_refused_at_its_own_line_and_column() {
    let output = Test::new()
        .runbook(ON_WEB)
        .file(
            "hosts.yaml",
            "web1: { address: 10.0.0.1, groups: [web] }\nweb2:\n  adress: 10.0.0.2\n",
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("malformed_inventory", output.snapshot());
    let output = Test::new()
        .runbook(ON_WEB)
        .file("hosts.yaml", "web1: [unclosed\n")
        .args(["plan", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(output.stderr.contains("hosts.yaml:"), "{}", output.stderr);
    let output = Test::new()
        .runbook(ON_WEB)
        .args(["validate", "{file}", "--format", "json"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stdout.contains("cannot read inventory `hosts.yaml`"),
        "{}",
        output.stdout
    );
}

fn repository() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_fleet_deploy_runbook_validates_and_plans_as_the_readme_says() {
    let validate = Test::new()
        .current_dir(&repository())
        .args(["validate", "runbooks/fleet-deploy.yaml"])
        .run();
    assert_eq!(validate.code, 0, "{}", validate.snapshot());
    assert!(
        validate.stdout.contains("is valid (0 warnings)"),
        "{}",
        validate.snapshot()
    );
    let text = Test::new()
        .current_dir(&repository())
        .args([
            "plan",
            "runbooks/fleet-deploy.yaml",
            "--var",
            "release=v2.4.0",
        ])
        .run();
    assert_eq!(text.code, 0, "{}", text.snapshot());
    insta::assert_snapshot!("fleet_deploy_plan", text.snapshot());
    let output = Test::new()
        .current_dir(&repository())
        .args([
            "plan",
            "runbooks/fleet-deploy.yaml",
            "--var",
            "release=v2.4.0",
            "--format",
            "json",
        ])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: Value = serde_json::from_str(&output.stdout).expect("the plan is JSON");
    let rollout = &plan["rollouts"][0];
    assert_eq!(rollout["group"], "web");
    let batches: Vec<Vec<String>> = rollout["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|batch| strings(&batch["hosts"]))
        .collect();
    assert_eq!(batches, [vec!["web1"], vec!["web2", "web3"], vec!["web4"]]);
    let last: Vec<Vec<String>> = rollout["batches"][2]["on_failure"]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(strings)
        .collect();
    assert_eq!(last, [vec!["web4"], vec!["web2", "web3"], vec!["web1"]]);
    assert_eq!(
        strings(&rollout["batches"][1]["on_failure"]["compensates"]),
        [
            "switch@web3",
            "switch@web2",
            "stage@web3",
            "stage@web2",
            "switch@web1",
            "stage@web1"
        ]
    );
    assert_eq!(rollout["verify"][0]["timing"], "within 1m every 5s");
    assert_eq!(
        strings(&plan["rollback"]["instances"]),
        [
            "switch@web4",
            "stage@web4",
            "switch@web3",
            "switch@web2",
            "stage@web3",
            "stage@web2",
            "switch@web1",
            "stage@web1"
        ],
        "a full rollback undoes the last batch first"
    );
}

#[test]
fn an_instance_needing_a_later_batch_of_its_rollout_is_refused() {
    let runbook = r#"
version: 1
name: order
hosts:
  web1: { address: 10.0.0.11, groups: [web] }
  web2: { address: 10.0.0.12, groups: [web] }
  db1: { address: 10.0.0.13, groups: [db] }
rollout:
  web: { batch: [1] }
steps:
  - id: deploy
    on: [web, db1]
    run: touch "$MARKER"
    readonly: true
  - id: check
    on: web
    needs: [deploy]
    run: echo check
    readonly: true
"#;
    let output = Test::new().runbook(runbook).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains(
            "`check@web1` (batch 1) needs `deploy@web2` (batch 2) of the same rollout: it could never start"
        ),
        "{}",
        output.stderr
    );
}

#[test]
fn a_name_both_host_and_group_is_refused_in_the_file_that_defines_it() {
    let output = Test::new()
        .runbook(ON_WEB)
        .file(
            "hosts.yaml",
            "web: { address: 10.0.0.1 }\nweb2: { address: 10.0.0.2, groups: [web] }\n",
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("`web` is both a host and a group: `on: web` would be ambiguous"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("[hosts.yaml:1:1]"),
        "{}",
        output.stderr
    );
}

#[test]
fn max_failed_is_a_count_or_a_share_rounded_down() {
    let tolerated = |max_failed: &str| {
        let hosts: String = (1..=4)
            .map(|index| format!("  web{index}: {{ address: 10.0.0.{index}, groups: [web] }}\n"))
            .collect();
        let runbook = format!(
            "version: 1\nname: budget\nhosts:\n{hosts}rollout:\n  web: {{ batch: [2], max_failed: {max_failed} }}\nsteps:\n  - id: deploy\n    on: web\n    run: echo deploy\n    rollback: echo undo\n"
        );
        let plan = plan_json(Test::new().runbook(&runbook));
        (
            plan["rollouts"][0]["max_failed"].clone(),
            plan["rollouts"][0]["tolerated"].clone(),
        )
    };
    assert_eq!(tolerated("\"25%\""), ("25%".into(), 1.into()));
    assert_eq!(tolerated("\"10%\""), ("10%".into(), 0.into()));
    assert_eq!(tolerated("2"), ("2".into(), 2.into()));
}

#[test]
fn a_host_instance_path_names_a_host_the_step_runs_on_and_is_read_where_every_instance_ended() {
    let output = Test::new()
        .runbook(
            "version: 1\nname: paths\nhosts:\n  web1: { address: 10.0.0.1, groups: [web] }\n  web2: { address: 10.0.0.2, groups: [web] }\nsummary: \"{{steps.deploy.hosts.web3.outputs.version}} {{steps.deploy.outputs.version}}\"\nsteps:\n  - id: deploy\n    on: web\n    readonly: true\n    run: \"true\"\n  - id: check\n    on: web\n    needs: [deploy]\n    readonly: true\n    run: echo {{quote steps.deploy.hosts.web1.status}}\n",
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    let said = output.stderr.clone() + &output.stdout;
    for expected in [
        "`steps.deploy.hosts.web3.outputs.version` names `web3`, not a host step `deploy` runs on",
        "step `deploy` runs once per host: `steps.deploy.outputs.version` does not say which",
        "is read in `steps[1].run` before it is known",
        "runbook.yaml:6:",
        "runbook.yaml:16:",
    ] {
        assert!(said.contains(expected), "{expected}\n{}", output.snapshot());
    }
}

#[test]
fn a_rollout_pause_may_be_a_template_checked_before_anything_runs() {
    let runbook = "version: 1\nname: paused\nvars:\n  pause: { default: 30s }\nhosts:\n  web1: { address: 10.0.0.1, groups: [web] }\n  web2: { address: 10.0.0.2, groups: [web] }\nrollout:\n  web:\n    pause: \"{{vars.pause}}\"\nsteps:\n  - id: deploy\n    on: web\n    readonly: true\n    run: \"true\"\n";
    let plan = Test::new()
        .runbook(runbook)
        .args(["plan", "{file}", "--var", "pause=2m"])
        .run();
    assert_eq!(plan.code, 0, "{}", plan.snapshot());
    assert!(
        plan.stdout.contains("pause 2m between batches"),
        "{}",
        plan.snapshot()
    );
    let bad = Test::new()
        .runbook(runbook)
        .args(["run", "{file}", "--var", "pause=soon"])
        .run();
    assert_eq!(bad.code, 2, "{}", bad.snapshot());
    let said = bad.stdout.clone() + &bad.stderr;
    assert!(
        said.contains("rollout.web.pause") && said.contains("runbook.yaml:10:"),
        "{}",
        bad.snapshot()
    );
}

#[test]
fn an_instance_reading_a_step_that_has_no_instance_on_its_host_is_refused() {
    let output = Test::new()
        .runbook(
            "version: 1\nname: apart\nhosts:\n  web1: { address: 10.0.0.1, groups: [web] }\n  db1: { address: 10.0.0.2, groups: [db] }\nsteps:\n  - id: stage\n    on: web\n    readonly: true\n    run: echo version=1 >> \"$RUNBOOK_OUTPUT\"\n  - id: migrate\n    on: db\n    needs: [stage]\n    readonly: true\n    run: echo {{quote steps.stage.outputs.version}}\n",
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    let said = output.stderr.clone() + &output.stdout;
    assert!(
        said.contains(
            "`steps.stage.outputs.version` is read on db1, where step `stage` does not run"
        ) && said.contains("runbook.yaml:15:23"),
        "{}",
        output.snapshot()
    );
}
