//! Approval gates answered from elsewhere (SPEC §7): `runbook approve|deny RUN GATE` from a
//! second process while the run waits, `timeout` with `on_timeout`, and the distinct statuses
//! `approved`, `denied`, `timed_out` with who answered in the journal and the report.

mod common;

use std::time::Duration;

use common::{Output, Test, json_events, lines};
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// A gate between a step with a compensation and a deploy; a later step reads the gate's
/// status. `timeout` is long enough that only an answer ends the wait in the tests that give
/// one.
fn gated(timeout: &str, on_timeout: &str) -> String {
    format!(
        r#"
version: 1
name: gated
steps:
  - id: prepare
    run: echo prepare >> forward
    rollback: echo prepare >> undo
  - id: go_ahead
    needs: [prepare]
    approve: Deploy to production now?
    timeout: {timeout}
    on_timeout: {on_timeout}
  - id: deploy
    needs: [go_ahead]
    run: echo "deploy {{{{steps.go_ahead.status}}}}" >> forward
    rollback: echo deploy >> undo
"#
    )
}

fn start(yaml: &str) -> common::Running {
    Test::new()
        .runbook(yaml)
        .args([
            "run",
            "{file}",
            "--state-dir",
            "{dir}/state",
            "--log-format",
            "json",
        ])
        .spawn()
}

/// `runbook approve|deny last GATE` in the run's state dir, from a second process.
fn answer(directory: &std::path::Path, words: &[&str]) -> Output {
    let state = directory.join("state").display().to_string();
    Test::new()
        .args(words)
        .args(["--state-dir", &state])
        .env("USER", "alice")
        .run_within(LIMIT)
}

fn event<'a>(events: &'a [Value], name: &str, step: &str) -> &'a Value {
    events
        .iter()
        .find(|event| event["event"] == name && event["step"] == step)
        .unwrap_or_else(|| panic!("no `{name}` for `{step}` in {events:#?}"))
}

fn forward_end<'a>(events: &'a [Value], step: &str) -> &'a Value {
    events
        .iter()
        .find(|event| {
            event["event"] == "step_finished"
                && event["step"] == step
                && event["phase"] == "forward"
        })
        .unwrap_or_else(|| panic!("`{step}` did not finish: {events:#?}"))
}

#[test]
fn a_gate_is_approved_from_a_second_process() {
    let mut running = start(&gated("10m", "deny"));
    running.wait_for_stdout("\"approval_requested\"", LIMIT);
    let directory = running.path().to_path_buf();
    let approved = answer(&directory, &["approve", "last", "go_ahead"]);
    assert_eq!(approved.code, 0, "{}", approved.snapshot());
    assert!(
        approved.stdout.contains("approved gate `go_ahead` of run "),
        "{}",
        approved.snapshot()
    );
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "forward"),
        ["prepare", "deploy approved"]
    );
    let events = json_events(&output.stdout);
    let requested = event(&events, "approval_requested", "go_ahead");
    let help = requested["help"].as_str().expect("how to answer");
    assert!(
        help.contains("runbook approve ") && help.contains(" go_ahead`"),
        "{help}"
    );
    let answered = event(&events, "approval_answered", "go_ahead");
    assert_eq!(answered["approved"], true);
    assert_eq!(answered["by"], "alice");
    assert_eq!(answered["how"], "command");
    let end = forward_end(&events, "go_ahead");
    assert_eq!(end["status"], "approved");
    assert_eq!(end["message"], "approved by alice (command)");

    // The journal keeps who answered, and the report shows it.
    let report = Test::new()
        .args(["report", "last", "--state-dir"])
        .args([directory.join("state").display().to_string()])
        .run();
    assert_eq!(report.code, 0, "{}", report.snapshot());
    assert!(
        report.stdout.contains("approved by alice (command)"),
        "{}",
        report.stdout
    );
    let show = Test::new()
        .args(["show", "last", "--format", "json", "--state-dir"])
        .args([directory.join("state").display().to_string()])
        .run();
    let record: Value = serde_json::from_str(&show.stdout).expect("show JSON");
    let gate = record["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|step| step["id"] == "go_ahead")
        .expect("the gate");
    assert_eq!(gate["approval"]["by"], "alice");
    assert_eq!(gate["approval"]["how"], "command");
    assert_eq!(gate["forward"]["status"], "approved");
}

#[test]
fn a_denied_gate_rolls_back_and_says_who_denied_it_and_why() {
    let mut running = start(&gated("10m", "approve"));
    running.wait_for_stdout("\"approval_requested\"", LIMIT);
    let directory = running.path().to_path_buf();
    let denied = answer(
        &directory,
        &[
            "deny",
            "last",
            "go_ahead",
            "--reason",
            "error rate still rising",
        ],
    );
    assert_eq!(denied.code, 0, "{}", denied.snapshot());
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["prepare"]);
    assert_eq!(lines(&output.directory, "undo"), ["prepare"]);
    let events = json_events(&output.stdout);
    let end = forward_end(&events, "go_ahead");
    assert_eq!(end["status"], "denied");
    assert_eq!(
        end["message"],
        "denied by alice (command): error rate still rising"
    );
    let answered = event(&events, "approval_answered", "go_ahead");
    assert_eq!(answered["reason"], "error rate still rising");

    // The run has finished: no gate waits any more.
    let late = answer(&directory, &["approve", "last", "go_ahead"]);
    assert_eq!(late.code, 2, "{}", late.snapshot());
    assert!(
        late.stderr.contains("already finished (rolled back)"),
        "{}",
        late.snapshot()
    );
}

#[test]
fn a_gate_nobody_answers_times_out_to_its_default() {
    // `on_timeout: deny` (the default answer): the run rolls back.
    let output = start(&gated("1s", "deny")).finish(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["prepare"]);
    assert_eq!(lines(&output.directory, "undo"), ["prepare"]);
    let events = json_events(&output.stdout);
    let end = forward_end(&events, "go_ahead");
    assert_eq!(end["status"], "timed_out");
    assert_eq!(
        end["message"],
        "nobody answered in time: denied by `on_timeout`"
    );
    let answered = event(&events, "approval_answered", "go_ahead");
    assert_eq!(answered["how"], "timeout");
    assert_eq!(answered["by"], Value::Null);

    // `on_timeout: approve`: the run goes on, and a later step can read `timed_out`.
    let output = start(&gated("1s", "approve")).finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "forward"),
        ["prepare", "deploy timed_out"]
    );
}

#[test]
fn a_denied_gate_with_allow_failure_lets_a_later_if_read_it() {
    let yaml = r#"
version: 1
name: ask
steps:
  - id: ask
    approve: Try the quick fix first?
    timeout: 1s
    allow_failure: true
  - id: quick_fix
    needs: [ask]
    if: "{{eq steps.ask.status 'timed_out'}}"
    readonly: true
    run: echo "quick fix after {{steps.ask.status}}" >> forward
"#;
    let output = start(yaml).finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "forward"),
        ["quick fix after timed_out"]
    );
}

#[test]
fn answering_a_gate_that_is_not_waiting_is_refused() {
    let mut running = start(&gated("10m", "deny"));
    running.wait_for_stdout("\"approval_requested\"", LIMIT);
    let directory = running.path().to_path_buf();
    let wrong = answer(&directory, &["approve", "last", "deploy"]);
    assert_eq!(wrong.code, 2, "{}", wrong.snapshot());
    assert!(
        wrong
            .stderr
            .contains("is not waiting at a gate `deploy` (waiting now: `go_ahead`)"),
        "{}",
        wrong.snapshot()
    );
    let approved = answer(&directory, &["approve", "last", "go_ahead"]);
    assert_eq!(approved.code, 0, "{}", approved.snapshot());
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let late = answer(&directory, &["deny", "last", "go_ahead"]);
    insta::assert_snapshot!(
        "answers_refused_and_taken",
        [wrong, approved, late]
            .iter()
            .map(|output| redact_run_ids(&output.snapshot()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Run ids (`20261204_222232-90431`) replaced by `[RUN]`.
fn redact_run_ids(text: &str) -> String {
    regex::Regex::new(r"\d{8}_\d{6}-[0-9a-f]{5}")
        .expect("a valid pattern")
        .replace_all(text, "[RUN]")
        .into_owned()
}

#[test]
fn on_timeout_needs_a_gate_and_a_timeout() {
    let yaml = r#"
version: 1
name: bad
steps:
  - id: gate
    approve: Go?
    on_timeout: approve
  - id: work
    readonly: true
    run: "true"
    on_timeout: deny
"#;
    let output = Test::new().runbook(yaml).args(["validate", "{file}"]).run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("on_timeout_misplaced", output.snapshot());
}

#[test]
fn plan_shows_the_gate_timeout_and_its_answer() {
    let output = Test::new()
        .runbook(&gated("10m", "approve"))
        .args(["plan", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("go_ahead  (needs prepare)  [timeout 10m, then approve]"),
        "{}",
        output.stdout
    );
}

#[test]
fn an_answer_given_while_the_engine_was_down_counts_when_the_run_resumes() {
    let mut running = start(&gated("10m", "deny"));
    running.wait_for_stdout("\"approval_requested\"", LIMIT);
    let directory = running.path().to_path_buf();
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = running.finish(LIMIT);
    assert_eq!(killed.code, -1, "{}", killed.snapshot());

    let approved = answer(&directory, &["approve", "last", "go_ahead"]);
    assert_eq!(approved.code, 0, "{}", approved.snapshot());
    let resumed = answer(&directory, &["resume", "last", "--log-format", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(
        lines(&directory, "forward"),
        ["prepare", "deploy approved"],
        "prepare ran once"
    );
    let events = json_events(&resumed.stdout);
    assert_eq!(
        forward_end(&events, "go_ahead")["message"],
        "approved by alice (command)"
    );
}

fn have_script() -> bool {
    std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn on_a_terminal_a_gate_answered_by_its_timeout_leaves_the_next_answer_to_the_next_gate() {
    if !have_script() {
        eprintln!("skipped: util-linux `script` is not installed, so no pseudo-terminal");
        return;
    }
    let yaml = r#"
version: 1
name: two-gates
steps:
  - id: first
    approve: First?
    timeout: 1s
    on_timeout: approve
  - id: second
    needs: [first]
    approve: Second?
  - id: work
    needs: [second]
    readonly: true
    run: echo worked > worked
"#;
    // `y` is typed once the second question is journaled: the first gate, ended by its
    // timeout, must not have left a reader behind that takes it.
    let typist = r#"(until grep -qs '"approval_requested","step":"second"' state/runs/*/journal.jsonl; do sleep 0.05; done; echo y) | script -qec "$0 $*" /dev/null"#;
    let output = Test::new()
        .runbook(yaml)
        .args([
            "run",
            "{file}",
            "--state-dir",
            "{dir}/state",
            "--progress",
            "plain",
        ])
        .wrap(["sh", "-c", typist])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("first: timed out in 1s") && output.stdout.contains("(terminal)"),
        "{}",
        output.snapshot()
    );
    assert_eq!(lines(&output.directory, "worked"), ["worked"]);
}
