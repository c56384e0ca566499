//! Process control of `runbook run` (SPEC §8.4, RELIABILITY §1): timeouts kill a step's whole
//! process tree, cancelled steps get SIGTERM and are never recorded as succeeded, signals to the
//! engine roll back and exit 130 / 143, a background child cannot hang a step, and a step's
//! output does not grow the engine's memory. Steps write marker files; the tests wait for
//! those files with bounded deadlines, never with sleeps.

mod common;

use std::time::Duration;

use common::{Output, Test, group_members, json_events, lines, process_alive};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

fn test(yaml: &str) -> Test {
    Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--yes", "--state-dir", "{dir}/state"])
}

fn no_panic(output: &Output) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
}

/// The pids a step wrote, one a line, to `name`.
fn pids(output: &Output, name: &str) -> Vec<i32> {
    lines(&output.directory, name)
        .iter()
        .map(|line| {
            line.trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a pid: {line:?}"))
        })
        .collect()
}

/// The forward `step_finished` event of `step`.
fn finished<'a>(events: &'a [Value], step: &str) -> &'a Value {
    events
        .iter()
        .find(|event| {
            event["event"] == "step_finished"
                && event["step"] == step
                && event["phase"] == "forward"
        })
        .unwrap_or_else(|| panic!("no step_finished for {step}: {events:?}"))
}

#[test]
fn a_timeout_kills_the_whole_process_tree_and_compensates() {
    let output = test(
        r#"
version: 1
name: timeout-tree
steps:
  - id: slow
    timeout: 1s
    grace: 1s
    run: |
      echo $$ >> pids
      sleep 100 & echo $! >> pids
      (echo $BASHPID >> pids; sleep 101 & echo $! >> pids; wait) &
      sleep 102
    rollback: echo slow >> undo
"#,
    )
    .args(["--log-format", "json"])
    .run_within(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let pids = pids(&output, "pids");
    assert_eq!(pids.len(), 4, "{pids:?}");
    for pid in pids {
        assert!(!process_alive(pid), "pid {pid} survived the timeout");
    }
    let events = json_events(&output.stdout);
    let slow = finished(&events, "slow");
    assert_eq!(slow["status"], "failed", "{slow}");
    assert!(
        slow["message"]
            .as_str()
            .is_some_and(|message| message.contains("timed out")),
        "{slow}"
    );
    assert_eq!(lines(&output.directory, "undo"), ["slow"]);
}

#[test]
fn a_cancelled_step_that_traps_term_says_goodbye_and_is_not_succeeded() {
    // `fails` waits until `trapper` runs, then fails; the engine cancels `trapper`, whose trap
    // writes its goodbye and exits 0.
    let output = test(
        r#"
version: 1
name: trap-cancel
steps:
  - id: trapper
    run: |
      trap 'echo bye > bye; exit 0' TERM
      echo started > trapper_started
      sleep 100 &
      wait
    rollback: echo trapper >> undo
  - id: fails
    run: |
      for _ in $(seq 600); do [ -e trapper_started ] && break; sleep 0.05; done
      exit 1
"#,
    )
    .args(["--log-format", "json"])
    .run_within(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "bye"), ["bye"]);
    let events = json_events(&output.stdout);
    let trapper = finished(&events, "trapper");
    assert_ne!(trapper["status"], "succeeded", "{trapper}");
    assert_eq!(trapper["status"], "cancelled", "{trapper}");
    assert_eq!(lines(&output.directory, "undo"), ["trapper"]);
}

#[test]
fn a_timed_out_step_that_traps_term_exits_0_and_still_fails() {
    let output = test(
        r#"
version: 1
name: trap-timeout
steps:
  - id: trapper
    timeout: 1s
    grace: 30s
    run: |
      trap 'echo bye > bye; exit 0' TERM
      sleep 100 &
      wait
"#,
    )
    .args(["--log-format", "json"])
    .run_within(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "bye"), ["bye"]);
    let events = json_events(&output.stdout);
    let trapper = finished(&events, "trapper");
    assert_eq!(trapper["status"], "failed", "{trapper}");
    assert!(
        trapper["message"]
            .as_str()
            .is_some_and(|message| message.contains("timed out")),
        "{trapper}"
    );
}

const SIGNALLED: &str = r#"
version: 1
name: signalled
steps:
  - id: a
    run: "true"
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: |
      echo $$ > b_group
      echo started > b_started
      sleep 100
    rollback: echo b >> undo
  - id: c
    needs: [b]
    run: echo c >> forward
    rollback: echo c >> undo
"#;

/// Sends `signal` to the engine alone while `b` runs.
fn signal_during_b(signal: Signal) -> Output {
    let mut running = test(SIGNALLED).spawn();
    running.wait_for_file("b_started", LIMIT);
    running.signal(signal);
    let output = running.finish(LIMIT);
    no_panic(&output);
    output
}

fn assert_rolled_back_after_signal(output: &Output) {
    assert_eq!(lines(&output.directory, "undo"), ["b", "a"]);
    assert!(lines(&output.directory, "forward").is_empty(), "c ran");
    let group = pids(output, "b_group")[0];
    assert_eq!(
        group_members(group),
        Vec::<i32>::new(),
        "b's group survived"
    );
    let row = output
        .stdout
        .lines()
        .find(|line| line.starts_with("b "))
        .unwrap_or_else(|| panic!("no summary row for b:\n{}", output.snapshot()));
    assert!(row.contains("cancelled"), "{row}");
}

#[test]
fn sigint_to_the_engine_cancels_rolls_back_and_exits_130() {
    let output = signal_during_b(Signal::SIGINT);
    assert_eq!(output.code, 130, "{}", output.snapshot());
    assert_rolled_back_after_signal(&output);
}

#[test]
fn sigterm_to_the_engine_cancels_rolls_back_and_exits_143() {
    let output = signal_during_b(Signal::SIGTERM);
    assert_eq!(output.code, 143, "{}", output.snapshot());
    assert_rolled_back_after_signal(&output);
}

#[test]
fn a_second_sigint_does_not_skip_a_running_compensation() {
    // a's compensation waits for `release`, which the test creates only after the engine has
    // reported the second SIGINT.
    let mut running = test(
        r#"
version: 1
name: second-sigint
steps:
  - id: a
    run: "true"
    rollback: |
      echo started > undo_started
      for _ in $(seq 1200); do [ -e release ] && break; sleep 0.05; done
      echo a >> undo
  - id: b
    needs: [a]
    run: |
      echo started > b_started
      sleep 100
"#,
    )
    .spawn();
    running.wait_for_file("b_started", LIMIT);
    running.signal(Signal::SIGINT);
    running.wait_for_file("undo_started", LIMIT);
    running.signal(Signal::SIGINT);
    running.wait_for_stdout("SIGINT received during rollback", LIMIT);
    std::fs::write(running.path().join("release"), "").expect("write release");
    let output = running.finish(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 130, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "undo"), ["a"]);
    let row = output
        .stdout
        .lines()
        .find(|line| line.starts_with("a "))
        .unwrap_or_else(|| panic!("no summary row for a:\n{}", output.snapshot()));
    assert!(row.contains("compensated"), "{row}");
}

#[test]
fn a_background_child_holding_stdout_does_not_hang_the_step() {
    // `in_group` leaves a child in its process group; `detached` leaves a daemon in its own
    // session, which the engine leaves alone. Both hold the step's stdout for 30 s.
    let output = test(
        r#"
version: 1
name: background
steps:
  - id: in_group
    run: |
      sleep 30 & echo $! > in_group_pid
      echo done
  - id: detached
    needs: [in_group]
    run: |
      setsid sleep 30 & echo $! > detached_pid
      echo done too
"#,
    )
    .run_within(Duration::from_secs(20));
    for pid in pids(&output, "detached_pid") {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    no_panic(&output);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("in_group | done"),
        "{}",
        output.snapshot()
    );
    assert!(
        output.stdout.contains("detached | done too"),
        "{}",
        output.snapshot()
    );
    let in_group = pids(&output, "in_group_pid")[0];
    assert!(
        !process_alive(in_group),
        "the child left in the step's group survived"
    );
}

#[test]
fn a_gibibyte_of_output_does_not_grow_the_engine() {
    // 1 GiB in lines of 4 KiB takes about 10 s through a debug build.
    let output = test(
        r#"
version: 1
name: large-output
steps:
  - id: big
    run: |
      set +o pipefail
      yes "$(head -c 4095 /dev/zero | tr '\0' x)" | head -c 1073741824
"#,
    )
    .args(["--progress", "none"])
    .wrap(["/usr/bin/time", "-f", "%M", "-o", "{dir}/rss"])
    .run_within(Duration::from_secs(300));
    no_panic(&output);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let rss = lines(&output.directory, "rss");
    let kib: u64 = rss
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS from /usr/bin/time: {rss:?}"));
    assert!(kib < 64 * 1024, "peak RSS {kib} KiB");
}
