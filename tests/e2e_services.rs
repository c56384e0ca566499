//! End to end: the runbooks of `runbooks/` against real services on 127.0.0.1 that the tests
//! start themselves (a throwaway PostgreSQL cluster, Redis, a git origin with two releases
//! and a small HTTP service; see `tests/e2e`). They prove that each procedure does what its
//! prose promised, and that after a failure at any stage, or a rollback an hour later,
//! database, code, cache, `.env` and service are exactly as they were.

mod common;
mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Test;
use e2e::events::{assert_compensation_order, mentions_step};
use e2e::secrets::ArgvWatch;
use e2e::state::ServiceState;
use e2e::tools::{checked, git};
use e2e::world::{DATABASE, Invocation, LIMIT, World, runbook};

/// The deploy's safety net (`runbooks/pre-deploy.yaml`, used as the module call
/// `safety_net`): its steps that run side by side; their compensations may too.
const SAFETY_NET: &[&str] = &[
    "safety_net.backup_db.dump",
    "safety_net.git_snapshot.snapshot",
    "safety_net.copy_env.save",
    "safety_net.save_state",
];

/// The compensations after a failure past the `.env` change, newest first: level 3.
const FROM_RESTART: &[&[&str]] = &[
    &["restart.service"],
    &["configure.save"],
    &["migrate.apply"],
    &["deploy_code.service"],
    SAFETY_NET,
    &["safety_net.backup_dir"],
];

/// The same after a failure in or after the cache flush: the cache comes back first.
const FROM_CACHE: &[&[&str]] = &[
    &["flush_cache.snapshot"],
    &["restart.service"],
    &["configure.save"],
    &["migrate.apply"],
    &["deploy_code.service"],
    SAFETY_NET,
    &["safety_net.backup_dir"],
];

fn failed_step(invocation: &Invocation) -> (String, String) {
    invocation
        .events
        .iter()
        .find(|event| {
            event["event"] == "step_finished"
                && event["phase"] == "forward"
                && event["status"] == "failed"
        })
        .map(|event| {
            (
                event["step"].as_str().unwrap_or_default().to_string(),
                event["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_else(|| panic!("no step failed:\n{}", invocation.output.snapshot()))
}

/// What `step` printed while it ran forward (stdout and stderr), one line each.
fn printed(invocation: &Invocation, step: &str) -> String {
    invocation
        .events
        .iter()
        .filter(|event| {
            event["event"] == "step_output" && event["step"] == step && event["phase"] == "forward"
        })
        .filter_map(|event| event["line"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_exit(invocation: &Invocation, code: i32) {
    assert_eq!(
        invocation.output.code,
        code,
        "{}",
        invocation.output.snapshot()
    );
}

/// The database dump in the run's backup directory.
fn dump_file(world: &World) -> PathBuf {
    let directory = world.backup_dir();
    let timestamp = directory
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a timestamp")
        .to_string();
    directory.join(format!("{DATABASE}_{timestamp}.sql.gz"))
}

fn gunzip(path: &Path) -> String {
    checked(Command::new("gunzip").arg("-c").arg(path))
}

#[test]
fn a_deploy_succeeds_and_a_rollback_an_hour_later_brings_everything_back() {
    let world = World::new();
    let before = world.snapshot();
    let argv = ArgvWatch::start(&world.password);

    let deploy = world.run("deploy", &[]);
    assert_exit(&deploy, 0);
    let run = deploy.run_id();
    // The release serves, migrated, configured, with its cache flushed and warmed.
    assert_eq!(
        world.service(),
        ServiceState {
            version: Some("2.0.0".into()),
            health: Some(200),
            queue: Some("running".into()),
        }
    );
    assert_eq!(
        world.postgres.psql(
            DATABASE,
            "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns \
             WHERE table_name = 'events' AND column_name LIKE 'metadata%'"
        ),
        "metadata,metadata_version"
    );
    assert_eq!(
        world.postgres.psql(
            DATABASE,
            "SELECT count(*) FROM events WHERE deleted_at IS NULL AND metadata IS NULL"
        ),
        "0"
    );
    assert_eq!(
        world.postgres.psql(
            DATABASE,
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'events'"
        ),
        "3",
        "the primary key and the two new indexes"
    );
    let deployed = world.snapshot();
    assert!(deployed.env_file.text.contains("\nFEATURE_METADATA=on\n"));
    assert!(!deployed.env_file.text.contains("FEATURE_METADATA=off"));
    assert_eq!(deployed.env_file.mode, before.env_file.mode);
    let mut keys: Vec<String> = world
        .redis
        .cli(&["--scan"])
        .lines()
        .map(str::to_string)
        .collect();
    keys.sort();
    assert_eq!(keys, ["cache:warmed", "other:config"]);
    assert_eq!(
        deployed.code.commit,
        git(&world.app, &["rev-parse", "v2.0.0^{commit}"]).trim()
    );
    assert_eq!(deployed.code.installed, "2.0.0\n");
    let watched = deploy
        .events
        .iter()
        .filter(|event| {
            event["event"] == "step_output"
                && event["step"] == "watch"
                && event["line"]
                    .as_str()
                    .is_some_and(|line| line.starts_with("error rate 0.4% (under 5%)"))
        })
        .count();
    assert!(
        watched >= 3,
        "the watch window sampled the error rate {watched} times"
    );

    // An hour later: a writer of the new release holds a lock the restore needs.
    let writer = world
        .postgres
        .open_writer(DATABASE, "events", "late-writer");
    let rollback = world.command(&["rollback", &run], true);
    assert_exit(&rollback, 0);
    assert_compensation_order(&rollback.events, FROM_CACHE);
    assert!(
        !world.postgres.session_exists(DATABASE, "late-writer"),
        "the database restore stopped the writer"
    );
    drop(writer);
    world.snapshot().assert_restored(&before);
    // The safety net outlives the rollback: the evidence and the way back.
    assert!(dump_file(&world).is_file());
    let tags = git(&world.app, &["tag", "--list", "pre-deploy-*"]);
    assert_eq!(tags.lines().count(), 1, "{tags}");

    argv.assert_clean();
    world.assert_password_never_leaked(&[&deploy, &rollback], &run);
}

#[test]
fn the_safety_net_is_complete_verified_and_named_by_one_timestamp() {
    let world = World::new();
    let before = world.snapshot();
    let argv = ArgvWatch::start(&world.password);
    let run = world.run("pre-deploy", &[]);
    assert_exit(&run, 0);
    argv.assert_clean();

    let directory = world.backup_dir();
    let timestamp = directory
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a timestamp")
        .to_string();
    assert!(
        timestamp.len() == 15
            && timestamp.chars().enumerate().all(|(index, character)| {
                if index == 8 {
                    character == '_'
                } else {
                    character.is_ascii_digit()
                }
            }),
        "the backup directory is named by the run's timestamp: {timestamp}"
    );
    // The database: a verified gzip of pg_dump --no-owner --no-acl with the tables and rows.
    let dump = dump_file(&world);
    checked(Command::new("gunzip").arg("-t").arg(&dump));
    let text = gunzip(&dump);
    assert!(text.contains("CREATE TABLE public.users ("), "{text}");
    assert!(text.contains("CREATE TABLE public.events ("), "{text}");
    assert!(!text.contains("OWNER TO"), "dumped with --no-owner");
    assert!(!text.contains("GRANT "), "dumped with --no-acl");
    let recorded = run
        .events
        .iter()
        .find(|event| event["event"] == "step_finished" && event["step"] == "backup_db.dump")
        .map(|event| event["outputs"].clone())
        .expect("backup_db.dump finished");
    assert_eq!(
        recorded,
        serde_json::json!([
            ["file", dump.display().to_string()],
            ["rows", "public.events=200 public.users=4"]
        ])
    );
    // Git: a tag and a branch with the same timestamp, at the deployed commit.
    let commit = git(&world.app, &["rev-parse", "HEAD"]);
    let tag = format!("pre-deploy-{timestamp}");
    assert_eq!(
        git(&world.app, &["rev-parse", &format!("{tag}^{{commit}}")]),
        commit
    );
    assert_eq!(
        git(
            &world.app,
            &["rev-parse", &format!("refs/heads/backup/{tag}")]
        ),
        commit
    );
    assert!(
        git(&world.app, &["tag", "--list", "-n1", &tag]).contains(&run.run_id()),
        "the tag's message names the run"
    );
    // The .env copy, readable by its owner only.
    let copy = directory.join("env.backup");
    assert_eq!(
        std::fs::read(&copy).expect("the .env copy"),
        std::fs::read(world.app.join(".env")).expect(".env")
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&copy).expect("metadata").permissions()
        ) & 0o777,
        0o600
    );
    // The process list (with the service in it) and the last 1000 log lines.
    let processes = std::fs::read_to_string(directory.join("processes.txt")).expect("ps");
    assert!(processes.contains("python3 app.py"), "{processes}");
    let tail = std::fs::read_to_string(directory.join("service.log.tail")).expect("tail");
    assert_eq!(tail.lines().count(), 1000);
    let log = world.service_log().join("\n");
    assert!(log.contains(tail.trim_end()), "the tail is the log's");
    assert!(
        tail.contains("started version 1.0.0"),
        "it ends with recent lines"
    );
    assert!(
        !tail.contains("an older log line 500\n"),
        "it starts after older lines"
    );
    // A safety net changes nothing it protects.
    world.snapshot().assert_restored(&before);
    world.assert_password_never_leaked(&[&run], &run.run_id());
}

#[test]
fn a_backup_without_an_expected_table_fails_and_is_removed() {
    let world = World::new();
    let run = world.run(
        "pre-deploy",
        &[("expected_tables", "users events invoices")],
    );
    assert_exit(&run, 1);
    let (step, message) = failed_step(&run);
    assert_eq!(step, "backup_db.dump");
    assert!(
        message.contains("the dump has no table public.invoices"),
        "{message}"
    );
    assert!(
        !dump_file(&world).exists(),
        "the unverified dump is removed"
    );
}

#[test]
fn a_failure_before_the_migration_rolls_back_only_the_code() {
    let world = World::new();
    world.fault("install-fails", "2.0.0", "");
    let writer = world
        .postgres
        .open_writer(DATABASE, "events", "busy-writer");
    let before = world.snapshot();

    let run = world.run("deploy", &[]);
    assert_exit(&run, 1);
    assert_eq!(failed_step(&run).0, "deploy_code.service");
    let printed = printed(&run, "deploy_code.service");
    assert!(
        printed.contains("cannot resolve dependency left-pad"),
        "{printed}"
    );
    assert!(
        !mentions_step(&run.events, "migrate.apply"),
        "the migration never ran"
    );
    assert_compensation_order(
        &run.events,
        &[
            &["deploy_code.service"],
            SAFETY_NET,
            &["safety_net.backup_dir"],
        ],
    );
    assert!(
        world.postgres.session_exists(DATABASE, "busy-writer"),
        "a code rollback leaves the database and its sessions alone"
    );
    world.snapshot().assert_restored(&before);
    drop(writer);
}

#[test]
fn a_failure_after_the_migration_restores_database_code_and_env() {
    let world = World::new();
    world.fault("unhealthy", "2.0.0", "");
    let before = world.snapshot();

    let run = world.run("deploy", &[]);
    assert_exit(&run, 1);
    assert_eq!(failed_step(&run).0, "restart.service");
    let printed = printed(&run, "restart.service");
    assert!(
        printed.contains("/health did not answer after 25 checks: "),
        "{printed}"
    );
    assert_compensation_order(&run.events, FROM_RESTART);
    world.snapshot().assert_restored(&before);
    // 2.0.0 came up unhealthy, then 1.0.0 was started again.
    let log = world.service_log();
    let position = |text: &str| {
        log.iter()
            .rposition(|line| line.contains(text))
            .unwrap_or_else(|| panic!("{text:?} is not in the service log"))
    };
    assert!(position("started version 2.0.0") < position("started version 1.0.0"));
}

#[test]
fn a_failure_in_the_watch_window_restores_everything() {
    let world = World::new();
    let before = world.snapshot();

    let mut running = world.spawn(
        "deploy",
        &[("watch_seconds", "60"), ("watch_interval", "0.2")],
    );
    running.wait_for_stdout("error rate 0.4% (under 5%)", LIMIT);
    // The errors start while the window is open.
    world.fault("error-rate", "2.0.0", "12.5");
    let output = running.finish(LIMIT);
    let events = common::json_events(&output.stdout);
    let run = Invocation { output, events };
    assert_exit(&run, 1);
    assert_eq!(failed_step(&run).0, "watch");
    let printed = printed(&run, "watch");
    assert!(
        printed.ends_with("error rate 12.5% is not under 5%"),
        "{printed}"
    );
    assert_compensation_order(&run.events, FROM_CACHE);
    world.snapshot().assert_restored(&before);
}

#[test]
fn a_failure_in_the_cache_step_restores_the_cache_and_everything_else() {
    let world = World::new();
    world.fault("cache-warm-fails", "2.0.0", "");
    let before = world.snapshot();

    let run = world.run("deploy", &[]);
    assert_exit(&run, 1);
    let (step, _) = failed_step(&run);
    assert_eq!(step, "flush_cache.snapshot");
    let printed = printed(&run, "flush_cache.snapshot");
    assert!(
        printed.contains("flushed 5 keys matching cache:*\ncurl: (22)"),
        "the keys were flushed, then warming the cache failed:\n{printed}"
    );
    assert_compensation_order(&run.events, FROM_CACHE);
    world.snapshot().assert_restored(&before);
}

#[test]
fn a_compensation_that_cannot_succeed_exits_3_and_says_what_a_person_must_do() {
    let world = World::new();
    let before = world.snapshot();
    let deploy = world.run("deploy", &[]);
    assert_exit(&deploy, 0);
    let run = deploy.run_id();
    let migrated = world.snapshot();

    // Someone removes the backup by hand (it survives elsewhere, off site).
    let dump = dump_file(&world);
    let off_site = world.root.join("off-site.sql.gz");
    std::fs::rename(&dump, &off_site).expect("move the dump away");
    let rollback = world.command(&["rollback", &run], false);
    assert_exit(&rollback, 3);
    let stdout = &rollback.output.stdout;
    let instruction = format!(
        "put the dump back at {}, then run: runbook rollback {run} --state-dir {} (it restores the database, then rolls back the code)",
        dump.display(),
        world.state_dir.display()
    );
    let needs = stdout
        .split_once("needs a person:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no `needs a person` section:\n{stdout}"));
    assert!(
        needs.contains(&format!(
            "compensation of `migrate.apply` failed: exit code 1; last output: {instruction}"
        )),
        "{stdout}"
    );
    assert!(
        needs.contains(
            "compensation of `deploy_code.service` was not run: it must come after `migrate.apply`"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("its backup {} is missing", dump.display())),
        "{stdout}"
    );
    assert!(stdout.contains("rollback incomplete (exit 3)"), "{stdout}");
    // The other compensations ran: cache and .env are back, the new release is stopped;
    // the database and the code wait for the person.
    let now = world.snapshot();
    assert_eq!(now.cache, before.cache);
    assert_eq!(now.env_file, before.env_file);
    assert_eq!(
        now.service,
        ServiceState {
            version: None,
            health: None,
            queue: None
        }
    );
    assert_eq!(now.database, migrated.database);
    assert_eq!(now.code, migrated.code);

    // Doing exactly what it says brings the rest back.
    std::fs::rename(&off_site, &dump).expect("put the dump back");
    let command = instruction
        .split_once("then run: ")
        .and_then(|(_, rest)| rest.split_once(" ("))
        .map(|(command, _)| command)
        .expect("a command");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "runbook");
    let finished = Invocation {
        output: world.binary().args(&words[1..]).run_within(LIMIT),
        events: Vec::new(),
    };
    assert_eq!(finished.output.code, 0, "{}", finished.output.snapshot());
    assert!(
        finished
            .output
            .stdout
            .contains(&format!("run {run}: rolled back (exit 0)")),
        "{}",
        finished.output.snapshot()
    );
    world.snapshot().assert_restored(&before);
    world.assert_password_never_leaked(&[&deploy, &rollback, &finished], &run);
}

#[test]
fn an_emergency_rollback_puts_the_stable_release_back_with_the_queue_paused_meanwhile() {
    let world = World::new();
    world.switch_release("v2.0.0");
    world.fault("error-rate", "2.0.0", "9.5");

    let run = world.run("emergency-rollback", &[]);
    assert_exit(&run, 0);
    assert_eq!(
        world.service(),
        ServiceState {
            version: Some("1.0.0".into()),
            health: Some(200),
            queue: Some("running".into()),
        }
    );
    let now = world.snapshot();
    assert_eq!(
        now.code.commit,
        git(&world.app, &["rev-parse", "v1.0.0^{commit}"]).trim()
    );
    assert_eq!(now.code.installed, "1.0.0\n");
    // Paused by 2.0.0, then 1.0.0 started, then resumed.
    let log = world.service_log();
    let after = |start: usize, text: &str| {
        start
            + log[start..]
                .iter()
                .position(|line| line.contains(text))
                .unwrap_or_else(|| panic!("{text:?} is not in the service log after line {start}"))
    };
    let paused = after(0, "[2.0.0] queue paused");
    let started = after(paused, "started version 1.0.0 ");
    after(started, "[1.0.0] queue running");
    let incidents = std::fs::read_to_string(&world.incidents).expect("the incident log");
    assert_eq!(incidents.lines().count(), 1, "{incidents}");
    assert!(
        incidents.contains(&format!(
            "emergency rollback from 2.0.0 to v1.0.0 (run {}): error rate above 5% after 2.0.0",
            run.run_id()
        )),
        "{incidents}"
    );
}

#[test]
fn an_emergency_rollback_whose_stable_release_fails_brings_the_previous_one_back() {
    let world = World::new();
    world.switch_release("v2.0.0");
    world.fault("unhealthy", "1.0.0", "");
    let before = world.snapshot();

    let run = world.run("emergency-rollback", &[]);
    assert_exit(&run, 1);
    let (step, _) = failed_step(&run);
    assert_eq!(step, "restart.service");
    assert_compensation_order(
        &run.events,
        &[
            &["restart.service"],
            &["checkout_stable.service"],
            &["pause_queue"],
        ],
    );
    world.snapshot().assert_restored(&before);
    let log = world.service_log();
    let last = |text: &str| {
        log.iter()
            .rposition(|line| line.contains(text))
            .unwrap_or_else(|| panic!("{text:?} is not in the service log"))
    };
    // The queue resumes only once the previous release serves again.
    assert!(last("started version 2.0.0") < last("[2.0.0] queue running"));
    assert!(
        !world.incidents.exists(),
        "no incident record for a rollback that did not happen"
    );
}

#[test]
fn every_runbook_is_valid_without_warnings() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .expect("runbooks/")
        .map(|entry| entry.expect("an entry").path().display().to_string())
        .filter(|path| path.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let output = Test::new()
        .args(["validate", "--strict"])
        .args(&files)
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        output.stdout.matches("is valid (0 warnings)").count(),
        files.len(),
        "{}",
        output.snapshot()
    );
}

#[test]
fn the_deploy_opens_with_the_same_safety_net_as_pre_deploy() {
    let plan = |name: &str| -> serde_json::Value {
        let output = Test::new()
            .env("DB_PASSWORD", "not-used-by-plan")
            .args(["plan", &runbook(name), "--format", "json"])
            .args(["--var", "app_dir=/srv/app", "--var", "db_name=app"])
            .args(["--var", "release=v2.0.0"])
            .run();
        assert_eq!(output.code, 0, "{}", output.snapshot());
        serde_json::from_str(&output.stdout).expect("plan JSON")
    };
    let deploy = plan("deploy");
    let pre_deploy = plan("pre-deploy");
    // The deploy opens with pre-deploy itself, used as a module (the call `safety_net`): the
    // same steps, rendered the same, each written once, in pre-deploy.yaml or its modules.
    let steps = |plan: &serde_json::Value, prefix: &str| -> Vec<(String, serde_json::Value)> {
        plan["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|step| {
                let id = step["id"].as_str().unwrap_or_default();
                id.strip_prefix(prefix).is_some_and(|id| {
                    id == "backup_dir" || SAFETY_NET.contains(&format!("safety_net.{id}").as_str())
                })
            })
            .map(|step| {
                let mut step = step.clone();
                let written_at = step
                    .as_object_mut()
                    .and_then(|fields| fields.remove("written_at"))
                    .and_then(|value| value.as_str().map(str::to_string))
                    .unwrap_or_default();
                // A step pre-deploy.yaml writes itself says, in the deploy, which call
                // brought it in; the steps of pre-deploy's own modules name their call as
                // they do in pre-deploy.
                if let Some(fields) = step.as_object_mut()
                    && fields
                        .get("called_at")
                        .and_then(|value| value.as_str())
                        .is_some_and(|called| {
                            called.starts_with("`uses: pre-deploy.yaml` at deploy.yaml:")
                        })
                {
                    fields.remove("called_at");
                }
                let text = serde_json::to_string(&step)
                    .expect("JSON")
                    .replace(&format!("\"{prefix}"), "\"")
                    .replace(&format!("steps.{prefix}"), "steps.");
                (written_at, serde_json::from_str(&text).expect("JSON"))
            })
            .collect()
    };
    let in_deploy = steps(&deploy, "safety_net.");
    let own = steps(&pre_deploy, "");
    assert_eq!(in_deploy.len(), 5);
    assert_eq!(
        in_deploy.iter().map(|(_, step)| step).collect::<Vec<_>>(),
        own.iter().map(|(_, step)| step).collect::<Vec<_>>()
    );
    for ((written, step), (own_written, _)) in in_deploy.iter().zip(&own) {
        assert!(
            written.starts_with("pre-deploy.yaml:")
                || (written.starts_with("modules/") && written == own_written),
            "{} is written at {written}",
            step["id"]
        );
    }
    // A module's top-level `env` would not reach its steps: pre-deploy's steps carry theirs.
    assert_eq!(pre_deploy["env"], serde_json::json!([]));
}

#[test]
fn a_watch_window_takes_its_length_and_limit_from_vars() {
    let output = Test::new()
        .runbook(
            r#"
version: 1
name: watch
vars:
  watch_window: { default: 5m }
  max_error_rate: { default: "5" }
steps:
  - id: watch
    verify:
      - name: error rate under the limit
        run: echo 0.4
        expect: { stdout_number: "< {{vars.max_error_rate}}" }
        hold: "{{vars.watch_window}}"
        interval: 100ms
"#,
        )
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(["--var", "watch_window=300ms"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
}

#[test]
fn resuming_a_requested_rollback_exits_0_when_it_completes() {
    let test = Test::new().runbook(
        r#"
version: 1
name: later
steps:
  - id: change
    run: "true"
    rollback: test -e "$RUNBOOK_RUN_DIR/../../undo-allowed"
"#,
    );
    let directory = test.path().to_path_buf();
    let run = test
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(run.code, 0, "{}", run.snapshot());
    let state = directory.join("state").display().to_string();
    let later = |command: &str| {
        Test::new()
            .args([command, "last", "--state-dir", &state])
            .run_within(LIMIT)
    };
    let rollback = later("rollback");
    assert_eq!(rollback.code, 3, "{}", rollback.snapshot());
    std::fs::write(directory.join("state/undo-allowed"), "").expect("allow the undo");
    let resumed = later("resume");
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    // Keeps the first test directory (and its runbook) until here.
    drop(run);
}

#[test]
fn a_missing_service_fails_the_test_naming_what_to_install() {
    let result = std::panic::catch_unwind(|| e2e::tools::require("no-such-server-xyz", "xyz"));
    let message = result
        .expect_err("a missing program fails")
        .downcast::<String>()
        .map(|message| *message)
        .unwrap_or_default();
    assert!(message.contains("apt-get install xyz"), "{message}");
    // Everything the runbooks and the tests use is here on this machine.
    e2e::tools::require_all();
}
