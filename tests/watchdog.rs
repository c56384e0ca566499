//! The watchdog (SPEC §10): when the engine dies, even by SIGKILL, the processes of its running
//! steps are stopped, what left the step's group with `setpgid` included, while a service a
//! step detached with `setsid` lives on; a normal run leaves no watchdog behind, and `resume`
//! works after the engine was killed. Steps write their pids to marker files; the tests poll
//! `/proc` with generous bounds and assert no timing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Running, Test, lines, process_alive};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);
/// How long processes may take to disappear; the requirement is 2 s, this only bounds a hang.
const DEATH: Duration = Duration::from_secs(5);

const MARKER: &str = "__runbook-watchdog";

fn start(yaml: &str, ready: &str) -> Running {
    let mut running = Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--yes", "--state-dir", "{dir}/state"])
        .spawn();
    running.wait_for_file(ready, LIMIT);
    running
}

/// The one pid a step wrote to the file `name`.
fn pid_in(directory: &Path, name: &str) -> i32 {
    let lines = lines(directory, name);
    assert_eq!(lines.len(), 1, "`{name}` holds one pid: {lines:?}");
    lines[0]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a pid in `{name}`: {lines:?}"))
}

/// Waits, up to `DEATH`, until none of `pids` runs; returns those still running then.
fn wait_for_death(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + DEATH;
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&pid| process_alive(pid))
            .collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_strays(pids: &[i32]) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The fields of `/proc/<pid>/stat` after the command name: state, parent, group, session...
fn stat_fields(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            Some(rest.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

/// The arguments of process `pid`.
fn arguments(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&byte| byte == 0)
                .filter(|argument| !argument.is_empty())
                .map(|argument| String::from_utf8_lossy(argument).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The live watchdogs of the engine `engine`, found by their arguments (the marker, then the
/// engine's pid), whoever their parent is now.
/// The watchdogs of `engine` once there is one: it is started right after the first step's
/// process, so a quick step can be seen before the watchdog has replaced its forked image.
fn started_watchdogs_of(engine: i32) -> Vec<i32> {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let watchdogs = watchdogs_of(engine);
        if !watchdogs.is_empty() || std::time::Instant::now() > deadline {
            return watchdogs;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn watchdogs_of(engine: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let arguments = arguments(pid);
            arguments.get(1).map(String::as_str) == Some(MARKER)
                && arguments.get(2) == Some(&engine.to_string())
                && process_alive(pid)
        })
        .collect()
}

/// A step whose processes sit in every place a step can leave one: its main process, a
/// background child in its group, a child that moved to a group of its own with `setpgid`
/// (`set -m` gives each background job its own group) and its child.
const TREE: &str = r#"
version: 1
name: tree
steps:
  - id: work
    run: |
      echo $$ > leader
      sleep 100 &
      echo $! > child
      bash -c 'set -m; bash -c "sleep 101 & echo \$! > escaper_child; wait" & echo $! > escaper; wait' &
      until [ -s escaper_child ] && [ -s escaper ]; do sleep 0.01; done
      touch ready
      wait
    rollback: echo undone >> undo
"#;

#[test]
fn engine_killed_by_sigkill_leaves_no_step_process() {
    let running = start(TREE, "ready");
    let engine = running.pid();
    let watchdogs = started_watchdogs_of(engine);
    assert_eq!(watchdogs.len(), 1, "one watchdog runs: {watchdogs:?}");
    running.signal(Signal::SIGKILL);
    let output = running.finish(LIMIT);
    assert_eq!(output.code, -1, "{}", output.snapshot());
    let pids: Vec<i32> = ["leader", "child", "escaper", "escaper_child"]
        .iter()
        .map(|name| pid_in(&output.directory, name))
        .collect();
    let escaper = stat_fields(pids[2]);
    let survivors = wait_for_death(&pids);
    kill_strays(&pids);
    assert_eq!(
        survivors,
        Vec::<i32>::new(),
        "step processes outlived the engine"
    );
    // The escaper had really left the step's group (or it was already gone).
    if let Some(group) = escaper.get(2) {
        assert_ne!(group, &pids[0].to_string(), "{escaper:?}");
    }
    // Its work done, the watchdog exits too.
    assert_eq!(wait_for_death(&watchdogs), Vec::<i32>::new());
}

#[test]
fn a_setsid_service_outlives_the_engine_while_the_step_does_not() {
    let running = start(
        r#"
version: 1
name: service
steps:
  - id: start
    run: |
      echo $$ > leader
      setsid bash -c 'echo $$ > service; exec sleep 100' > /dev/null 2>&1 < /dev/null &
      until [ -s service ]; do sleep 0.01; done
      touch ready
      sleep 100
"#,
        "ready",
    );
    running.signal(Signal::SIGKILL);
    let output = running.finish(LIMIT);
    let leader = pid_in(&output.directory, "leader");
    let service = pid_in(&output.directory, "service");
    let survivors = wait_for_death(&[leader]);
    let service_alive = process_alive(service);
    kill_strays(&[leader, service]);
    assert_eq!(survivors, Vec::<i32>::new(), "the step outlived the engine");
    assert!(service_alive, "the detached service was stopped");
}

#[test]
fn a_normal_run_leaves_no_watchdog_and_the_watchdog_holds_nothing_of_the_engine() {
    let running = start(
        r#"
version: 1
name: normal
steps:
  - id: wait
    run: |
      touch ready
      until [ -f release ]; do sleep 0.01; done
      echo done
"#,
        "ready",
    );
    let engine = running.pid();
    let watchdogs = started_watchdogs_of(engine);
    assert_eq!(watchdogs.len(), 1, "one watchdog runs: {watchdogs:?}");
    let watchdog = watchdogs[0];
    let stat = stat_fields(watchdog);
    assert_eq!(
        stat.get(1),
        Some(&engine.to_string()),
        "the engine started it: {stat:?}"
    );
    assert_eq!(
        stat.get(2),
        Some(&watchdog.to_string()),
        "a group of its own, which a Ctrl-C to the engine's group does not reach: {stat:?}"
    );
    // SIGHUP (1) and SIGINT (2) are ignored, should they reach it anyway.
    let status = std::fs::read_to_string(format!("/proc/{watchdog}/status"))
        .expect("read the watchdog's status");
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .expect("a SigIgn line");
    assert_eq!(ignored & 0b11, 0b11, "SigIgn {ignored:x}");
    // Only the pipe from the engine, and /dev/null for output: no step output pipe, no lock.
    // The watchdog closes what it inherited (from the engine, or from whatever started the
    // engine) first thing in its `main`, which a loaded machine may not have run yet.
    let descriptors_of_watchdog = || {
        let mut descriptors: Vec<(String, String)> =
            std::fs::read_dir(format!("/proc/{watchdog}/fd"))
                .expect("list the watchdog's descriptors")
                .filter_map(Result::ok)
                .map(|entry| {
                    let target = std::fs::read_link(entry.path())
                        .map(|target| target.display().to_string())
                        .unwrap_or_default();
                    (entry.file_name().to_string_lossy().into_owned(), target)
                })
                .collect();
        descriptors.sort();
        descriptors
    };
    let settled = Instant::now() + Duration::from_secs(10);
    let mut descriptors = descriptors_of_watchdog();
    while descriptors.len() != 3 && Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(20));
        descriptors = descriptors_of_watchdog();
    }
    assert_eq!(descriptors.len(), 3, "{descriptors:?}");
    assert!(descriptors[0].1.starts_with("pipe:"), "{descriptors:?}");
    assert_eq!(descriptors[1].1, "/dev/null", "{descriptors:?}");
    assert_eq!(descriptors[2].1, "/dev/null", "{descriptors:?}");

    std::fs::write(running.path().join("release"), "").expect("release the step");
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(output.stdout.contains("succeeded"), "{}", output.snapshot());
    assert_eq!(
        watchdogs_of(engine),
        Vec::<i32>::new(),
        "the watchdog is left"
    );
}

#[test]
fn commands_that_start_no_step_start_no_watchdog() {
    let running = Test::new()
        .runbook("version: 1\nname: quick\nsteps:\n  - id: a\n    run: echo $PPID > engine\n")
        .args(["plan", "{file}"])
        .spawn();
    let engine = running.pid();
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(watchdogs_of(engine), Vec::<i32>::new());
}

#[test]
fn resume_after_the_engine_was_killed_reruns_the_step_and_finishes() {
    let running = start(
        r#"
version: 1
name: chain
steps:
  - id: a
    run: echo a >> a.mark
  - id: b
    needs: [a]
    run: |
      echo $$ >> pids
      echo b >> b.mark
      [ -f release ] || { touch ready; sleep 60; }
  - id: c
    needs: [b]
    run: echo c >> c.mark
"#,
        "ready",
    );
    running.signal(Signal::SIGKILL);
    let crashed = running.finish(LIMIT);
    let directory = crashed.directory.clone();
    let step = pid_in(&directory, "pids");
    let survivors = wait_for_death(&[step]);
    kill_strays(&[step]);
    assert_eq!(survivors, Vec::<i32>::new(), "step b outlived the engine");

    std::fs::write(directory.join("release"), "").expect("release the step");
    let state = directory.join("state").display().to_string();
    let resumed = Test::new()
        .current_dir(&directory)
        .args(["resume", "last", "--state-dir", &state])
        .run_within(LIMIT);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert!(
        !resumed.stderr.contains("panicked"),
        "{}",
        resumed.snapshot()
    );
    assert_eq!(lines(&directory, "a.mark").len(), 1, "a had finished");
    assert_eq!(
        lines(&directory, "b.mark").len(),
        2,
        "b was in doubt and ran again"
    );
    assert_eq!(lines(&directory, "c.mark").len(), 1);
}

#[test]
fn a_timeout_also_stops_what_left_the_step_group() {
    let output = Test::new()
        .runbook(
            r#"
version: 1
name: timeout
steps:
  - id: slow
    timeout: 1s
    grace: 1s
    run: |
      bash -c 'set -m; bash -c "sleep 101 & echo \$! > escaper_child; wait" & echo $! > escaper; wait' &
      sleep 100
"#,
        )
        .args(["run", "{file}", "--yes", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let pids = [
        pid_in(&output.directory, "escaper"),
        pid_in(&output.directory, "escaper_child"),
    ];
    let survivors = wait_for_death(&pids);
    kill_strays(&pids);
    assert_eq!(
        survivors,
        Vec::<i32>::new(),
        "a process that left the group survived"
    );
}
