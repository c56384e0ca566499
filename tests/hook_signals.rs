//! Signals while hooks run are honoured, not lost (issue 10, item 12): the running hook is
//! stopped, the hooks after it do not start, and the run exits 130 or 143 (SIGINT, SIGTERM),
//! instead of waiting for the hook's timeout and exiting 0. During `on_start` no step runs.

mod common;

use std::time::Duration;

use common::{Test, process_alive};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(60);

const ALWAYS: &str = r#"
version: 1
name: hooked
steps:
  - id: a
    readonly: true
    run: "true"
hooks:
  always:
    - run: |
        echo $$ > hook.pid.new && mv hook.pid.new hook.pid
        sleep 1000
    - run: touch second-hook-ran
"#;

const ON_START: &str = r#"
version: 1
name: hooked-start
steps:
  - id: a
    readonly: true
    run: touch step-ran
hooks:
  on_start:
    - run: |
        echo $$ > hook.pid.new && mv hook.pid.new hook.pid
        sleep 1000
"#;

fn pid(directory: &std::path::Path) -> i32 {
    std::fs::read_to_string(directory.join("hook.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn a_signal_during_an_always_hook_stops_the_hooks_and_exits_with_its_code() {
    for (signal, code, name) in [
        (Signal::SIGINT, 130, "SIGINT"),
        (Signal::SIGTERM, 143, "SIGTERM"),
    ] {
        let mut running = Test::new()
            .runbook(ALWAYS)
            .args([
                "run",
                "{file}",
                "--progress",
                "plain",
                "--state-dir",
                "{dir}/state",
            ])
            .spawn();
        running.wait_for_file("hook.pid", LIMIT);
        running.signal(signal);
        let output = running.finish(LIMIT);
        assert_eq!(output.code, code, "{}", output.snapshot());
        assert!(
            output
                .stdout
                .contains(&format!("{name} received while hook `")),
            "{}",
            output.snapshot()
        );
        assert!(
            !output.directory.join("second-hook-ran").exists(),
            "no hook starts after the signal"
        );
        assert!(
            !process_alive(pid(&output.directory)),
            "the hook was stopped"
        );
    }
}

#[test]
fn a_signal_during_on_start_runs_no_step() {
    let mut running = Test::new()
        .runbook(ON_START)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .spawn();
    running.wait_for_file("hook.pid", LIMIT);
    running.signal(Signal::SIGTERM);
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 143, "{}", output.snapshot());
    assert!(
        !output.directory.join("step-ran").exists(),
        "{}",
        output.snapshot()
    );
    assert!(
        !process_alive(pid(&output.directory)),
        "the hook was stopped"
    );
}
