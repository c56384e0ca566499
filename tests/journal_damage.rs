//! The journal is read back exactly or not at all (SPEC §10): records removed from the middle,
//! swapped, repeated, a journal joined to itself and a second header are refused with their
//! line number by `show`, `report`, `resume` and `rollback`, and nothing runs; a journal
//! without a header is refused by name by `show` and `report` and listed as damaged by
//! `history`; a torn last line is ignored, but a whole last record that lost only its newline
//! counts; a format 1 journal (older engines) is still shown and rolled back.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Output, Test, lines};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

const CHAIN: &str = r#"
version: 1
name: chain
steps:
  - id: a
    run: echo a >> a.mark
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: echo b >> b.mark
    rollback: echo b >> undo
  - id: c
    needs: [b]
    run: echo c >> c.mark
    rollback: echo c >> undo
"#;

/// A test directory holding `runbook.yaml` and a state directory `state`.
struct Case {
    anchor: Output,
}

impl Case {
    /// A run of the a → b → c chain that succeeded.
    fn finished() -> Case {
        let anchor = Test::new()
            .runbook(CHAIN)
            .args(["run", "{file}", "--state-dir", "{dir}/state"])
            .run_within(LIMIT);
        assert_eq!(anchor.code, 0, "{}", anchor.snapshot());
        Case { anchor }
    }

    /// A test directory with `yaml` as its runbook and no run yet.
    fn empty(yaml: &str) -> Case {
        let anchor = Test::new()
            .runbook(yaml)
            .args(["history", "--state-dir", "{dir}/state"])
            .run_within(LIMIT);
        assert_eq!(anchor.code, 0, "{}", anchor.snapshot());
        Case { anchor }
    }

    fn dir(&self) -> &Path {
        &self.anchor.directory
    }

    fn engine(&self, args: &[&str]) -> Output {
        let state = self.dir().join("state").display().to_string();
        let file = self.dir().join("runbook.yaml").display().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.replace("{file}", &file))
            .collect();
        let output = Test::new()
            .current_dir(self.dir())
            .args(&args)
            .args(["--state-dir", &state])
            .run_within(LIMIT);
        assert!(
            !output.stderr.contains("panicked"),
            "panic:\n{}",
            output.snapshot()
        );
        output
    }

    fn only_run(&self) -> String {
        let runs = std::fs::read_dir(self.dir().join("state/runs")).expect("runs");
        let mut ids: Vec<String> = runs
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids.remove(0)
    }

    fn journal(&self, run: &str) -> PathBuf {
        self.dir()
            .join("state/runs")
            .join(run)
            .join("journal.jsonl")
    }

    fn journal_lines(&self, run: &str) -> Vec<String> {
        std::fs::read_to_string(self.journal(run))
            .expect("journal")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_journal(&self, run: &str, lines: &[String]) {
        std::fs::write(self.journal(run), lines.join("\n") + "\n").expect("write the journal");
    }

    fn show_json(&self, run: &str) -> Value {
        let output = self.engine(&["show", run, "--format", "json"]);
        assert_eq!(output.code, 0, "{}", output.snapshot());
        serde_json::from_str(&output.stdout).expect("show --format json")
    }

    /// Every command that reads the run refuses it, naming `line`, and nothing runs.
    fn assert_refused_at(&self, run: &str, line: usize, problem: &str) {
        let damaged = std::fs::read(self.journal(run)).expect("journal");
        for args in [
            vec!["show", run],
            vec!["show", run, "--format", "json"],
            vec!["report", run],
            vec!["resume", run],
            vec!["rollback", run],
        ] {
            let output = self.engine(&args);
            assert_eq!(output.code, 2, "{args:?}:\n{}", output.snapshot());
            assert!(
                output.stderr.contains(&format!("damaged at line {line} ")),
                "{args:?}: expected line {line}\n{}",
                output.snapshot()
            );
            assert!(
                output.stderr.contains(problem),
                "{args:?}: expected {problem:?}\n{}",
                output.snapshot()
            );
        }
        assert_eq!(
            std::fs::read(self.journal(run)).expect("journal"),
            damaged,
            "the damaged journal was not rewritten"
        );
        assert!(
            lines(self.dir(), "undo").is_empty(),
            "nothing was compensated"
        );
        assert_eq!(lines(self.dir(), "a.mark").len(), 1, "nothing ran again");
    }
}

#[test]
fn a_record_removed_from_the_middle_is_refused_with_its_line() {
    let case = Case::finished();
    let run = case.only_run();
    let mut journal = case.journal_lines(&run);
    // Every line left has a valid CRC: only the sequence tells.
    journal.remove(4);
    case.write_journal(&run, &journal);
    case.assert_refused_at(&run, 5, "`seq` 6 where 5 was expected");
}

#[test]
fn swapped_records_are_refused_with_the_line_of_the_first() {
    let case = Case::finished();
    let run = case.only_run();
    let mut journal = case.journal_lines(&run);
    journal.swap(3, 4);
    case.write_journal(&run, &journal);
    case.assert_refused_at(&run, 4, "`seq` 5 where 4 was expected");
}

#[test]
fn a_repeated_record_is_refused_with_the_line_of_the_copy() {
    let case = Case::finished();
    let run = case.only_run();
    let mut journal = case.journal_lines(&run);
    let copy = journal[5].clone();
    journal.insert(6, copy);
    case.write_journal(&run, &journal);
    case.assert_refused_at(&run, 7, "`seq` 6 where 7 was expected");
}

#[test]
fn a_journal_joined_to_itself_is_refused_at_its_second_header() {
    let case = Case::finished();
    let run = case.only_run();
    let journal = case.journal_lines(&run);
    let joined: Vec<String> = journal.iter().chain(journal.iter()).cloned().collect();
    case.write_journal(&run, &joined);
    case.assert_refused_at(&run, journal.len() + 1, "a second header");
}

#[test]
fn a_second_header_in_the_middle_is_refused_with_its_line() {
    let case = Case::finished();
    let run = case.only_run();
    let mut journal = case.journal_lines(&run);
    let header = journal[0].clone();
    journal.insert(3, header);
    case.write_journal(&run, &journal);
    case.assert_refused_at(&run, 4, "a second header");
}

#[test]
fn a_journal_that_does_not_start_with_its_header_is_refused_at_line_1() {
    let case = Case::finished();
    let run = case.only_run();
    let journal = case.journal_lines(&run);
    case.write_journal(&run, &journal[1..]);
    case.assert_refused_at(&run, 1, "not the journal's header");
}

#[test]
fn an_empty_journal_is_refused_by_name_and_listed_as_damaged() {
    let case = Case::empty(CHAIN);
    let run = "20261124_101010-00001";
    let directory = case.dir().join("state/runs").join(run);
    std::fs::create_dir_all(&directory).expect("run dir");
    std::fs::write(directory.join("journal.jsonl"), "").expect("empty journal");

    for args in [
        vec!["show", run],
        vec!["show", run, "--format", "json"],
        vec!["report", run],
        vec!["report", run, "--format", "json"],
        vec!["resume", run],
        vec!["rollback", run],
    ] {
        let output = case.engine(&args);
        assert_eq!(output.code, 2, "{args:?}:\n{}", output.snapshot());
        assert!(
            output.stderr.contains(run)
                && output.stderr.contains("journal.jsonl")
                && output.stderr.contains("has no header"),
            "{args:?}:\n{}",
            output.snapshot()
        );
        assert!(output.stdout.is_empty(), "{args:?}:\n{}", output.snapshot());
    }

    let history = case.engine(&["history"]);
    assert_eq!(history.code, 0, "{}", history.snapshot());
    let row = history
        .stdout
        .lines()
        .find(|line| line.starts_with(run))
        .unwrap_or_else(|| panic!("no row for the run:\n{}", history.snapshot()));
    assert!(
        row.contains("damaged") && row.contains("has no header"),
        "{}",
        history.snapshot()
    );
    let json = case.engine(&["history", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.snapshot());
    let list: Vec<Value> = serde_json::from_str(&json.stdout).expect("history json");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["run_id"], run);
    assert_eq!(list[0]["outcome"], "damaged");
    assert!(
        list[0]["problem"]
            .as_str()
            .is_some_and(|problem| problem.contains("has no header")),
        "{list:?}"
    );

    // Nothing of that run ran (its header would come first): it does not block a new run.
    let ran = case.engine(&["run", "{file}"]);
    assert_eq!(ran.code, 0, "{}", ran.snapshot());
    assert_eq!(lines(case.dir(), "c.mark"), ["c"]);
}

#[test]
fn a_whole_last_record_without_its_newline_counts() {
    let case = Case::finished();
    let run = case.only_run();
    let journal = case.journal_lines(&run);
    // The last record is the run's end: losing it would make a finished run look unfinished.
    std::fs::write(case.journal(&run), journal.join("\n")).expect("write");
    let show = case.show_json(&run);
    assert_eq!(show["torn_tail"], false);
    assert_eq!(show["records"].as_u64(), Some(journal.len() as u64));
    assert_eq!(show["end"]["outcome"], "succeeded");
    let text = case.engine(&["show", &run]);
    assert_eq!(text.code, 0, "{}", text.snapshot());
    assert!(!text.stdout.contains("torn"), "{}", text.snapshot());

    // Continuing the journal puts the next record on a line of its own.
    let rolled = case.engine(&["rollback", &run]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(lines(case.dir(), "undo"), ["c", "b", "a"]);
    let after = case.journal_lines(&run);
    assert!(after.len() > journal.len());
    for line in &after {
        serde_json::from_str::<Value>(line).unwrap_or_else(|error| panic!("{line}: {error}"));
    }
    assert_eq!(case.show_json(&run)["end"]["outcome"], "rolled_back");
}

#[test]
fn a_torn_last_line_is_ignored() {
    let case = Case::finished();
    let run = case.only_run();
    let journal = case.journal_lines(&run);
    let last = journal.last().expect("a record").clone();
    let mut text = journal.join("\n") + "\n";
    text.push_str(&last[..last.len() / 2]);
    std::fs::write(case.journal(&run), text).expect("write");
    let show = case.show_json(&run);
    assert_eq!(show["torn_tail"], true);
    assert_eq!(show["records"].as_u64(), Some(journal.len() as u64));
    assert_eq!(show["end"]["outcome"], "succeeded");
    let report = case.engine(&["report", &run]);
    assert_eq!(report.code, 0, "{}", report.snapshot());
}

const FORMAT_1_RUN: &str = "20261201_111242-69619";

/// A run written by an engine of journal format 1: `a` succeeded with an output, `b` timed
/// out, `--no-rollback` left both uncompensated.
fn format_1_case() -> Case {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journals/format1");
    let yaml = std::fs::read_to_string(fixtures.join("runbook.yaml")).expect("fixture runbook");
    let case = Case::empty(&yaml);
    let directory = case.dir().join("state/runs").join(FORMAT_1_RUN);
    std::fs::create_dir_all(&directory).expect("run dir");
    std::fs::copy(
        fixtures.join("journal.jsonl"),
        directory.join("journal.jsonl"),
    )
    .expect("fixture journal");
    case
}

#[test]
fn a_format_1_journal_is_still_shown() {
    let case = format_1_case();
    let show = case.engine(&["show", FORMAT_1_RUN]);
    assert_eq!(show.code, 0, "{}", show.snapshot());
    assert!(
        show.stdout.contains("outcome: failed_not_rolled_back"),
        "{}",
        show.snapshot()
    );
    assert!(
        show.stdout.contains("output dump=/backups/a.sql"),
        "{}",
        show.snapshot()
    );
    assert!(
        show.stdout.contains("timed out after 1s"),
        "{}",
        show.snapshot()
    );
    let json = case.show_json(FORMAT_1_RUN);
    assert_eq!(json["runbook"], "format-one");
    assert_eq!(json["steps"][0]["forward"]["status"], "succeeded");
    assert_eq!(json["steps"][1]["forward"]["status"], "failed");
    assert_eq!(json["records"], 12);
    let history = case.engine(&["history"]);
    assert!(
        history.stdout.contains(FORMAT_1_RUN),
        "{}",
        history.snapshot()
    );
}

#[test]
fn a_format_1_journal_is_still_rolled_back_and_continued_in_its_format() {
    let case = format_1_case();
    let rolled = case.engine(&["rollback", FORMAT_1_RUN]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    // Reverse order, with the recorded output, and `b` told it timed out.
    assert_eq!(
        lines(case.dir(), "undo"),
        ["b timed_out", "a /backups/a.sql succeeded"]
    );
    let journal = case.journal_lines(FORMAT_1_RUN);
    assert!(journal.len() > 12);
    for (index, line) in journal.iter().enumerate() {
        // Format 1: no time in the line, `data` right after `seq`.
        assert!(
            line.contains(&format!(",\"seq\":{},\"data\":{{", index + 1)),
            "line {}: {line}",
            index + 1
        );
    }
    let show = case.show_json(FORMAT_1_RUN);
    assert_eq!(show["end"]["outcome"], "rolled_back");
    assert_eq!(show["steps"][1]["compensation"]["status"], "compensated");
}
