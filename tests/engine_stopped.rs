//! An engine stopped (SIGSTOP, Ctrl-Z) past a step's timeout does not fail a step that
//! finished in time (issue 10, item 14): when the engine runs again, the step's exit and its
//! deadline are both due, and the exit, which came first, decides the outcome. The time the
//! engine was stopped does not count against a step still running either.

mod common;

use std::time::{Duration, Instant};

use common::{Test, process_alive};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(60);

/// The step records its pid, then ends well within its 2 s timeout.
const RUNBOOK: &str = r#"
version: 1
name: stopped-engine
steps:
  - id: quick
    readonly: true
    timeout: 2s
    run: |
      echo $$ > step.pid
      sleep 0.2
"#;

#[test]
fn a_step_that_ended_while_the_engine_was_stopped_past_its_deadline_succeeds() {
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
    running.wait_for_file("step.pid", LIMIT);
    running.signal(Signal::SIGSTOP);
    let stopped_at = Instant::now();
    let pid_file = running.path().join("step.pid");
    let deadline = Instant::now() + LIMIT;
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid");
        std::thread::sleep(Duration::from_millis(10));
    };
    // The step ends on its own (a zombie until the stopped engine reaps it) ...
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "the step did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    // ... and the engine stays stopped past the step's deadline: that is the scenario.
    let past_deadline = Duration::from_millis(2500);
    if let Some(left) = past_deadline.checked_sub(stopped_at.elapsed()) {
        std::thread::sleep(left);
    }
    running.signal(Signal::SIGCONT);
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        !output.stdout.contains("timed out"),
        "{}",
        output.snapshot()
    );
}

/// The step waits for `release`, which the test creates only after the engine was stopped
/// past the step's 2 s timeout and continued again.
const WAITING: &str = r#"
version: 1
name: stopped-engine-waiting
steps:
  - id: waiting
    readonly: true
    timeout: 2s
    run: |
      touch started
      while [ ! -e release ]; do sleep 0.02; done
"#;

#[test]
fn the_time_the_engine_was_stopped_does_not_count_against_a_running_step() {
    let mut running = Test::new()
        .runbook(WAITING)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .spawn();
    running.wait_for_file("started", LIMIT);
    running.signal(Signal::SIGSTOP);
    // Stopped past the step's whole timeout: that is the scenario, not a synchronisation.
    std::thread::sleep(Duration::from_millis(2500));
    running.signal(Signal::SIGCONT);
    // The step is released at once: it ran well under 2 s of the engine's running time.
    std::fs::write(running.path().join("release"), "").expect("release");
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        !output.stdout.contains("timed out"),
        "{}",
        output.snapshot()
    );
}

/// The verify probe must hold for 2 s; the engine is stopped for longer than that while the
/// window is open, and the checked file is removed once it runs again.
const HOLDING: &str = r#"
version: 1
name: stopped-engine-hold
steps:
  - id: change
    readonly: true
    run: touch ok
    verify:
      - name: ok stays
        run: touch sampled; test -f ok
        hold: 2s
        interval: 100ms
"#;

#[test]
fn a_hold_window_does_not_count_the_time_the_engine_was_stopped() {
    let mut running = Test::new()
        .runbook(HOLDING)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .spawn();
    running.wait_for_file("sampled", LIMIT);
    running.signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_millis(3000));
    let sampled = running.path().join("sampled");
    std::fs::remove_file(&sampled).expect("remove the sample marker");
    running.signal(Signal::SIGCONT);
    // The first sample after the stop passes. Stopped time is not holding time: the window
    // still has most of its 2 s to go (counted from the stop, it would be over), and the file
    // is gone within it.
    running.wait_for_file("sampled", LIMIT);
    std::fs::remove_file(running.path().join("ok")).expect("remove ok");
    let output = running.finish(LIMIT);
    assert_ne!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("`hold` window"),
        "the hold failed: {}",
        output.snapshot()
    );
}
