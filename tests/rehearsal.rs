//! `run --fail-at STEP` rehearses a failure (SPEC §11): the step runs, then is failed, so
//! the rollback from that point runs for real, exactly as the plan's "if a step fails" row
//! promised; the run is marked a rehearsal in its journal, `history`, `show` and reports. A
//! step that does not exist, or an instance `id@host` it does not have, is refused before anything runs.

mod common;

use std::time::Duration;

use common::{Test, json_events, lines};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Five steps in a chain, each recording that it ran: with and without compensations, one
/// `only_if_succeeded`, none failing on its own.
const RUNBOOK: &str = r#"
version: 1
name: rehearse
steps:
  - id: backup
    run: echo backup >> ran
    rollback: echo backup >> undo
  - id: tag
    needs: [backup]
    run: echo tag >> ran
    rollback:
      run: echo tag >> undo
      only_if_succeeded: true
  - id: check
    needs: [tag]
    run: echo check >> ran
    readonly: true
  - id: deploy
    needs: [check]
    run: echo deploy >> ran
    rollback: echo deploy >> undo
  - id: restart
    needs: [deploy]
    run: echo restart >> ran
    rollback: echo restart >> undo
"#;

/// Each step's row of the plan's failure table: the compensations it promises, in order.
fn failure_rows() -> Vec<(String, Vec<String>)> {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["plan", "{file}", "--format", "json"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let plan: Value = serde_json::from_str(&output.stdout).expect("plan JSON");
    plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            let id = step["id"].as_str().expect("id").to_string();
            let failure = &step["on_failure"];
            let mut expected = Vec::new();
            if failure["compensates_itself"] == true {
                expected.push(id.clone());
            }
            expected.extend(
                failure["compensates"]
                    .as_array()
                    .expect("compensates")
                    .iter()
                    .map(|other| other.as_str().expect("an id").to_string()),
            );
            (id, expected)
        })
        .collect()
}

#[test]
fn each_rehearsed_failure_runs_the_rollback_the_plan_promised() {
    let rows = failure_rows();
    assert_eq!(rows.len(), 5);
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    for (position, (step, expected)) in rows.iter().enumerate() {
        let output = Test::new()
            .runbook(RUNBOOK)
            .args(["run", "{file}", "--log-format", "json", "--fail-at", step])
            .run_within(LIMIT);
        assert_eq!(output.code, 1, "`{step}`\n{}", output.snapshot());
        // The step itself ran (and those before it); nothing after it started.
        assert_eq!(
            lines(&output.directory, "ran"),
            ids[..=position],
            "`{step}`"
        );
        let compensated: Vec<String> = json_events(&output.stdout)
            .iter()
            .filter(|event| {
                event["event"] == "step_finished"
                    && event["phase"] == "compensation"
                    && event["status"] == "compensated"
            })
            .map(|event| event["step"].as_str().expect("step").to_string())
            .collect();
        assert_eq!(&compensated, expected, "`{step}`\n{}", output.snapshot());
        let events = json_events(&output.stdout);
        assert_eq!(events[0]["event"], "run_started");
        assert_eq!(events[0]["rehearsal"], step.as_str(), "{:#}", events[0]);
        assert_eq!(&lines(&output.directory, "undo"), expected, "`{step}`");
    }
    // The rows differ, so the comparison above proves something for each step.
    let find = |id: &str| &rows.iter().find(|(step, _)| step == id).expect("a row").1;
    assert_eq!(find("tag"), &["backup"], "`tag` is only_if_succeeded");
    assert_eq!(find("restart"), &["restart", "deploy", "tag", "backup"]);
}

#[test]
fn a_rehearsal_is_marked_in_the_journal_history_show_and_reports() {
    let state = ["--state-dir", "{dir}/state"];
    let test = Test::new().runbook(RUNBOOK);
    let directory = test.path().to_path_buf();
    let output = test
        .args([
            "run",
            "{file}",
            "--progress",
            "plain",
            "--fail-at",
            "deploy",
        ])
        .args(state)
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        output.stdout.contains("deploy: failed in ")
            && output.stdout.contains("a rehearsal (`--fail-at`)"),
        "{}",
        output.snapshot()
    );
    assert!(
        output
            .stdout
            .contains("rehearsal of a failure at `deploy`: failed; rolled back (exit 1)"),
        "{}",
        output.snapshot()
    );
    let runs = directory.join("state/runs");
    let run = std::fs::read_dir(&runs)
        .expect("runs")
        .next()
        .expect("one run")
        .expect("entry")
        .path();
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).expect("journal");
    let header: Value =
        serde_json::from_str(journal.lines().next().expect("a header")).expect("JSON");
    assert_eq!(header["data"]["options"]["fail_at"], "deploy", "{header:#}");

    let engine = |args: &[&str]| {
        Test::new()
            .args(args)
            .args([
                "--state-dir",
                &directory.join("state").display().to_string(),
            ])
            .run()
    };
    let history = engine(&["history"]);
    assert!(
        history
            .stdout
            .contains("rehearsal at `deploy`: failed; rolled back"),
        "{}",
        history.snapshot()
    );
    let show = engine(&["show", "last"]);
    assert!(
        show.stdout.contains("rehearsal: `--fail-at deploy`"),
        "{}",
        show.snapshot()
    );
    let markdown = engine(&["report", "last"]);
    assert!(
        markdown
            .stdout
            .contains("| Rehearsal | a failure of `deploy`"),
        "{}",
        markdown.snapshot()
    );
    let html = engine(&["report", "last", "--format", "html"]);
    assert!(
        html.stdout.contains("<th>Rehearsal</th>"),
        "{}",
        html.snapshot()
    );
}

#[test]
fn an_unknown_step_is_refused_with_a_suggestion_and_nothing_runs() {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["run", "{file}", "--fail-at", "deplyo"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains("has no step `deplyo`")
            && output.stderr.contains("did you mean `deploy`?"),
        "{}",
        output.snapshot()
    );
    assert!(lines(&output.directory, "ran").is_empty(), "nothing ran");
    assert!(
        !output.directory.join("xdg-state/runbook/runs").exists(),
        "no run was recorded"
    );
}

#[test]
fn an_instance_the_runbook_does_not_have_is_refused() {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["run", "{file}", "--fail-at", "deploy@web1"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains("has no step `deploy@web1`"),
        "{}",
        output.snapshot()
    );
    assert!(lines(&output.directory, "ran").is_empty(), "nothing ran");
}

#[test]
fn a_rehearsal_at_a_skipped_step_says_it_did_not_happen() {
    let runbook = "version: 1\nname: skip\nsteps:\n  - id: a\n    if: \"false\"\n    run: echo a >> ran\n    rollback: echo a >> undo\n";
    let output = Test::new()
        .runbook(runbook)
        .args(["run", "{file}", "--progress", "plain", "--fail-at", "a"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains(
            "`--fail-at a`: the step ended skipped, so the rehearsed failure did not happen"
        ),
        "{}",
        output.snapshot()
    );
}
