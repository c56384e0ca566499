//! Secrets and injection through `runbook run` (SPEC §6, §9; RELIABILITY §4, §5): a secret a
//! step prints whole, byte by byte, on stderr, in a failure, from a probe, a compensation and a
//! hook, or base64-encoded, never reaches the terminal, the JSON log or the state directory;
//! hostile variable values reach a step byte for byte and run nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test, base64, json_events};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// Contains `&` and `-`, as RELIABILITY's fixture does.
const SECRET: &str = "Tr0ub4dor&3-xyzzy";

const MASK: &str = "••••••";

/// The secret and the encoded forms a step prints in these tests.
fn leaked_forms() -> Vec<String> {
    vec![
        SECRET.to_string(),
        base64(SECRET.as_bytes()),
        base64(format!("{SECRET}\n").as_bytes()),
    ]
}

/// Every file under `directory`, recursively.
fn files_under(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Fails the test if any form of the secret is in `text`.
fn assert_no_leak(text: &[u8], place: &str) {
    let text = String::from_utf8_lossy(text);
    for form in leaked_forms() {
        assert!(
            !text.contains(&form),
            "{form:?} leaked into {place}:\n{text}"
        );
    }
}

fn assert_no_leak_anywhere(output: &Output) {
    assert_no_leak(output.stdout.as_bytes(), "stdout");
    assert_no_leak(output.stderr.as_bytes(), "stderr");
    for file in files_under(&output.directory.join("state")) {
        let bytes = std::fs::read(&file).expect("read a state file");
        assert_no_leak(&bytes, &file.display().to_string());
    }
}

const LEAKY: &str = r#"
version: 1
name: leaky
vars:
  token:
    env: RB_TOKEN
    secret: true
    required: true
env:
  TOKEN: "{{vars.token}}"
steps:
  - id: whole
    run: |
      echo "token is $TOKEN"
      echo "on stderr: $TOKEN" >&2
    rollback: |
      echo "undoing with $TOKEN"
      echo "undoing on stderr with $TOKEN" >&2
  - id: split
    needs: [whole]
    run: |
      s="$TOKEN"
      for ((i = 0; i < ${#s}; i++)); do printf %s "${s:i:1}"; sleep 0.01; done
      echo
      for ((i = 0; i < ${#s}; i++)); do printf %s "${s:i:1}" >&2; sleep 0.01; done
      echo >&2
  - id: encoded
    needs: [split]
    run: |
      printf %s "$TOKEN" | base64
      echo "$TOKEN" | base64
  - id: probed
    needs: [encoded]
    run: "true"
    allow_failure: true
    verify:
      - name: token is not printed
        run: echo "probe saw $TOKEN"
        expect: { stdout_contains: "never printed" }
  - id: fails
    needs: [probed]
    run: |
      echo "about to fail with $TOKEN"
      echo "failing with $TOKEN" >&2
      exit 1
hooks:
  always:
    - run: echo "hook sees $TOKEN"
"#;

fn leaky(extra: &[&str]) -> Output {
    let output = Test::new()
        .runbook(LEAKY)
        .args(["run", "{file}", "--yes", "--state-dir", "{dir}/state"])
        .args(extra)
        .env("RB_TOKEN", SECRET)
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

#[test]
fn a_secret_never_reaches_the_terminal_or_the_state_directory() {
    let output = leaky(&["--progress", "plain"]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_no_leak_anywhere(&output);
    assert!(output.stdout.contains(MASK), "{}", output.snapshot());
    // The masked text is there where the secret was: printed whole, split, in the failure.
    for expected in [
        format!("token is {MASK}"),
        format!("on stderr: {MASK}"),
        format!("undoing with {MASK}"),
        format!("failing with {MASK}"),
        format!("probe saw {MASK}"),
        format!("hook sees {MASK}"),
    ] {
        assert!(
            output.stdout.contains(&expected),
            "{expected:?} missing:\n{}",
            output.snapshot()
        );
    }
}

#[test]
fn a_secret_never_reaches_the_json_log() {
    let output = leaky(&["--log-format", "json"]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_no_leak_anywhere(&output);
    let events = json_events(&output.stdout);
    let split: Vec<&str> = events
        .iter()
        .filter(|event| event["event"] == "step_output" && event["step"] == "split")
        .filter_map(|event| event["line"].as_str())
        .collect();
    assert_eq!(split, [MASK, MASK], "one masked line per stream");
    let probe = events
        .iter()
        .find(|event| event["event"] == "probe_finished")
        .expect("probe_finished");
    assert!(
        probe["message"]
            .as_str()
            .is_some_and(|message| message.contains(MASK)),
        "{probe}"
    );
}

#[test]
fn a_secret_written_as_an_output_is_not_kept_at_rest() {
    let output = Test::new()
        .runbook(
            r#"
version: 1
name: output-secret
vars:
  token: { env: RB_TOKEN, secret: true }
env:
  TOKEN: "{{vars.token}}"
steps:
  - id: login
    run: echo "session=$TOKEN" >> "$RUNBOOK_OUTPUT"
"#,
        )
        .args(["run", "{file}", "--log-format", "json"])
        .args(["--state-dir", "{dir}/state"])
        .env("RB_TOKEN", SECRET)
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_no_leak_anywhere(&output);
}

/// Hostile values, each with the file a successful injection would create.
const PAYLOADS: [&str; 7] = [
    "$(touch pwned1)",
    "`touch pwned2`",
    "x; touch pwned3",
    "'; touch pwned4; '",
    "x\ntouch pwned5",
    "a&b<c>\"d'e\\f$g",
    "{{run.id}} {{vars.p1}}",
];

#[test]
fn hostile_values_reach_the_step_byte_for_byte_and_run_nothing() {
    let count = PAYLOADS.len();
    let vars: String = (1..=count)
        .map(|n| format!("  p{n}: {{ required: true }}\n"))
        .collect();
    let env: String = (1..=count)
        .map(|n| format!("      P{n}: \"{{{{vars.p{n}}}}}\"\n"))
        .collect();
    let via_env: String = (1..=count)
        .map(|n| format!("      printf %s \"$P{n}\" > env_{n}\n"))
        .collect();
    let via_quote: String = (1..=count)
        .map(|n| format!("      printf %s {{{{quote vars.p{n}}}}} > quote_{n}\n"))
        .collect();
    let yaml = format!(
        "version: 1\nname: injection\nvars:\n{vars}steps:\n  - id: via_env\n    env:\n{env}    run: |\n{via_env}  - id: via_quote\n    run: |\n{via_quote}"
    );
    let mut test =
        Test::new()
            .runbook(&yaml)
            .args(["run", "{file}", "--yes", "--state-dir", "{dir}/state"]);
    for (index, payload) in PAYLOADS.iter().enumerate() {
        test = test.args(["--var".to_string(), format!("p{}={payload}", index + 1)]);
    }
    let output = test.run_within(LIMIT);
    assert_eq!(output.code, 0, "{}\n{yaml}", output.snapshot());
    for (index, payload) in PAYLOADS.iter().enumerate() {
        for path in ["env", "quote"] {
            let name = format!("{path}_{}", index + 1);
            let got = std::fs::read(output.directory.join(&name))
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(
                String::from_utf8_lossy(&got),
                *payload,
                "{name} is not byte for byte"
            );
        }
    }
    let pwned: Vec<String> = std::fs::read_dir(&output.directory)
        .expect("read the test directory")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("pwned"))
        .collect();
    assert!(pwned.is_empty(), "injected commands ran: {pwned:?}");
}
