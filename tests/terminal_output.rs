//! A step's bytes never drive the operator's terminal (issue 10, item 17): on a terminal,
//! escape sequences (a window title, colours), BEL, NUL and carriage returns a step prints
//! are shown in caret notation (`^[`, `^G`, `^@`, `^M`), in plain lines, in the live progress
//! and in the summary's last lines; a pipe and the step log keep the bytes as printed.

mod common;

use std::time::Duration;

use common::{Output, Test};

const LIMIT: Duration = Duration::from_secs(60);

/// `hostile` prints a window-title sequence, colours, a NUL and a carriage return, then
/// fails, so its last lines are in the summary too.
const RUNBOOK: &str = r#"
version: 1
name: hostile-output
steps:
  - id: hostile
    readonly: true
    run: |
      printf 'title \033]0;PWNED\007 colour \033[31mred\033[0m nul:\000: cr\r!\n'
      exit 1
"#;

const RAW_TITLE: &str = "\u{1b}]0;PWNED\u{7}";
const SHOWN: &str = "title ^[]0;PWNED^G colour ^[[31mred^[[0m nul:^@: cr^M!";

/// Runs `runbook ARGS` on a pseudo-terminal (`script`), capturing what the terminal got.
fn on_terminal(args: &[&str]) -> Output {
    let output = Test::new()
        .runbook(RUNBOOK)
        .wrap([
            "bash",
            "-c",
            "exec script -qefc \"$(printf '%q ' \"$0\" \"$@\")\" /dev/null",
        ])
        .args(args)
        .run_within(LIMIT);
    assert!(
        !output.stdout.contains("panicked") && !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

#[test]
fn plain_lines_and_the_summary_show_control_characters_on_a_terminal() {
    let output = on_terminal(&[
        "run",
        "{file}",
        "--progress",
        "plain",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(!output.stdout.contains(RAW_TITLE), "{:?}", output.stdout);
    assert!(!output.stdout.contains('\0'), "{:?}", output.stdout);
    assert!(
        output.stdout.contains(&format!("hostile | {SHOWN}")),
        "the plain line: {:?}",
        output.stdout
    );
    assert!(
        output.stdout.contains(&format!("  | {SHOWN}")),
        "the summary's last lines: {:?}",
        output.stdout
    );
    // The log keeps what the step printed.
    let logs = output.directory.join("state/runs");
    let run = std::fs::read_dir(&logs)
        .expect("runs")
        .flatten()
        .next()
        .expect("one run")
        .path();
    let log = std::fs::read(run.join("logs/hostile.log")).expect("log");
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains(RAW_TITLE), "{log:?}");
}

#[test]
fn the_live_progress_shows_control_characters_on_a_terminal() {
    let output = on_terminal(&[
        "run",
        "{file}",
        "--progress",
        "auto",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(!output.stdout.contains(RAW_TITLE), "{:?}", output.stdout);
    assert!(
        output.stdout.contains("^[]0;PWNED^G"),
        "{:?}",
        output.stdout
    );
}

#[test]
fn a_pipe_gets_the_bytes_as_printed() {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--state-dir",
            "{dir}/state",
        ])
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(output.stdout.contains(RAW_TITLE), "{:?}", output.stdout);
}

/// `titled` writes an output whose value holds a window-title sequence.
const TITLED_OUTPUT: &str = r#"
version: 1
name: titled-output
steps:
  - id: titled
    readonly: true
    run: printf 'note=\033]0;PWNED\007 done\n' >> "$RUNBOOK_OUTPUT"
"#;

#[test]
fn show_and_report_on_a_terminal_neutralise_control_characters_from_outputs() {
    let first = Test::new()
        .runbook(TITLED_OUTPUT)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    let state = directory.join("state").display().to_string();
    for args in [
        vec!["show", "last"],
        vec!["report", "last", "--format", "md"],
    ] {
        let output = Test::new()
            .current_dir(&directory)
            .wrap([
                "bash",
                "-c",
                "exec script -qefc \"$(printf '%q ' \"$0\" \"$@\")\" /dev/null",
            ])
            .args(&args)
            .args(["--state-dir", &state])
            .run_within(LIMIT);
        assert_eq!(output.code, 0, "{args:?}: {}", output.snapshot());
        assert!(
            !output.stdout.contains(RAW_TITLE),
            "{args:?}: {:?}",
            output.stdout
        );
        if args[0] == "show" {
            assert!(
                output.stdout.contains("^[]0;PWNED^G done"),
                "{args:?}: {:?}",
                output.stdout
            );
        }
    }
}

/// JSON (events, `show`, `history`) escapes the C1 controls serde leaves raw, `U+009B` (a
/// one-character CSI on some terminals) among them; the values read back unchanged.
#[test]
fn json_output_escapes_c1_control_characters() {
    let runbook = r#"
version: 1
name: c1-output
steps:
  - id: c1
    readonly: true
    run: |
      printf 'csi \302\23331mred\n'
      printf 'mark=\302\233x\n' >> "$RUNBOOK_OUTPUT"
"#;
    let output = Test::new()
        .runbook(runbook)
        .args([
            "run",
            "{file}",
            "--log-format",
            "json",
            "--state-dir",
            "{dir}/state",
        ])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(!output.stdout.contains('\u{9b}'), "{}", output.stdout);
    assert!(output.stdout.contains("\\u009b31mred"), "{}", output.stdout);
    for args in [
        vec!["show", "last", "--format", "json"],
        vec!["history", "--format", "json"],
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"));
        command
            .args(&args)
            .arg("--state-dir")
            .arg(output.directory.join("state"));
        let shown = command.output().expect("run the binary");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{args:?}: {text}");
        assert!(!text.contains('\u{9b}'), "{args:?}: {text}");
        let _: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    }
}
