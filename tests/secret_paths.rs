//! Secrecy is a property of the value (SPEC §9; issue 10, items 1 and 2): every template
//! outside `env` that can reach a secret without naming `vars.<secret>` (a parent path, the
//! whole context through `this` or `@root`, a var whose default reads a secret, the
//! environment variable a secret comes from) is refused by `validate`; a secret that reaches a
//! script's context anyway (a step output holding it) is masked before the script is
//! rendered; a secret used as an output key is masked like a value.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Output, Test, json_events};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

const SECRET: &str = "Hunter2-q9Zx-secret";

const MASK: &str = "••••••";

/// A runbook whose step `a` runs `script`, with a secret `tok` read from `RB_TOKEN`, a var
/// `derived` whose default embeds it and one `from_env` whose default reads its source.
fn runbook(script: &str) -> String {
    format!(
        r#"
version: 1
name: secret-paths
vars:
  tok: {{ env: RB_TOKEN, secret: true }}
  derived: {{ default: "x-{{{{vars.tok}}}}" }}
  from_env: {{ default: "{{{{env.RB_TOKEN}}}}" }}
  twice: {{ default: "{{{{vars.derived}}}}" }}
  plain: {{ default: "hello" }}
env:
  TOKEN: "{{{{vars.tok}}}}"
  DERIVED: "{{{{vars.derived}}}}"
steps:
  - id: a
    readonly: true
    run: |
      printf %s "$DERIVED" > "$MARKER"
      echo "{script}"
"#
    )
}

fn no_panic(output: &Output) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
}

fn assert_no_secret(text: &str, place: &str) {
    assert!(
        !text.contains(SECRET),
        "the secret leaked into {place}:\n{text}"
    );
}

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

#[test]
fn every_path_to_a_secret_outside_env_is_refused_by_validate_and_run() {
    let cases = [
        ("{{../vars.tok}}", "secret `vars.tok`"),
        ("{{#if true}}{{../vars.tok}}{{/if}}", "secret `vars.tok`"),
        ("{{../../vars.tok}}", "secret `vars.tok`"),
        ("{{json this}}", "`this` reads the whole template context"),
        ("{{this}}", "`this` reads the whole template context"),
        (
            "{{#each this}}{{json this}}{{/each}}",
            "`this` reads the whole template context",
        ),
        (
            "{{lookup this \"vars\"}}",
            "`this` reads the whole template context",
        ),
        (
            "{{#each (lookup this \"vars\")}}{{this}}{{/each}}",
            "`this` reads the whole template context",
        ),
        ("{{json @root}}", "`@root` reads the whole template context"),
        (
            "{{lookup @root.vars \"tok\"}}",
            "`vars` alone is not a value",
        ),
        (
            "{{json ../this}}",
            "`../this` reads the whole template context",
        ),
        (
            "{{#each vars}}{{this}}{{/each}}",
            "`vars` alone is not a value",
        ),
        ("{{lookup vars \"tok\"}}", "`vars` alone is not a value"),
        (
            "{{vars.derived}}",
            "`vars.derived` carries secret `vars.tok`",
        ),
        (
            "{{quote vars.derived}}",
            "`vars.derived` carries secret `vars.tok`",
        ),
        (
            "{{quote (default vars.derived \"x\")}}",
            "`vars.derived` carries secret `vars.tok`",
        ),
        ("{{vars.twice}}", "`vars.twice` carries secret `vars.tok`"),
        (
            "{{vars.from_env}}",
            "`vars.from_env` carries secret `env.RB_TOKEN`",
        ),
        (
            "{{env.RB_TOKEN}}",
            "`env.RB_TOKEN` is the source of secret `vars.tok`",
        ),
    ];
    for (template, expected) in cases {
        let text = runbook(template);
        for command in ["validate", "run"] {
            let output = Test::new()
                .runbook(&text)
                .args([command, "{file}", "--state-dir", "{dir}/state"])
                .env("RB_TOKEN", SECRET)
                .run_within(LIMIT);
            no_panic(&output);
            assert_eq!(output.code, 2, "{template}: {}", output.snapshot());
            assert!(
                output.stderr.contains(expected),
                "{template}: expected {expected:?}:\n{}",
                output.snapshot()
            );
            assert!(
                output.stderr.contains("runbook.yaml:"),
                "{template}: the place is named:\n{}",
                output.stderr
            );
            assert!(!output.marker_exists(), "{template}: nothing runs");
            assert_no_secret(&output.stdout, "stdout");
            assert_no_secret(&output.stderr, "stderr");
        }
    }
}

#[test]
fn a_derived_secret_reaches_a_process_through_env_and_is_masked_in_output() {
    let output = Test::new()
        .runbook(&runbook("$DERIVED {{vars.plain}} {{env.HOME}}"))
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .env("RB_TOKEN", SECRET)
        .run_within(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains(&format!("{MASK} hello")),
        "a derived value is masked where it is printed:\n{}",
        output.stdout
    );
    let received = std::fs::read_to_string(output.directory.join("marker")).expect("marker");
    assert_eq!(
        received,
        format!("x-{SECRET}"),
        "the process gets the real value"
    );
    assert_no_secret(&output.stdout, "stdout");
    for file in files_under(&output.directory.join("state")) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).expect("read")).into_owned();
        assert_no_secret(&text, &file.display().to_string());
    }
}

/// `leak` writes the secret as the value of an output it does not declare secret and as an
/// output key; `paste` pastes that value into its script, which saves its own argv (bash's
/// `/proc/$$/cmdline`), so the test sees exactly what a process listing would have shown.
const OUTPUTS: &str = r#"
version: 1
name: secret-outputs-paths
vars:
  tok: { env: RB_TOKEN, secret: true }
env:
  TOKEN: "{{vars.tok}}"
steps:
  - id: leak
    readonly: true
    run: |
      echo "value=$TOKEN" >> "$RUNBOOK_OUTPUT"
      echo "$TOKEN=1" >> "$RUNBOOK_OUTPUT"
      echo "plain=visible" >> "$RUNBOOK_OUTPUT"
  - id: paste
    needs: [leak]
    readonly: true
    run: |
      tr '\0' ' ' < /proc/$$/cmdline > "$RUNBOOK_RUN_DIR/../../argv"
      echo "pasted {{quote steps.leak.outputs.value}} {{steps.leak.outputs.plain}}"
"#;

#[test]
fn a_secret_in_step_outputs_reaches_no_argv_and_is_masked_as_key_and_value_everywhere() {
    let output = Test::new()
        .runbook(OUTPUTS)
        .args([
            "run",
            "{file}",
            "--log-format",
            "json",
            "--state-dir",
            "{dir}/state",
        ])
        .env("RB_TOKEN", SECRET)
        .run_within(LIMIT);
    no_panic(&output);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let directory = output.directory.clone();
    let argv = std::fs::read_to_string(directory.join("state/argv")).expect("argv saved");
    assert_no_secret(&argv, "the argv of the step that pasted the output");
    assert!(argv.contains(&format!("pasted '{MASK}' visible")), "{argv}");
    assert_no_secret(&output.stdout, "the JSON events");
    assert_no_secret(&output.stderr, "stderr");
    let events = json_events(&output.stdout);
    let finished = events
        .iter()
        .find(|event| event["event"] == "step_finished" && event["step"] == "leak")
        .expect("leak finished");
    assert_eq!(
        finished["outputs"],
        serde_json::json!([["value", MASK], [MASK, "1"], ["plain", "visible"]]),
        "keys are masked as values are"
    );
    for file in files_under(&directory.join("state")) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).expect("read")).into_owned();
        assert_no_secret(&text, &file.display().to_string());
    }
    let state = directory.join("state").display().to_string();
    let mut commands = vec![vec!["show", "last"], vec!["history"]];
    for format in ["md", "html", "json"] {
        commands.push(vec!["report", "last", "--format", format]);
    }
    for command in commands {
        let shown = Test::new()
            .current_dir(&directory)
            .args(&command)
            .args(["--state-dir", &state])
            .env("RB_TOKEN", SECRET)
            .run_within(LIMIT);
        no_panic(&shown);
        assert_eq!(shown.code, 0, "{command:?}: {}", shown.snapshot());
        assert_no_secret(&shown.stdout, &format!("{command:?}"));
        assert_no_secret(&shown.stderr, &format!("{command:?}"));
    }
}
