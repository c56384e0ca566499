//! `history` on a busy state directory (SPEC §10): the latest 20 runs by default, `--all` for
//! every run; each row comes from a per-run summary that is derived data, made again from the
//! journal when the run changes later (a `rollback RUN`) or the summary is damaged.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const RUNBOOK: &str = "version: 1
name: listed
steps:
  - id: change
    run: echo changed
    rollback: echo undone
";

fn engine(directory: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .arg("--state-dir")
        .arg(directory.join("state"))
        .current_dir(directory)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn run_ids(listing: &str) -> Vec<String> {
    let list: Vec<Value> = serde_json::from_str(listing).expect("history JSON");
    list.iter()
        .map(|row| row["run_id"].as_str().expect("run_id").to_string())
        .collect()
}

#[test]
fn history_lists_the_latest_twenty_and_all_with_the_flag() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let dir = directory.path();
    std::fs::write(dir.join("runbook.yaml"), RUNBOOK).expect("write runbook");
    for _ in 0..23 {
        let (code, _, stderr) = engine(dir, &["run", "runbook.yaml", "--progress", "none"]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, all, _) = engine(dir, &["history", "--all", "--format", "json"]);
    assert_eq!(code, 0);
    let all = run_ids(&all);
    assert_eq!(all.len(), 23);
    let (_, latest, _) = engine(dir, &["history", "--format", "json"]);
    assert_eq!(
        run_ids(&latest),
        all[3..].to_vec(),
        "the latest 20, oldest first"
    );

    let (_, text, _) = engine(dir, &["history"]);
    assert!(
        text.contains("(the latest 20 of 23 runs; `--all` lists every run)"),
        "{text}"
    );
    assert!(!text.contains(&all[2]), "{text}");
    assert!(text.contains(&all[22]), "{text}");
}

#[test]
fn a_summary_follows_its_journal_when_the_run_is_rolled_back_later_or_the_summary_is_damaged() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let dir = directory.path();
    std::fs::write(dir.join("runbook.yaml"), RUNBOOK).expect("write runbook");
    let (code, _, stderr) = engine(dir, &["run", "runbook.yaml", "--progress", "none"]);
    assert_eq!(code, 0, "{stderr}");
    let outcome = |dir: &Path| {
        let (code, listing, stderr) = engine(dir, &["history", "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let list: Vec<Value> = serde_json::from_str(&listing).expect("history JSON");
        list[0]["outcome"].as_str().expect("outcome").to_string()
    };
    assert_eq!(outcome(dir), "succeeded");
    let run = std::fs::read_dir(dir.join("state/runs"))
        .expect("runs")
        .next()
        .expect("one run")
        .expect("entry")
        .path();
    assert!(run.join("summary.json").is_file(), "history kept a summary");

    let (code, _, stderr) = engine(dir, &["rollback", "last", "--progress", "none"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(outcome(dir), "rolled_back", "the later rollback is seen");

    std::fs::write(run.join("summary.json"), "{not json").expect("damage the summary");
    assert_eq!(outcome(dir), "rolled_back", "made again from the journal");
}
