//! Skips propagate (SPEC §4): a step that needs a skipped step is skipped too, naming the
//! skipped step, unless it says `after_skipped: run`; `plan` says which skip would skip a step.
//! `irreversible: true` marks one-way steps (a page): no warning, marked in `plan`, several
//! allowed.

mod common;

use std::time::Duration;

use common::{Output, Test, lines};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn run(yaml: &str, extra: &[&str]) -> Output {
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
        .args(extra)
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

/// `quick_fix` switches off its whole branch; `report` joins both branches.
const BRANCHES: &str = r#"
version: 1
name: branches
vars:
  rate: "3"
steps:
  - id: measure
    readonly: true
    run: echo measure >> ran
  - id: quick_fix
    needs: [measure]
    if: "{{gt vars.rate 10}}"
    run: echo quick_fix >> ran
    rollback: echo quick_fix >> undone
  - id: restart
    needs: [quick_fix]
    run: echo restart >> ran
    rollback: echo restart >> undone
  - id: confirm
    needs: [restart]
    readonly: true
    run: echo confirm >> ran
  - id: report
    needs: [measure, confirm]
    after_skipped: run
    readonly: true
    run: echo "report {{steps.confirm.status}}" >> ran
"#;

#[test]
fn one_if_switches_off_the_whole_branch_and_a_join_still_runs() {
    let output = run(BRANCHES, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "ran"),
        ["measure", "report skipped"]
    );
    for (step, because) in [("restart", "quick_fix"), ("confirm", "restart")] {
        let line = format!("{step}: skipped (needs `{because}`, which was skipped)");
        assert!(output.stdout.contains(&line), "{line}\n{}", output.stdout);
    }
    let summary: Vec<&str> = output
        .stdout
        .lines()
        .filter(|line| line.contains("skipped") && !line.contains(':'))
        .collect();
    assert_eq!(summary.len(), 3, "{}", output.stdout);

    // With the `if` true the branch runs in full.
    let output = run(BRANCHES, &["--var", "rate=30"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "ran"),
        [
            "measure",
            "quick_fix",
            "restart",
            "confirm",
            "report succeeded"
        ]
    );
}

#[test]
fn skipped_steps_are_not_compensated_when_a_later_step_fails() {
    let yaml = BRANCHES.replace(
        "run: echo \"report {{steps.confirm.status}}\" >> ran",
        "run: exit 1",
    );
    let output = run(&yaml, &[]);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(lines(&output.directory, "ran"), ["measure"]);
    assert!(
        lines(&output.directory, "undone").is_empty(),
        "{}",
        output.stdout
    );
}

#[test]
fn plan_says_which_skip_skips_a_step() {
    let output = Test::new().runbook(BRANCHES).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!("plan_of_branches", output.snapshot());

    let output = Test::new()
        .runbook(BRANCHES)
        .args(["plan", "{file}", "--format", "json"])
        .run();
    let plan: Value = serde_json::from_str(&output.stdout).expect("plan JSON");
    let steps = plan["steps"].as_array().expect("steps");
    let field = |id: &str, key: &str| {
        steps
            .iter()
            .find(|step| step["id"] == id)
            .map(|step| step[key].clone())
            .expect("step")
    };
    assert_eq!(field("restart", "skipped_with"), "quick_fix");
    assert_eq!(field("confirm", "skipped_with"), "restart");
    assert_eq!(field("quick_fix", "skipped_with"), Value::Null);
    assert_eq!(field("report", "skipped_with"), Value::Null);
    assert_eq!(field("report", "after_skipped"), "run");
    assert_eq!(field("restart", "after_skipped"), "skip");
}

const PAGES: &str = r#"
version: 1
name: pages
steps:
  - id: page_oncall
    irreversible: true
    run: echo paged >> sent
  - id: post_status
    needs: [page_oncall]
    irreversible: true
    run: echo posted >> sent
"#;

#[test]
fn irreversible_steps_need_no_rollback_and_plan_marks_them() {
    let output = Test::new()
        .runbook(PAGES)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("(0 warnings)"),
        "{}",
        output.snapshot()
    );
    let output = Test::new().runbook(PAGES).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output
            .stdout
            .contains("cannot be undone (irreversible): page_oncall, post_status"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("page_oncall  [irreversible]"),
        "{}",
        output.stdout
    );

    // The report of a run says the rollback does not undo them.
    let output = run(PAGES, &[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let report = Test::new()
        .args(["report", "last", "--state-dir"])
        .args([output.directory.join("state").display().to_string()])
        .run();
    assert_eq!(report.code, 0, "{}", report.snapshot());
    assert!(
        report
            .stdout
            .contains(r"not undone, by intent (irreversible): page\_oncall, post\_status"),
        "{}",
        report.stdout
    );

    let show = Test::new()
        .args(["show", "last", "--state-dir"])
        .args([output.directory.join("state").display().to_string()])
        .run();
    assert_eq!(
        show.stdout
            .matches("irreversible: a rollback does not undo it")
            .count(),
        2,
        "{}",
        show.stdout
    );

    // An irreversible step that has a rollback contradicts itself.
    let contradiction = PAGES.replacen(
        "    run: echo paged >> sent\n",
        "    run: echo paged >> sent\n    rollback: echo unpage\n",
        1,
    );
    let output = Test::new()
        .runbook(&contradiction)
        .args(["validate", "{file}"])
        .run();
    insta::assert_snapshot!("irreversible_with_rollback", output.snapshot());
}

#[test]
fn after_skipped_takes_only_run_or_skip() {
    let yaml = BRANCHES.replace("after_skipped: run", "after_skipped: always");
    let output = Test::new()
        .runbook(&yaml)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(output.stderr.contains("always"), "{}", output.snapshot());
    assert!(
        output.stderr.contains("runbook.yaml:"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn after_skipped_where_nothing_can_be_skipped_is_warned() {
    let yaml = r#"
version: 1
name: join
steps:
  - id: build
    readonly: true
    run: "true"
  - id: publish
    needs: [build]
    after_skipped: run
    readonly: true
    run: "true"
"#;
    let output = Test::new().runbook(yaml).args(["validate", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    insta::assert_snapshot!("after_skipped_unused", output.snapshot());
}
