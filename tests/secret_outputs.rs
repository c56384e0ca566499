//! Step outputs a step promises (SPEC §4 `outputs`): a promised key that is not written fails
//! the step; reading an undeclared key is a `validate` error; a secret output is masked in
//! every output, refused outside `env`, kept 0600 outside the journal, and still there for a
//! later `runbook rollback RUN`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Output, Test, json_events};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

const MASK: &str = "••••••";

/// What the `issue` step writes as its secret output.
const TOKEN: &str = "tok-Zq81-secret-value";

/// `issue` writes a secret and a plain output; its compensation and `use` read the secret
/// through `env` only. `use` fails when the var `fail` is `yes`.
const ISSUE: &str = r#"
version: 1
name: issue-token
vars:
  fail: { default: "no" }
steps:
  - id: issue
    outputs:
      - key_id
      - { name: token, secret: true }
    run: |
      echo "token=tok-Zq81-secret-value" >> "$RUNBOOK_OUTPUT"
      echo "key_id=key-17" >> "$RUNBOOK_OUTPUT"
    rollback:
      run: |
        echo "revoking $TOKEN of {{steps.issue.outputs.key_id}}"
        printf '%s\n' "$TOKEN" >> revoked
      env:
        TOKEN: "{{steps.issue.outputs.token}}"
  - id: use
    needs: [issue]
    env:
      TOKEN: "{{steps.issue.outputs.token}}"
      FAIL: "{{vars.fail}}"
    run: |
      echo "using $TOKEN"
      echo "stderr $TOKEN" >&2
      test "$FAIL" != yes
"#;

/// Every file under `directory`, recursively.
fn files_under(directory: &Path) -> Vec<PathBuf> {
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

fn assert_no_token(text: &str, place: &str) {
    assert!(
        !text.contains(TOKEN),
        "the token leaked into {place}:\n{text}"
    );
}

/// No file of the state directory holds the token, except the one kept for rollback and the
/// copy of the runbook as run (here the runbook itself stands in for the issuer and writes
/// the token literally; the copy is the user's own text, byte for byte).
fn assert_state_keeps_token_only_aside(state: &Path) {
    for file in files_under(state) {
        if file
            .parent()
            .is_some_and(|parent| parent.ends_with("secret-outputs"))
        {
            continue;
        }
        if file.file_name().is_some_and(|name| name == "runbook.yaml") {
            let copy = std::fs::read_to_string(&file).expect("the runbook copy");
            assert!(
                copy.trim_start().starts_with("version: 1\n"),
                "the copy of the runbook as run: {copy}"
            );
            continue;
        }
        let text =
            String::from_utf8_lossy(&std::fs::read(&file).expect("read a state file")).into_owned();
        assert_no_token(&text, &file.display().to_string());
    }
}

fn no_panic(output: &Output) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
}

/// Runs `runbook ARGS --state-dir STATE` with `directory` as the working directory.
fn engine(directory: &Path, args: &[&str]) -> Output {
    let state = directory.join("state").display().to_string();
    let output = Test::new()
        .current_dir(directory)
        .args(args)
        .args(["--state-dir", &state])
        .run_within(LIMIT);
    no_panic(&output);
    output
}

fn only_run(state: &Path) -> String {
    let runs: Vec<String> = std::fs::read_dir(state.join("runs"))
        .expect("runs directory")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

fn run_issue(extra: &[&str]) -> Output {
    let output = Test::new()
        .runbook(ISSUE)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(extra)
        .run_within(LIMIT);
    no_panic(&output);
    output
}

#[test]
fn a_secret_output_is_masked_everywhere_and_reaches_the_compensation_of_a_failed_run() {
    let output = run_issue(&["--log-format", "json", "--var", "fail=yes"]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_no_token(&output.stdout, "the JSON events");
    assert_no_token(&output.stderr, "stderr");
    let events = json_events(&output.stdout);
    let lines: Vec<&str> = events
        .iter()
        .filter(|event| event["event"] == "step_output")
        .filter_map(|event| event["line"].as_str())
        .collect();
    assert!(lines.contains(&"using ••••••"), "{lines:?}");
    assert!(lines.contains(&"stderr ••••••"), "{lines:?}");
    assert!(
        lines.contains(&"revoking •••••• of key-17"),
        "the compensation gets the value, printed masked: {lines:?}"
    );
    let finished = events
        .iter()
        .find(|event| {
            event["event"] == "step_finished"
                && event["step"] == "issue"
                && event["phase"] == "forward"
        })
        .expect("issue finished");
    assert_eq!(
        finished["outputs"],
        serde_json::json!([["token", MASK], ["key_id", "key-17"]]),
        "a plain output is recorded as it is"
    );
    let revoked = std::fs::read_to_string(output.directory.join("revoked")).expect("revoked");
    assert_eq!(
        revoked,
        format!("{TOKEN}\n"),
        "the real value reached the process"
    );
    assert_state_keeps_token_only_aside(&output.directory.join("state"));
}

#[test]
fn a_secret_output_is_kept_private_for_a_later_rollback_and_masked_in_show_and_reports() {
    let first = run_issue(&[]);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    assert_no_token(&first.stdout, "stdout");
    assert_no_token(&first.stderr, "stderr");
    let directory = first.directory.clone();
    let state = directory.join("state");
    let run = only_run(&state);
    let kept = state.join("runs").join(&run).join("secret-outputs");
    let kept_file = kept.join("issue.json");
    let mode = std::fs::metadata(&kept_file)
        .expect("the secret output is kept")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "readable by the owner only");
    let folder_mode = std::fs::metadata(&kept)
        .expect("folder")
        .permissions()
        .mode();
    assert_eq!(folder_mode & 0o777, 0o700);
    let kept_text = std::fs::read_to_string(&kept_file).expect("read");
    assert!(kept_text.contains(TOKEN), "{kept_text}");
    assert!(
        !kept_text.contains("key-17"),
        "only secret outputs are kept aside"
    );
    let journal = std::fs::read_to_string(state.join("runs").join(&run).join("journal.jsonl"))
        .expect("journal");
    assert!(
        journal.contains(MASK),
        "the journal records the output masked"
    );
    assert!(!directory.join("revoked").exists());

    let rolled = engine(&directory, &["rollback", &run]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_no_token(&rolled.stdout, "rollback stdout");
    assert_no_token(&rolled.stderr, "rollback stderr");
    assert!(
        rolled.stdout.contains("revoking •••••• of key-17")
            || rolled.stderr.contains("revoking •••••• of key-17"),
        "{}",
        rolled.snapshot()
    );
    let revoked = std::fs::read_to_string(directory.join("revoked")).expect("revoked");
    assert_eq!(
        revoked,
        format!("{TOKEN}\n"),
        "a later rollback gets the real value"
    );
    assert_state_keeps_token_only_aside(&state);

    let show = engine(&directory, &["show", &run]);
    assert_eq!(show.code, 0, "{}", show.snapshot());
    assert_no_token(&show.stdout, "show");
    assert!(show.stdout.contains(MASK), "{}", show.stdout);
    assert!(show.stdout.contains("key-17"), "{}", show.stdout);
    for format in ["md", "html", "json"] {
        let report = engine(&directory, &["report", &run, "--format", format]);
        assert_eq!(report.code, 0, "{}", report.snapshot());
        assert_no_token(&report.stdout, &format!("the {format} report"));
    }
}

#[test]
fn a_missing_promised_output_fails_the_step() {
    let output = Test::new()
        .runbook(
            r#"
version: 1
name: promise
steps:
  - id: issue
    outputs: [key_id, { name: token, secret: true }]
    run: echo "key_id=k1" >> "$RUNBOOK_OUTPUT"
    rollback: echo undone >> undo
  - id: after
    needs: [issue]
    run: touch "$MARKER"
"#,
        )
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let all = format!("{}{}", output.stdout, output.stderr);
    assert!(
        all.contains("step `issue` did not write promised output `token`"),
        "{}",
        output.snapshot()
    );
    assert!(!output.marker_exists(), "a dependent must not run");
    assert_eq!(
        std::fs::read_to_string(output.directory.join("undo")).expect("compensated"),
        "undone\n"
    );
}

fn validate(runbook: &str) -> Output {
    let output = Test::new()
        .runbook(runbook)
        .args(["validate", "{file}"])
        .run_within(LIMIT);
    no_panic(&output);
    output
}

#[test]
fn a_secret_output_is_refused_outside_env() {
    let output = validate(
        r#"
version: 1
name: leak
steps:
  - id: issue
    outputs: [{ name: token, secret: true }]
    run: echo "token=abc123" >> "$RUNBOOK_OUTPUT"
  - id: use
    needs: [issue]
    if: "{{steps.issue.outputs.token}}"
    run: echo {{quote steps.issue.outputs.token}}
    env:
      TOKEN: "{{steps.issue.outputs.token}}"
"#,
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("secret output `steps.issue.outputs.token` is pasted into `steps[1].run`"),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stderr
            .contains("secret output `steps.issue.outputs.token` is pasted into `steps[1].if`"),
        "{}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("`steps[1].env.TOKEN`"),
        "env is where it belongs: {}",
        output.stderr
    );
    assert!(
        output.stderr.contains("runbook.yaml:11:"),
        "{}",
        output.stderr
    );
}

#[test]
fn reading_an_undeclared_output_is_a_validate_error_with_a_suggestion() {
    let output = validate(
        r#"
version: 1
name: typo
steps:
  - id: issue
    outputs: [key_id, { name: token, secret: true }]
    run: echo "key_id=k" >> "$RUNBOOK_OUTPUT"
  - id: use
    needs: [issue]
    run: echo {{quote steps.issue.outputs.key_di}}
"#,
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("step `issue` does not declare output `key_di` (in `steps[1].run`)"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("did you mean `key_id`?"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("runbook.yaml:10:"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_bad_outputs_entry_is_reported_at_its_place() {
    let output = validate(
        r#"
version: 1
name: bad
steps:
  - id: issue
    outputs: [token, { name: token, secret: true }, { name: x, secrt: true }]
    run: "true"
"#,
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(output.stderr.contains("secrt"), "{}", output.stderr);
    let output = validate(
        r#"
version: 1
name: bad
steps:
  - id: issue
    outputs: [token, { name: token, secret: true }]
    run: "true"
"#,
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("step `issue` declares output `token` twice"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_resumed_run_passes_a_kept_secret_output_to_the_steps_left() {
    let runbook = r#"
version: 1
name: resume-token
steps:
  - id: issue
    outputs: [{ name: token, secret: true }]
    run: echo "token=tok-Zq81-secret-value" >> "$RUNBOOK_OUTPUT"
  - id: use
    needs: [issue]
    env: { TOKEN: "{{steps.issue.outputs.token}}" }
    run: |
      echo $$ >> pids
      touch started
      while [ ! -f release ]; do sleep 0.05; done
      printf '%s\n' "$TOKEN" > used
      echo "used $TOKEN"
"#;
    let mut running = Test::new()
        .runbook(runbook)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .spawn();
    running.wait_for_file("started", LIMIT);
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let crashed = running.finish(LIMIT);
    let directory = crashed.directory.clone();
    for pid in std::fs::read_to_string(directory.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(!directory.join("used").exists());
    std::fs::write(directory.join("release"), "").expect("release");
    let run = only_run(&directory.join("state"));
    let resumed = engine(&directory, &["resume", &run]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_no_token(&resumed.stdout, "resume stdout");
    assert_no_token(&resumed.stderr, "resume stderr");
    assert_eq!(
        std::fs::read_to_string(directory.join("used")).expect("used"),
        format!("{TOKEN}\n"),
        "the step run again by resume gets the real value"
    );
    assert_state_keeps_token_only_aside(&directory.join("state"));
}

#[test]
fn the_example_issues_a_token_and_a_later_rollback_revokes_it() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("secret-output.yaml");
    let text = std::fs::read_to_string(example).expect("example");
    let first = Test::new()
        .runbook(&text)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(["--var", "work_dir={dir}/work"])
        .run_within(LIMIT);
    no_panic(&first);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    let run = only_run(&directory.join("state"));
    let kept = directory
        .join("state/runs")
        .join(&run)
        .join("secret-outputs/issue_token.json");
    let kept: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(kept).expect("kept")).expect("JSON");
    let token = kept
        .iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.clone())
        .expect("the token is kept");
    assert_eq!(token.len(), 32, "{token}");
    assert!(
        first.stdout.contains("calling the API with ••••••"),
        "{}",
        first.stdout
    );
    let rolled = engine(&directory, &["rollback", &run]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    for text in [&first.stdout, &first.stderr, &rolled.stdout, &rolled.stderr] {
        assert!(!text.contains(&token), "the token leaked:\n{text}");
    }
    let revoked = std::fs::read_to_string(directory.join("work/revoked")).expect("revoked");
    assert_eq!(revoked, format!("revoked deploy-{run}\n"));
}

#[test]
fn a_later_rollback_without_the_kept_value_fails_naming_it_rather_than_passing_the_mask() {
    let first = run_issue(&[]);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    let run = only_run(&directory.join("state"));
    std::fs::remove_dir_all(
        directory
            .join("state/runs")
            .join(&run)
            .join("secret-outputs"),
    )
    .expect("remove the kept values");
    let rolled = engine(&directory, &["rollback", &run]);
    assert_eq!(rolled.code, 3, "{}", rolled.snapshot());
    let all = format!("{}{}", rolled.stdout, rolled.stderr);
    assert!(
        all.contains("steps.issue.outputs.token"),
        "the message names the missing output:\n{all}"
    );
    assert!(
        !directory.join("revoked").exists(),
        "the compensation must not run with the mask as the token"
    );
}
