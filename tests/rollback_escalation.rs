//! A compensation that never ends cannot hold the engine until SIGKILL orphans it (issue 10,
//! item 13): the first two signals during a rollback are reported and ignored, a third stops
//! the running compensations (SIGTERM to their groups, grace, SIGKILL) and starts no more;
//! the run ends `rollback incomplete` (exit 3) listing what was stopped and what never ran.

mod common;

use std::time::Duration;

use common::{Test, process_alive};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(60);

/// `b` fails; `a`'s compensation never ends; `z`'s compensation must wait for `a`'s.
const RUNBOOK: &str = r#"
version: 1
name: endless-undo
steps:
  - id: z
    run: "true"
    rollback: echo z >> undone
  - id: a
    needs: [z]
    run: "true"
    rollback: |
      echo $$ > undo.pid
      sleep 1000
  - id: b
    needs: [a]
    readonly: true
    run: exit 1
"#;

#[test]
fn a_third_signal_during_a_rollback_stops_it_and_lists_what_is_left() {
    let mut running = Test::new()
        .runbook(RUNBOOK)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .spawn();
    running.wait_for_file("undo.pid", LIMIT);
    // Distinct signals, each sent once the previous one was reported: signals of one kind
    // that arrive together count once.
    running.signal(Signal::SIGINT);
    running.wait_for_stdout("SIGINT received during rollback", LIMIT);
    running.signal(Signal::SIGTERM);
    running.wait_for_stdout("SIGTERM received during rollback", LIMIT);
    assert!(
        running
            .stdout_so_far()
            .contains("(a third signal stops them)"),
        "{}",
        running.stdout_so_far()
    );
    running.signal(Signal::SIGHUP);
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 3, "{}", output.snapshot());
    for expected in [
        "SIGHUP received a third time during rollback: stopping the running compensations",
        "compensation of `a` was stopped before it finished (a third signal)",
        "compensation of `z` was not run",
        "rollback incomplete",
    ] {
        assert!(
            output.stdout.contains(expected),
            "{expected:?} missing:\n{}",
            output.snapshot()
        );
    }
    assert!(
        !output.directory.join("undone").exists(),
        "z's undo never ran"
    );
    let pid: i32 = std::fs::read_to_string(output.directory.join("undo.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!process_alive(pid), "the endless compensation was stopped");
}
