//! Step features of `runbook run` (SPEC §4, §5, §7, §8): retries with backoff, outputs passed
//! between steps and to a rollback, probes against real local servers, approval gates, `-j`,
//! and hooks. Every network connection goes to 127.0.0.1 inside the test.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::{Output, Test, json_events, lines};
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

fn test(yaml: &str) -> Test {
    Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
}

fn finish(test: Test) -> Output {
    let output = test.run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

fn run(yaml: &str, extra: &[&str]) -> Output {
    finish(test(yaml).args(["--yes"]).args(extra))
}

fn run_json(yaml: &str, extra: &[&str]) -> (Output, Vec<Value>) {
    let output = run(yaml, &[extra, &["--log-format", "json"]].concat());
    let events = json_events(&output.stdout);
    (output, events)
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["event"] == name)
        .collect()
}

#[test]
fn a_step_is_retried_with_backoff_until_it_succeeds() {
    let (output, events) = run_json(
        r#"
version: 1
name: retries
steps:
  - id: flaky
    retry: { attempts: 3, delay: 100ms, backoff: 2 }
    run: |
      n=$(( $(cat count 2>/dev/null || echo 0) + 1 ))
      echo "$n" > count
      [ "$n" -ge 3 ]
"#,
        &[],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "count"), ["3"]);
    let failed = named(&events, "attempt_failed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0]["attempt"], 1);
    assert_eq!(failed[0]["retry_in"], 100);
    assert_eq!(failed[1]["attempt"], 2);
    assert_eq!(failed[1]["retry_in"], 200);
    let done = named(&events, "step_finished");
    assert_eq!(done[0]["status"], "succeeded");
    assert_eq!(done[0]["attempts"], 3);
}

#[test]
fn outputs_reach_later_steps_and_the_steps_own_rollback() {
    let yaml = r#"
version: 1
name: outputs
steps:
  - id: x
    run: |
      echo "y=hello world" >> "$RUNBOOK_OUTPUT"
      {
        echo "notes<<EOF"
        echo "line 1"
        echo "line 'two' \$HOME"
        echo "EOF"
      } >> "$RUNBOOK_OUTPUT"
    rollback:
      run: printf %s {{quote steps.x.outputs.notes}} > rolled
      only_if_succeeded: true
  - id: reader
    needs: [x]
    run: |
      printf %s {{quote steps.x.outputs.y}} > got_y
      printf %s {{quote steps.x.outputs.notes}} > got_notes
  - id: boom
    needs: [reader]
    run: exit 1
"#;
    let output = run(yaml, &[]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let read = |name: &str| {
        std::fs::read_to_string(output.directory.join(name))
            .unwrap_or_else(|error| panic!("{name}: {error}\n{}", output.snapshot()))
    };
    let notes = "line 1\nline 'two' $HOME";
    assert_eq!(read("got_y"), "hello world");
    assert_eq!(read("got_notes"), notes);
    assert_eq!(read("rolled"), notes);
}

/// A tiny HTTP server on 127.0.0.1: the n-th request (from 0) gets `respond(n)`.
fn serve(respond: impl Fn(usize) -> (u16, &'static str) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for (count, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let (status, body) = respond(count);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Status\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn probe_event<'a>(events: &'a [Value], probe: &str) -> &'a Value {
    events
        .iter()
        .find(|event| event["event"] == "probe_finished" && event["probe"] == probe)
        .unwrap_or_else(|| panic!("no probe_finished for {probe}: {events:?}"))
}

#[test]
fn an_http_probe_within_a_window_passes_once_the_server_is_ready() {
    let port = serve(|count| {
        if count < 2 {
            (503, "starting")
        } else {
            (200, "ready")
        }
    });
    let yaml = format!(
        r#"
version: 1
name: http-within
steps:
  - id: check
    verify:
      - name: health
        http: {{ url: "http://127.0.0.1:{port}/health", status: 200, body_contains: ready }}
        within: 30s
        interval: 100ms
"#
    );
    let (output, events) = run_json(&yaml, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let probe = probe_event(&events, "health");
    assert_eq!(probe["passed"], true, "{probe}");
    assert!(probe["samples"].as_u64().is_some_and(|n| n >= 3), "{probe}");
}

#[test]
fn an_http_hold_window_fails_when_the_server_starts_failing() {
    let port = serve(|count| {
        if count < 3 {
            (200, "ok")
        } else {
            (500, "boom")
        }
    });
    let yaml = format!(
        r#"
version: 1
name: http-hold
steps:
  - id: before
    run: "true"
    rollback: echo before >> undo
  - id: watch
    needs: [before]
    verify:
      - name: stays healthy
        http: {{ url: "http://127.0.0.1:{port}/", status: 200 }}
        hold: 10m
        interval: 100ms
"#
    );
    let (output, events) = run_json(&yaml, &[]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let probe = probe_event(&events, "stays healthy");
    assert_eq!(probe["passed"], false, "{probe}");
    assert_eq!(probe["samples"], 4, "{probe}");
    let message = probe["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("expected") && message.contains("200") && message.contains("500"),
        "the message says what was expected and seen: {message}"
    );
    assert_eq!(lines(&output.directory, "undo"), ["before"]);
}

#[test]
fn tcp_and_command_probes_pass() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    let yaml = format!(
        r#"
version: 1
name: probes
steps:
  - id: check
    verify:
      - name: port open
        tcp: "127.0.0.1:{port}"
      - name: few errors
        run: echo 3
        expect: {{ stdout_number: "< 5" }}
"#
    );
    let (output, events) = run_json(&yaml, &[]);
    drop(listener);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(probe_event(&events, "port open")["passed"], true);
    assert_eq!(probe_event(&events, "few errors")["passed"], true);
}

#[test]
fn a_command_probe_with_a_number_out_of_range_fails_the_step() {
    let (output, events) = run_json(
        r#"
version: 1
name: number
steps:
  - id: check
    verify:
      - name: few errors
        run: echo 7
        expect: { stdout_number: "< 5" }
"#,
        &[],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let probe = probe_event(&events, "few errors");
    assert_eq!(probe["passed"], false);
    let message = probe["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("< 5") && message.contains('7'),
        "{message}"
    );
}

const GATED: &str = r#"
version: 1
name: gated
steps:
  - id: prepare
    run: "true"
    rollback: echo prepare >> undo
  - id: gate
    needs: [prepare]
    approve: Deploy now?
  - id: deploy
    needs: [gate]
    run: echo deploy >> forward
"#;

#[test]
fn a_gate_without_a_terminal_or_yes_fails_and_rolls_back() {
    let output = finish(test(GATED));
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(lines(&output.directory, "forward").is_empty());
    assert_eq!(lines(&output.directory, "undo"), ["prepare"]);
    assert!(output.stdout.contains("--yes"), "{}", output.snapshot());
}

#[test]
fn yes_approves_the_gate() {
    let output = run(GATED, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["deploy"]);
}

const TWO_GATES: &str = r#"
version: 1
name: two-gates
steps:
  - id: first
    approve: First?
  - id: middle
    needs: [first]
    run: echo middle >> forward
  - id: second
    needs: [middle]
    approve: Second?
  - id: last
    needs: [second]
    run: echo last >> forward
"#;

#[test]
fn approve_id_approves_just_that_gate() {
    let output = finish(test(TWO_GATES).args(["--approve", "first"]));
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["middle"]);
    assert!(
        output.stdout.contains("--approve second"),
        "{}",
        output.snapshot()
    );

    let both = finish(test(TWO_GATES).args(["--approve", "first", "--approve", "second"]));
    assert_eq!(both.code, 0, "{}", both.snapshot());
    assert_eq!(lines(&both.directory, "forward"), ["middle", "last"]);
}

fn have_script() -> bool {
    std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs the binary on a pseudo-terminal through util-linux `script`, typing `answer`.
fn on_a_terminal(answer: &str) -> Output {
    finish(
        test(GATED)
            .wrap(["sh", "-c", r#"exec script -qec "$0 $*" /dev/null"#])
            .stdin(answer.as_bytes()),
    )
}

#[test]
fn a_gate_on_a_terminal_asks_and_takes_the_answer() {
    if !have_script() {
        eprintln!("skipped: util-linux `script` is not installed, so no pseudo-terminal");
        return;
    }
    let yes = on_a_terminal("y\n");
    assert_eq!(yes.code, 0, "{}", yes.snapshot());
    assert!(yes.stdout.contains("Deploy now?"), "{}", yes.snapshot());
    assert_eq!(lines(&yes.directory, "forward"), ["deploy"]);

    let no = on_a_terminal("n\n");
    assert_eq!(no.code, 1, "{}", no.snapshot());
    assert!(lines(&no.directory, "forward").is_empty());
    assert_eq!(lines(&no.directory, "undo"), ["prepare"]);
}

#[test]
fn success_exits_0() {
    let output = run(
        "version: 1\nname: ok\nsteps:\n  - id: a\n    run: echo a >> forward\n",
        &[],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "forward"), ["a"]);
    assert!(
        output.stdout.contains("succeeded (exit 0)"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn jobs_1_runs_independent_steps_one_at_a_time() {
    // Each step waits up to a second for another to be running: under `-j 1` none is, while
    // steps running in parallel would interleave their lines.
    let step = |id: &str| {
        format!(
            r#"
  - id: {id}
    run: |
      echo "start {id}" >> log
      for _ in $(seq 20); do
        [ $(( $(grep -c start log) - $(grep -c end log || true) )) -gt 1 ] && break
        sleep 0.05
      done
      echo "end {id}" >> log"#
        )
    };
    let yaml = format!(
        "version: 1\nname: serial\nconcurrency: 4\nsteps:{}{}{}\n",
        step("a"),
        step("b"),
        step("c")
    );
    let output = run(&yaml, &["-j", "1"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let log = lines(&output.directory, "log");
    assert_eq!(log.len(), 6, "{log:?}");
    for pair in log.chunks(2) {
        let id = pair[0].strip_prefix("start ").expect("a start line");
        assert_eq!(pair[1], format!("end {id}"), "overlap: {log:?}");
    }
}

const HOOKED: &str = r#"
version: 1
name: hooked
vars:
  fail: "no"
env:
  FAIL: "{{vars.fail}}"
steps:
  - id: a
    run: '[ "$FAIL" != yes ]'
    rollback: echo undo >> hooks
hooks:
  on_success:
    - run: |
        echo "on_success {{run.status}}" >> hooks
        exit 7
  on_failure:
    - run: |
        echo "on_failure {{run.status}}" >> hooks
        exit 7
  always:
    - run: echo "always {{run.status}}" >> hooks
"#;

#[test]
fn hooks_see_the_run_status_and_a_failing_hook_changes_nothing() {
    let success = run(HOOKED, &[]);
    assert_eq!(success.code, 0, "{}", success.snapshot());
    assert_eq!(
        lines(&success.directory, "hooks"),
        ["on_success succeeded", "always succeeded"]
    );
    assert!(
        success.stdout.contains("failed: exit code 7"),
        "the failing hook is reported: {}",
        success.snapshot()
    );

    let failure = run(HOOKED, &["--var", "fail=yes"]);
    assert_eq!(failure.code, 1, "{}", failure.snapshot());
    assert_eq!(
        lines(&failure.directory, "hooks"),
        ["undo", "on_failure rolled back", "always rolled back"]
    );
}
