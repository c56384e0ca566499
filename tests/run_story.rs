//! What `history`, `show` and the reports tell about a run (SPEC §10, §2 `summary`): the
//! run's own outcome and duration stay in view after a later rollback or resume, which is
//! added with who ran it and when; a failed run that rolled back reads "failed; rolled back";
//! the `summary` line, `rollback_verify` results and non-secret outputs are shown; a
//! multi-line message stays under its row (indented, `<br>` in Markdown, pre-wrap in HTML).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// `runbook ARGS --state-dir <dir>/state`.
fn engine(dir: &Path, args: &[&str]) -> Output {
    Test::new()
        .current_dir(dir)
        .env("STORY_TOKEN", "s3cret-token-value")
        .args(args)
        .args(["--state-dir", &dir.join("state").display().to_string()])
        .run_within(LIMIT)
}

/// Runs `runbook` in a fresh directory: `run FILE ARGS --state-dir <dir>/state`.
fn first_run(runbook: &str, args: &[&str]) -> Output {
    Test::new()
        .runbook(runbook)
        .env("STORY_TOKEN", "s3cret-token-value")
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(args)
        .run_within(LIMIT)
}

const DEPLOY: &str = r#"
version: 1
name: story
vars:
  token:
    env: STORY_TOKEN
    secret: true
summary: "sev={{steps.classify.outputs.sev}} action={{default steps.act.outputs.action 'none'}}"
steps:
  - id: classify
    run: |
      echo "sev=P2" >> "$RUNBOOK_OUTPUT"
      echo "notes<<EOF" >> "$RUNBOOK_OUTPUT"
      echo "first line" >> "$RUNBOOK_OUTPUT"
      echo "second line" >> "$RUNBOOK_OUTPUT"
      echo "EOF" >> "$RUNBOOK_OUTPUT"
    outputs: [sev, notes, { name: key, secret: true }]
    env:
      TOKEN: "{{vars.token}}"
    rollback: echo classify >> undo
  - id: act
    needs: [classify]
    run: echo "action=restart" >> "$RUNBOOK_OUTPUT"
    rollback: echo act >> undo
rollback_verify:
  - name: the old version serves
    run: |
      echo "version: 1"
      echo "status: ok"
"#;

/// `classify` writes its secret output too.
fn deploy() -> String {
    DEPLOY.replace(
        "      echo \"EOF\" >> \"$RUNBOOK_OUTPUT\"\n",
        "      echo \"EOF\" >> \"$RUNBOOK_OUTPUT\"\n      echo \"key=$TOKEN\" >> \"$RUNBOOK_OUTPUT\"\n",
    )
}

#[test]
fn a_later_rollback_keeps_the_runs_own_outcome_in_view() {
    let first = first_run(&deploy(), &["--progress", "plain"]);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    assert!(
        first.stdout.contains("\nsummary: sev=P2 action=restart\n"),
        "{}",
        first.snapshot()
    );
    let dir = &first.directory;
    let rolled = engine(dir, &["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());

    // The trap: history said `rolled_back 3.0s`, losing that the run had succeeded.
    let history = engine(dir, &["history"]);
    let row = history
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("a row:\n{}", history.snapshot()));
    assert!(
        row.contains("succeeded (exit 0) in ")
            && row.contains("; rolled back later by ")
            && row.contains(" at 20")
            && row.contains(": rolled back (exit 0) in "),
        "{}",
        history.snapshot()
    );
    assert!(
        history.stdout.contains("summary: sev=P2 action=restart"),
        "{}",
        history.snapshot()
    );
    let json = engine(dir, &["history", "--format", "json"]);
    let list: Vec<Value> = serde_json::from_str(&json.stdout).expect("history JSON");
    let run = &list[0];
    assert_eq!(run["own"]["outcome"], "succeeded", "{run:#}");
    assert_eq!(
        run["outcome"], "rolled_back",
        "the current state, as before"
    );
    assert_eq!(run["later"][0]["action"], "rollback", "{run:#}");
    assert_eq!(run["later"][0]["outcome"], "rolled_back", "{run:#}");
    assert_eq!(run["summary"], "sev=P2 action=restart");

    let show = engine(dir, &["show", "last"]);
    assert!(
        show.stdout.contains("  result: succeeded (exit 0) in ")
            && show.stdout.contains("; rolled back later by "),
        "{}",
        show.snapshot()
    );
    assert!(
        show.stdout.contains("  summary: sev=P2 action=restart"),
        "{}",
        show.snapshot()
    );
    // rollback_verify, its message indented under its row.
    assert!(
        show.stdout.contains(
            "\nrollback_verify\n  probe `the old version serves` passed\n    exit code 0\n"
        ),
        "{}",
        show.snapshot()
    );
    // A multi-line output under its step, never flush left; the secret output masked.
    assert!(
        show.stdout
            .contains("      output notes=first line\n                   second line\n"),
        "{}",
        show.snapshot()
    );
    assert!(
        !show.stdout.contains("s3cret-token-value"),
        "{}",
        show.stdout
    );

    let markdown = engine(dir, &["report", "last"]);
    assert!(
        markdown
            .stdout
            .contains("| Summary | sev=P2 action=restart |"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown
            .stdout
            .contains("| `rollback_verify` | compensation | the old version serves | passed |"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown
            .stdout
            .contains("| `classify` | `notes` | first line<br>second line |"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains("| `act` | `action` | restart |"),
        "{}",
        markdown.stdout
    );
    assert!(
        !markdown.stdout.contains("`key`"),
        "a secret output is not listed:\n{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains("**succeeded (exit 0) in "),
        "{}",
        markdown.stdout
    );
    let html = engine(dir, &["report", "last", "--format", "html"]);
    assert!(
        html.stdout
            .contains("<td class=\"message\">first line\nsecond line</td>"),
        "{}",
        html.stdout
    );
    assert!(
        html.stdout
            .contains("td.message,.multiline{white-space:pre-wrap}")
    );
    assert!(!html.stdout.contains("s3cret-token-value"));
}

#[test]
fn a_failed_run_that_rolled_back_never_reads_as_a_success() {
    let runbook = r#"
version: 1
name: words
steps:
  - id: a
    run: "true"
    rollback: "true"
  - id: b
    needs: [a]
    run: |
      echo "line one of the failure"
      exit 4
"#;
    for progress in ["plain", "none"] {
        let output = first_run(runbook, &["--progress", progress]);
        assert_eq!(output.code, 1, "{}", output.snapshot());
        let last = output.stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("run ") && last.ends_with(": failed; rolled back (exit 1)"),
            "{progress}: {last:?}\n{}",
            output.snapshot()
        );
        let history = engine(&output.directory, &["history"]);
        assert!(
            history.stdout.contains("failed; rolled back (exit 1) in "),
            "{}",
            history.snapshot()
        );
    }
    let succeeded = first_run(
        "version: 1\nname: fine\nsteps:\n  - id: a\n    run: \"true\"\n",
        &["--progress", "none"],
    );
    assert!(
        succeeded
            .stdout
            .trim_end()
            .ends_with(": succeeded (exit 0)"),
        "{}",
        succeeded.snapshot()
    );
}

#[test]
fn a_resumed_run_says_who_resumed_it_and_how_it_ended() {
    let runbook = r#"
version: 1
name: resumed
steps:
  - id: a
    run: "true"
    rollback: test -f fixed
  - id: b
    needs: [a]
    run: exit 1
"#;
    let first = first_run(runbook, &["--progress", "none"]);
    assert_eq!(first.code, 3, "{}", first.snapshot());
    std::fs::write(first.directory.join("fixed"), "").expect("fix");
    let resumed = engine(&first.directory, &["resume", "last"]);
    assert_eq!(resumed.code, 1, "{}", resumed.snapshot());
    let show = engine(&first.directory, &["show", "last"]);
    assert!(
        show.stdout
            .contains("  result: rollback incomplete (exit 3) in ")
            && show.stdout.contains("; resumed by ")
            && show.stdout.contains(": failed; rolled back (exit 1) in "),
        "{}",
        show.snapshot()
    );
}

#[test]
fn a_summary_that_cannot_be_rendered_is_reported_and_the_run_goes_on() {
    let runbook = r#"
version: 1
name: no-summary
summary: "sev={{steps.classify.outputs.sev}}"
steps:
  - id: classify
    if: "false"
    run: echo "sev=P1" >> "$RUNBOOK_OUTPUT"
"#;
    let output = first_run(runbook, &["--progress", "plain"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("cannot render `summary`")
            && output.stdout.contains("the run has no summary"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn a_summary_may_not_hold_a_secret() {
    let runbook = r#"
version: 1
name: leaky
vars:
  token: { env: STORY_TOKEN, secret: true }
summary: "token={{vars.token}}"
steps:
  - id: a
    run: "true"
"#;
    let output = Test::new()
        .runbook(runbook)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(output.stderr.contains("summary"), "{}", output.snapshot());
}

#[test]
fn a_multi_line_probe_message_stays_under_its_row_in_show_and_the_reports() {
    let runbook = r#"
version: 1
name: probes
steps:
  - id: check
    verify:
      - name: two lines
        run: |
          echo "first of two"
          echo "second of two"
          exit 1
"#;
    let first = first_run(runbook, &["--progress", "none"]);
    assert_eq!(first.code, 1, "{}", first.snapshot());
    let dir = &first.directory;
    let show = engine(dir, &["show", "last"]);
    // Every line of the message is indented under the step's row: none is flush left or
    // at the step's own indentation.
    let steps = show
        .stdout
        .split("\nsteps\n")
        .nth(1)
        .unwrap_or_else(|| panic!("a steps section:\n{}", show.stdout));
    let section: Vec<&str> = steps.lines().take_while(|line| !line.is_empty()).collect();
    assert!(section[0].starts_with("  check "), "{}", show.stdout);
    assert!(
        section[1..].iter().all(|line| line.starts_with("      ")),
        "{}",
        show.stdout
    );
    assert!(
        section.iter().any(|line| line.trim() == "second of two"),
        "{}",
        show.stdout
    );
    let markdown = engine(dir, &["report", "last"]);
    let row = markdown
        .stdout
        .lines()
        .find(|line| line.starts_with("| `check` | forward | +"))
        .unwrap_or_else(|| panic!("a timeline row:\n{}", markdown.stdout));
    assert!(
        row.contains("first of two<br>") && row.contains("second of two") && row.ends_with(" |"),
        "{row}"
    );
    let html = engine(dir, &["report", "last", "--format", "html"]);
    assert!(
        html.stdout.contains("first of two\n") && html.stdout.contains("<td class=\"message\">"),
        "{}",
        html.stdout
    );
}
