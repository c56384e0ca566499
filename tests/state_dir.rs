//! The state directory and the run lock an operator can trust (SPEC §2 `lock`, §8.2, §10):
//! the default state dir is `$XDG_STATE_HOME/runbook` (else `~/.local/state/runbook`), never
//! the working directory; `lock` lets runbooks that change one system share one lock; a
//! symbolic link planted as the lock file is refused, its target untouched; a state dir that
//! is a file, an empty run id and an ambiguous prefix are refused with exit 2.
//!
//! A holding step writes `held` into a sync directory and waits for `release` there: the
//! tests wait for the file (bounded), never sleep to synchronise.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Output, Running, Test, group_members, lines};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// A runbook named `name`, taking lock `lock` (none: the default), whose one step holds until
/// `$SYNC/release` exists.
fn holding(name: &str, lock: Option<&str>) -> String {
    let lock = lock
        .map(|lock| format!("lock: {lock}\n"))
        .unwrap_or_default();
    format!(
        r#"version: 1
name: {name}
{lock}steps:
  - id: hold
    run: |
      echo $$ >> "$SYNC/pids"
      echo {name} >> "$SYNC/held"
      while [ ! -f "$SYNC/release" ]; do sleep 0.05; done
    rollback: echo undo >> "$SYNC/undo"
"#
    )
}

/// A runbook whose one step appends its name to `$SYNC/quick`.
fn quick(name: &str, lock: Option<&str>) -> String {
    let lock = lock
        .map(|lock| format!("lock: {lock}\n"))
        .unwrap_or_default();
    format!(
        r#"version: 1
name: {name}
{lock}steps:
  - id: quick
    run: echo {name} >> "$SYNC/quick"
    rollback: echo undo >> "$SYNC/undo"
"#
    )
}

/// A shared place: runbooks, two working directories `a` and `b`, an XDG state home and the
/// sync directory. Releases and kills what it started when dropped.
struct World {
    root: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::write(self.sync().join("release"), "");
        for pid in lines(&self.sync(), "pids") {
            if let Ok(pid) = pid.trim().parse::<i32>()
                && !group_members(pid).is_empty()
            {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl World {
    fn new() -> World {
        let world = World {
            root: tempfile::tempdir().expect("a temporary directory"),
        };
        for directory in ["a", "b", "sync", "xdg", "home"] {
            std::fs::create_dir(world.path(directory)).expect("create a directory");
        }
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn sync(&self) -> PathBuf {
        self.path("sync")
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write a runbook");
        path.display().to_string()
    }

    /// `runbook ARGS` in working directory `cwd`, with the world's XDG state home and home.
    fn command(&self, cwd: &str, args: &[&str]) -> Test {
        Test::new()
            .current_dir(&self.path(cwd))
            .env("XDG_STATE_HOME", &self.path("xdg").display().to_string())
            .env("HOME", &self.path("home").display().to_string())
            .env("SYNC", &self.sync().display().to_string())
            .args(args)
    }

    fn engine(&self, cwd: &str, args: &[&str]) -> Output {
        let output = self.command(cwd, args).spawn().finish(LIMIT);
        assert!(
            !output.stderr.contains("panicked"),
            "panic:\n{}",
            output.snapshot()
        );
        output
    }

    fn state(&self) -> PathBuf {
        self.path("xdg").join("runbook")
    }

    fn run_ids(&self) -> Vec<String> {
        run_ids(&self.state())
    }

    /// Waits (bounded) until `$SYNC/held` exists.
    fn wait_until_held(&self) {
        let path = self.sync().join("held");
        let deadline = Instant::now() + LIMIT;
        while !path.exists() {
            assert!(Instant::now() < deadline, "the step did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn release(&self) {
        std::fs::write(self.sync().join("release"), "").expect("release");
    }

    fn count(&self, name: &str) -> usize {
        lines(&self.sync(), name).len()
    }
}

fn run_ids(state: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("runs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn entries(directory: &Path) -> Vec<String> {
    std::fs::read_dir(directory)
        .expect("read a directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The refusal names the lock and the holder: run id, runbook, pid and start time.
fn assert_held_by(output: &Output, lock: &str, run: &str, runbook: &str, holder: &Running) {
    assert_eq!(output.code, 75, "{}", output.snapshot());
    let expected = format!(
        "error: another run holds the lock `{lock}`: run {run} of `{runbook}` (pid {}, started ",
        holder.pid()
    );
    assert!(
        output.stderr.contains(&expected),
        "expected {expected:?} in:\n{}",
        output.snapshot()
    );
    let line = output.stderr.lines().next().unwrap_or_default();
    let started = line.rsplit("started ").next().unwrap_or_default();
    assert!(
        started.len() == "2026-12-01T10:00:00Z)".len() && started.ends_with("Z)"),
        "the start time is RFC 3339: {line}"
    );
    assert!(
        !output.stderr.contains("run of run"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn two_working_directories_share_the_default_state_dir_and_its_lock() {
    let world = World::new();
    let file = world.write("shared.yaml", &holding("shared", None));
    let holder = world.command("a", &["run", &file]).spawn();
    world.wait_until_held();
    let ids = world.run_ids();
    assert_eq!(
        ids.len(),
        1,
        "the run is under $XDG_STATE_HOME/runbook: {ids:?}"
    );

    let second = world.engine("b", &["run", &file]);
    assert_held_by(&second, "shared", &ids[0], "shared", &holder);
    assert_eq!(world.count("held"), 1, "the second run ran nothing");

    world.release();
    let finished = holder.finish(LIMIT);
    assert_eq!(finished.code, 0, "{}", finished.snapshot());

    // Where a command is typed changes neither history nor lock.
    let history = world.engine("b", &["history"]);
    assert_eq!(history.code, 0, "{}", history.snapshot());
    assert!(history.stdout.contains(&ids[0]), "{}", history.snapshot());
    let show = world.engine("a", &["show", "last"]);
    assert!(show.stdout.contains(&ids[0]), "{}", show.snapshot());
    for cwd in ["a", "b"] {
        assert!(
            entries(&world.path(cwd)).is_empty(),
            "nothing is written into the working directory `{cwd}`"
        );
    }
    assert!(world.state().join("locks/shared.lock").is_file());
}

#[test]
fn without_an_absolute_xdg_state_home_the_state_dir_is_under_home() {
    let world = World::new();
    let file = world.write("quick.yaml", &quick("quick", None));
    let home_state = world.path("home").join(".local/state/runbook");
    for xdg in ["", "relative/state"] {
        let output = world
            .command("a", &["run", &file])
            .env("XDG_STATE_HOME", xdg)
            .run();
        assert_eq!(output.code, 0, "{}", output.snapshot());
    }
    assert_eq!(
        run_ids(&home_state).len(),
        2,
        "both runs under ~/.local/state"
    );
    assert!(entries(&world.path("a")).is_empty(), "nothing in the cwd");
    assert!(world.run_ids().is_empty());

    // `RUNBOOK_STATE_DIR` beats the default, `--state-dir` beats both.
    let from_env = world.path("from-env");
    let output = world
        .command("a", &["run", &file])
        .env("RUNBOOK_STATE_DIR", &from_env.display().to_string())
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let from_flag = world.path("from-flag");
    let output = world
        .command(
            "a",
            &[
                "run",
                &file,
                "--state-dir",
                &from_flag.display().to_string(),
            ],
        )
        .env("RUNBOOK_STATE_DIR", &from_env.display().to_string())
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(run_ids(&from_env).len(), 1);
    assert_eq!(run_ids(&from_flag).len(), 1);
    assert_eq!(run_ids(&home_state).len(), 2);
    assert!(world.run_ids().is_empty());
}

#[test]
fn runbooks_naming_one_lock_exclude_each_other_and_stay_separate_runbooks() {
    let world = World::new();
    let deploy = world.write("deploy.yaml", &holding("deploy-web", Some("deploy")));
    let emergency = world.write(
        "emergency.yaml",
        &quick("emergency-rollback", Some("deploy")),
    );
    let other = world.write("other.yaml", &quick("other", None));
    let holder = world.command("a", &["run", &deploy]).spawn();
    world.wait_until_held();
    let ids = world.run_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");

    let refused = world.engine("b", &["run", &emergency]);
    assert_held_by(&refused, "deploy", &ids[0], "deploy-web", &holder);
    assert_eq!(world.count("quick"), 0, "the refused runbook ran nothing");
    let free = world.engine("b", &["run", &other]);
    assert_eq!(
        free.code,
        0,
        "another lock is not held up:\n{}",
        free.snapshot()
    );
    assert_eq!(
        entries(&world.state().join("locks")).len(),
        2,
        "one lock file per lock name, `deploy.lock` and `other.lock`"
    );
    assert!(world.state().join("locks/deploy.lock").is_file());

    // The engine dies: the lock is free, but the unfinished-run check stays per runbook.
    holder.signal(Signal::SIGKILL);
    let killed = holder.finish(LIMIT);
    assert_eq!(killed.code, -1, "{}", killed.snapshot());
    let step: i32 = lines(&world.sync(), "pids")[0]
        .trim()
        .parse()
        .expect("the step's pid");
    let _ = killpg(Pid::from_raw(step), Signal::SIGKILL);

    let emergency_run = world.engine("b", &["run", &emergency]);
    assert_eq!(
        emergency_run.code,
        0,
        "deploy-web's unfinished run does not block another runbook:\n{}",
        emergency_run.snapshot()
    );
    let again = world.engine("b", &["run", &deploy]);
    assert_eq!(again.code, 2, "{}", again.snapshot());
    assert!(
        again.stderr.contains(&ids[0]) && again.stderr.contains("unfinished"),
        "{}",
        again.snapshot()
    );
    let history = world.engine("a", &["history", "--format", "json"]);
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&history.stdout).expect("history as JSON");
    let runbooks: Vec<&str> = runs
        .iter()
        .map(|run| run["runbook"].as_str().unwrap_or_default())
        .collect();
    for name in ["deploy-web", "emergency-rollback", "other"] {
        assert!(runbooks.contains(&name), "{runbooks:?}");
    }
}

#[test]
fn a_lock_that_is_not_a_name_is_refused_at_its_place() {
    let output = Test::new()
        .runbook(
            "version: 1\nname: deploy-web\nlock: Deploy/Web\nsteps:\n  - id: a\n    run: \"true\"\n    readonly: true\n",
        )
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("runbook `lock` `Deploy/Web` is not a valid name")
            && output.stderr.contains("runbook.yaml:3:7"),
        "{}",
        output.snapshot()
    );
    let json = Test::new()
        .runbook("version: 1\nname: x\nlock: ../etc\nsteps:\n  - id: a\n    readonly: true\n    run: \"true\"\n")
        .args(["validate", "--format", "json", "{file}"])
        .run();
    assert_eq!(json.code, 2, "{}", json.snapshot());
    assert!(
        json.stdout.contains("\"invalid-lock\""),
        "{}",
        json.snapshot()
    );
}

#[test]
fn a_symbolic_link_as_the_lock_file_is_refused_and_its_target_left_alone() {
    let test = Test::new()
        .runbook("version: 1\nname: linked\nsteps:\n  - id: a\n    run: touch \"$MARKER\"\n    readonly: true\n")
        .file("precious", "keep me\n")
        .args(["run", "{file}", "--state-dir", "{dir}/state"]);
    std::fs::create_dir_all(test.path().join("state/locks")).expect("create locks");
    std::os::unix::fs::symlink(
        test.path().join("precious"),
        test.path().join("state/locks/linked.lock"),
    )
    .expect("plant the link");
    let output = test.run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("the lock file `[DIR]/state/locks/linked.lock` is a symbolic link"),
        "{}",
        output.snapshot()
    );
    assert_eq!(
        std::fs::read_to_string(output.directory.join("precious")).expect("the target"),
        "keep me\n"
    );
    assert!(!output.marker_exists(), "nothing ran");
    assert!(run_ids(&output.directory.join("state")).is_empty());
}

#[test]
fn a_state_dir_that_is_a_file_is_not_a_directory_with_no_runs() {
    for args in [
        vec!["history"],
        vec!["history", "--format", "json"],
        vec!["show", "last"],
    ] {
        let output = Test::new()
            .file("state", "not a directory\n")
            .args(&args)
            .args(["--state-dir", "{dir}/state"])
            .run();
        assert_eq!(output.code, 2, "{args:?}:\n{}", output.snapshot());
        assert!(
            output
                .stderr
                .contains("the state directory `[DIR]/state` is not a directory"),
            "{args:?}:\n{}",
            output.snapshot()
        );
        assert!(!output.stdout.contains("no runs"), "{}", output.snapshot());
    }
}

#[test]
fn every_no_runs_message_names_the_absolute_state_dir() {
    let cases: [(&[&str], &str); 6] = [
        (&["history"], "no runs recorded in `[DIR]/relative`"),
        (
            &["show", "last"],
            "no runs are recorded in `[DIR]/relative`",
        ),
        (
            &["show", "2026"],
            "no runs are recorded in `[DIR]/relative`",
        ),
        (
            &["rollback", "2026"],
            "no runs are recorded in `[DIR]/relative`",
        ),
        (
            &["resume", "last"],
            "no runs are recorded in `[DIR]/relative`",
        ),
        (
            &["report", "last"],
            "no runs are recorded in `[DIR]/relative`",
        ),
    ];
    for (args, expected) in cases {
        let output = Test::new()
            .args(args)
            .args(["--state-dir", "relative"])
            .run();
        let expected_code = if args[0] == "history" { 0 } else { 2 };
        assert_eq!(
            output.code,
            expected_code,
            "{args:?}:\n{}",
            output.snapshot()
        );
        assert!(
            output.stdout.contains(expected) || output.stderr.contains(expected),
            "{args:?}: expected {expected:?}:\n{}",
            output.snapshot()
        );
    }
    // The default, too.
    let output = Test::new().args(["show", "last"]).run();
    assert!(
        output
            .stderr
            .contains("no runs are recorded in `[DIR]/xdg-state/runbook`"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn an_empty_run_id_or_an_ambiguous_prefix_is_refused_with_the_candidates() {
    let test = Test::new().runbook(&quick("twice", None)).args([
        "run",
        "{file}",
        "--state-dir",
        "{dir}/state",
    ]);
    let directory = test.path().to_path_buf();
    let sync = directory.display().to_string();
    let first = test.env("SYNC", &sync).run();
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let second = Test::new()
        .env("SYNC", &sync)
        .args(["run", &directory.join("runbook.yaml").display().to_string()])
        .args([
            "--state-dir",
            &directory.join("state").display().to_string(),
        ])
        .run();
    assert_eq!(second.code, 0, "{}", second.snapshot());
    let ids = run_ids(&directory.join("state"));
    assert_eq!(ids.len(), 2);
    let common: String = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(one, other)| one == other)
        .map(|(one, _)| one)
        .collect();
    assert!(!common.is_empty());

    let state = directory.join("state").display().to_string();
    for command in ["show", "rollback", "resume", "report"] {
        for empty in ["", " "] {
            let output = Test::new()
                .env("SYNC", &sync)
                .args([command, empty, "--state-dir", &state])
                .run();
            assert_eq!(
                output.code,
                2,
                "{command} {empty:?}:\n{}",
                output.snapshot()
            );
            assert!(
                output.stderr.contains("the run id is empty"),
                "{command}:\n{}",
                output.snapshot()
            );
        }
        let output = Test::new()
            .env("SYNC", &sync)
            .args([command, &common, "--state-dir", &state])
            .run();
        assert_eq!(output.code, 2, "{command} {common}:\n{}", output.snapshot());
        assert!(
            output
                .stderr
                .contains(&format!("`{common}` matches 2 runs"))
                && ids
                    .iter()
                    .all(|id| output.stderr.contains(&format!("`{id}`"))),
            "{command} lists both candidates:\n{}",
            output.snapshot()
        );
    }
    assert!(
        lines(&directory, "undo").is_empty(),
        "no rollback compensated anything"
    );
    assert_eq!(lines(&directory, "quick").len(), 2, "no resume ran a step");
}
