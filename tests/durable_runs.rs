//! Durable runs (SPEC §8, §10; RELIABILITY §2): a run whose engine is SIGKILLed mid-step or
//! mid-rollback is refused by a new `run`, and `resume` continues it without re-running what
//! finished; `rollback RUN` compensates later with the recorded outputs; damage to the journal
//! is noticed (a torn tail is ignored, damage in the middle refused with its line); the journal
//! and logs hold no secret and are private to the user.
//!
//! Steps append a line to a marker file each time they run, so the tests count executions.
//! The engine is killed only once a step's marker exists (no sleeps to synchronise), and a step
//! left behind by the dead engine is killed through the pid it wrote to `pids`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Output, Test, base64, group_members, lines};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

const MASK: &str = "••••••";

/// A test directory with a runbook (`runbook.yaml`) and a state directory (`state`), kept
/// alive by the output of the first command run in it.
struct Case {
    anchor: Output,
    env: Vec<(String, String)>,
}

impl Drop for Case {
    fn drop(&mut self) {
        kill_step_processes(self.dir());
    }
}

impl Case {
    fn dir(&self) -> &Path {
        &self.anchor.directory
    }

    fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    fn file(&self) -> PathBuf {
        self.dir().join("runbook.yaml")
    }

    /// Runs `runbook ARGS --state-dir <dir>/state` in the test directory; `{file}` stands for
    /// the runbook.
    fn engine(&self, args: &[&str]) -> Output {
        let file = self.file().display().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.replace("{file}", &file))
            .collect();
        let mut test = Test::new()
            .current_dir(self.dir())
            .args(&args)
            .args(["--state-dir", &self.state().display().to_string()]);
        for (name, value) in &self.env {
            test = test.env(name, value);
        }
        let output = test.run_within(LIMIT);
        assert!(
            !output.stderr.contains("panicked"),
            "panic:\n{}",
            output.snapshot()
        );
        output
    }

    /// How many times a step appended to marker `name`.
    fn count(&self, name: &str) -> usize {
        lines(self.dir(), name).len()
    }

    fn lines(&self, name: &str) -> Vec<String> {
        lines(self.dir(), name)
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.dir().join(name), "").expect("create a file");
    }

    /// The run ids recorded in the state directory, oldest first.
    fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.state().join("runs"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The one run of this case.
    fn only_run(&self) -> String {
        let ids = self.run_ids();
        assert_eq!(ids.len(), 1, "expected one run, found {ids:?}");
        ids[0].clone()
    }

    fn run_dir(&self, run: &str) -> PathBuf {
        self.state().join("runs").join(run)
    }

    fn journal(&self, run: &str) -> PathBuf {
        self.run_dir(run).join("journal.jsonl")
    }

    /// The `data` of every journal line, each line parsed on its own; a journal whose engine
    /// was killed may end in blank lines (space written ahead of the records), nothing else.
    fn journal_records(&self, run: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.journal(run)).expect("read the journal");
        assert!(
            text.ends_with('\n'),
            "the journal does not end with a newline:\n{text}"
        );
        let (records, ahead) = text.split_at(text.find("\n\n").map_or(text.len(), |at| at + 1));
        assert!(
            ahead.bytes().all(|byte| byte == b'\n'),
            "the journal has something after blank lines:\n{text}"
        );
        records
            .lines()
            .map(|line| {
                let record: Value = serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("journal line {line:?}: {error}"));
                record["data"].clone()
            })
            .collect()
    }

    /// `show RUN --format json`, parsed.
    fn show_json(&self, run: &str) -> Value {
        let output = self.engine(&["show", run, "--format", "json"]);
        assert_eq!(output.code, 0, "{}", output.snapshot());
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("show --format json: {error}\n{}", output.stdout))
    }

    /// `history --format json`, parsed.
    fn history_json(&self) -> Vec<Value> {
        let output = self.engine(&["history", "--format", "json"]);
        assert_eq!(output.code, 0, "{}", output.snapshot());
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("history --format json: {error}\n{}", output.stdout))
    }
}

/// Kills the process groups of the step processes that wrote their pid (`$$`, the leader of
/// the step's own group) to `pids`, if they are still alive.
fn kill_step_processes(directory: &Path) {
    for pid in lines(directory, "pids") {
        let Ok(pid) = pid.trim().parse::<i32>() else {
            continue;
        };
        if !group_members(pid).is_empty() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn base_test(yaml: &str, env: &[(&str, &str)]) -> Test {
    let mut test = Test::new().runbook(yaml);
    for (name, value) in env {
        test = test.env(name, value);
    }
    test
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// `runbook run` of `yaml` to its end.
fn completed(yaml: &str, env: &[(&str, &str)]) -> Case {
    let anchor = base_test(yaml, env)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert!(
        !anchor.stderr.contains("panicked"),
        "panic:\n{}",
        anchor.snapshot()
    );
    Case {
        anchor,
        env: owned(env),
    }
}

/// Starts `runbook run` of `yaml`, waits until the file `wait_for` exists, SIGKILLs the engine,
/// then kills the step processes it left behind.
fn crashed(yaml: &str, wait_for: &str) -> Case {
    let mut running = Test::new()
        .runbook(yaml)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .spawn();
    running.wait_for_file(wait_for, LIMIT);
    // `>>` creates the file before the line is written, and the watchdog stops the step soon
    // after the engine dies: kill it once the line is there.
    let marker = running.path().join(wait_for);
    let deadline = std::time::Instant::now() + LIMIT;
    while std::fs::metadata(&marker).map_or(0, |metadata| metadata.len()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "`{wait_for}` stays empty"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    running.signal(Signal::SIGKILL);
    let anchor = running.finish(LIMIT);
    kill_step_processes(&anchor.directory);
    assert_eq!(
        anchor.code,
        -1,
        "the engine was killed:\n{}",
        anchor.snapshot()
    );
    Case {
        anchor,
        env: Vec::new(),
    }
}

/// a → b → c; b records its pid, appends to `b.mark`, then blocks until `release` exists.
/// `b_keys` are extra keys of b (indented as step keys), `b_rollback` its rollback.
fn chain(b_keys: &str, b_rollback: &str) -> String {
    format!(
        r#"
version: 1
name: chain
steps:
  - id: a
    run: echo a >> a.mark
    rollback: echo a >> undo
  - id: b
    needs: [a]
{b_keys}    run: |
      echo $$ >> pids
      echo b >> b.mark
      [ -f release ] || sleep 60
    rollback: {b_rollback}
  - id: c
    needs: [b]
    run: echo c >> c.mark
    rollback: echo c >> undo
"#
    )
}

fn idempotent_chain() -> String {
    chain("", "echo b >> undo")
}

fn non_idempotent_chain() -> String {
    chain("    idempotent: false\n", "echo b >> undo")
}

/// The step of `show --format json` with this id.
fn step<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|step| step["id"] == id))
        .unwrap_or_else(|| panic!("no step `{id}` in {show:#}"))
}

/// The history entry of `run`.
fn entry<'a>(history: &'a [Value], run: &str) -> &'a Value {
    history
        .iter()
        .find(|entry| entry["run_id"] == run)
        .unwrap_or_else(|| panic!("no run `{run}` in {history:#?}"))
}

// ---------------------------------------------------------------------------------------
// 1. Crash during a step.

#[test]
fn a_run_killed_mid_step_is_unfinished_and_blocks_a_new_run() {
    let case = crashed(&idempotent_chain(), "b.mark");
    let run = case.only_run();

    let history = case.engine(&["history"]);
    assert_eq!(history.code, 0, "{}", history.snapshot());
    let row = history
        .stdout
        .lines()
        .find(|line| line.contains(&run))
        .unwrap_or_else(|| panic!("no row for {run}:\n{}", history.stdout));
    assert!(row.contains("unfinished"), "{}", history.stdout);
    assert_eq!(entry(&case.history_json(), &run)["outcome"], "unfinished");

    let refused = case.engine(&["run", "{file}"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    for needed in [
        run.as_str(),
        &format!("runbook resume {run}"),
        &format!("runbook rollback {run}"),
        "--force",
    ] {
        assert!(
            refused.stderr.contains(needed),
            "{needed:?} missing:\n{}",
            refused.snapshot()
        );
    }
    assert_eq!(case.count("a.mark"), 1, "the refused run ran nothing");
    assert_eq!(
        case.run_ids(),
        std::slice::from_ref(&run),
        "the refused run left no run"
    );
}

#[test]
fn the_unfinished_run_index_is_derived_data_rebuilt_from_the_journals() {
    let case = crashed(&idempotent_chain(), "b.mark");
    let run = case.only_run();
    // An index lost (or a state directory from before the index): the journals still tell.
    std::fs::remove_dir_all(case.state().join("index")).expect("the index exists");
    let refused = case.engine(&["run", "{file}"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    assert!(refused.stderr.contains(&run), "{}", refused.snapshot());
    assert!(case.state().join("index/unfinished").join(&run).is_file());

    // Once the run is rolled back it has an end, and a new run starts.
    case.touch("release");
    let rolled_back = case.engine(&["rollback", &run]);
    assert_eq!(rolled_back.code, 0, "{}", rolled_back.snapshot());
    assert!(!case.state().join("index/unfinished").join(&run).exists());
    let again = case.engine(&["run", "{file}"]);
    assert_eq!(again.code, 0, "{}", again.snapshot());
}

#[test]
fn run_force_starts_despite_an_unfinished_run() {
    let case = crashed(&idempotent_chain(), "b.mark");
    let run = case.only_run();
    case.touch("release");
    let forced = case.engine(&["run", "{file}", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.snapshot());
    assert_eq!(case.count("a.mark"), 2);
    assert_eq!(case.count("b.mark"), 2);
    assert_eq!(case.count("c.mark"), 1);
    let ids = case.run_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let history = case.history_json();
    assert_eq!(entry(&history, &run)["outcome"], "unfinished");
    let new = ids.iter().find(|id| **id != run).expect("the new run");
    assert_eq!(entry(&history, new)["outcome"], "succeeded");
}

#[test]
fn resume_reruns_an_idempotent_in_doubt_step_and_not_finished_ones() {
    let case = crashed(&idempotent_chain(), "b.mark");
    let run = case.only_run();
    case.touch("release");
    let resumed = case.engine(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(case.count("a.mark"), 1, "a had finished: not run again");
    assert_eq!(case.count("b.mark"), 2, "b was in doubt and is idempotent");
    assert_eq!(case.count("c.mark"), 1);
    assert_eq!(case.count("undo"), 0, "nothing was compensated");
    assert_eq!(entry(&case.history_json(), &run)["outcome"], "succeeded");
    let show = case.show_json(&run);
    for id in ["a", "b", "c"] {
        assert_eq!(
            step(&show, id)["forward"]["status"],
            "succeeded",
            "{show:#}"
        );
    }
    // Resuming a finished run does nothing.
    let again = case.engine(&["resume", &run]);
    assert_eq!(again.code, 0, "{}", again.snapshot());
    assert!(
        again.stdout.contains("already finished"),
        "{}",
        again.snapshot()
    );
    assert_eq!(case.count("b.mark"), 2);
    assert_eq!(case.count("c.mark"), 1);
    // The new run is no longer refused.
    let again = case.engine(&["run", "{file}"]);
    assert_eq!(again.code, 0, "{}", again.snapshot());
}

#[test]
fn rollback_of_a_run_killed_mid_step_compensates_the_in_doubt_step_and_what_ran() {
    let case = crashed(&idempotent_chain(), "b.mark");
    let run = case.only_run();
    let rolled = case.engine(&["rollback", &run]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(case.lines("undo"), ["b", "a"]);
    assert_eq!(case.count("b.mark"), 1, "no forward step runs");
    assert_eq!(case.count("c.mark"), 0);
    assert_eq!(entry(&case.history_json(), &run)["outcome"], "rolled_back");
    // The run is finished now: a new run is not refused.
    case.touch("release");
    let next = case.engine(&["run", "{file}"]);
    assert_eq!(next.code, 0, "{}", next.snapshot());
}

// ---------------------------------------------------------------------------------------
// 2. A non-idempotent step in doubt.

#[test]
fn resume_stops_on_a_non_idempotent_in_doubt_step_until_told() {
    let case = crashed(&non_idempotent_chain(), "b.mark");
    case.touch("release");
    let stopped = case.engine(&["resume", "last"]);
    assert_eq!(stopped.code, 5, "{}", stopped.snapshot());
    for needed in ["`b`", "--assume-succeeded", "--assume-failed"] {
        assert!(
            stopped.stderr.contains(needed),
            "{needed:?} missing:\n{}",
            stopped.snapshot()
        );
    }
    assert_eq!(case.count("b.mark"), 1, "b is not re-run blindly");
    assert_eq!(case.count("c.mark"), 0);
    assert_eq!(case.count("undo"), 0);

    let resumed = case.engine(&["resume", "last", "--assume-succeeded", "b"]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(case.count("a.mark"), 1);
    assert_eq!(case.count("b.mark"), 1, "b was taken as succeeded");
    assert_eq!(case.count("c.mark"), 1);
    assert_eq!(case.count("undo"), 0);
    assert_eq!(
        entry(&case.history_json(), &case.only_run())["outcome"],
        "succeeded"
    );
}

#[test]
fn resume_assume_failed_compensates_the_step_then_what_ran_before() {
    let case = crashed(&non_idempotent_chain(), "b.mark");
    let resumed = case.engine(&["resume", "last", "--assume-failed", "b"]);
    assert_eq!(resumed.code, 1, "{}", resumed.snapshot());
    assert_eq!(case.lines("undo"), ["b", "a"]);
    assert_eq!(case.count("b.mark"), 1);
    assert_eq!(case.count("c.mark"), 0, "c never runs");
    let run = case.only_run();
    assert_eq!(entry(&case.history_json(), &run)["outcome"], "rolled_back");
    let show = case.show_json(&run);
    assert_eq!(step(&show, "b")["compensation"]["status"], "compensated");
    assert_eq!(step(&show, "a")["compensation"]["status"], "compensated");
}

#[test]
fn resume_assume_failed_skips_an_only_if_succeeded_compensation() {
    let yaml = chain(
        "    idempotent: false\n",
        "{ run: echo b >> undo, only_if_succeeded: true }",
    );
    let case = crashed(&yaml, "b.mark");
    let resumed = case.engine(&["resume", "last", "--assume-failed", "b"]);
    assert_eq!(resumed.code, 1, "{}", resumed.snapshot());
    assert_eq!(case.lines("undo"), ["a"]);
    assert_eq!(case.count("c.mark"), 0);
}

// ---------------------------------------------------------------------------------------
// 3. Crash during a compensation.

/// c fails; b's compensation records its pid, appends to `undo` and `b.undo`, then blocks
/// until `release` exists.
const FAILING_CHAIN: &str = r#"
version: 1
name: failing-chain
steps:
  - id: a
    run: echo a >> a.mark
    rollback: echo a >> undo
  - id: b
    needs: [a]
    run: echo b >> b.mark
    rollback: |
      echo $$ >> pids
      echo b >> undo
      echo b >> b.undo
      [ -f release ] || sleep 60
  - id: c
    needs: [b]
    run: |
      echo c >> c.mark
      exit 1
    rollback: echo c >> undo
"#;

fn crashed_in_compensation() -> Case {
    let case = crashed(FAILING_CHAIN, "b.undo");
    case.touch("release");
    // Before the kill: c had failed and was compensated, b's compensation was running.
    assert_eq!(case.lines("undo"), ["c", "b"]);
    case
}

#[test]
fn resume_finishes_a_rollback_whose_engine_died() {
    let case = crashed_in_compensation();
    let run = case.only_run();
    assert_eq!(entry(&case.history_json(), &run)["outcome"], "unfinished");
    let resumed = case.engine(&["resume", &run]);
    assert!(
        resumed.code == 0 || resumed.code == 1,
        "{}",
        resumed.snapshot()
    );
    let undo = case.lines("undo");
    assert_eq!(undo.first().map(String::as_str), Some("c"));
    assert_eq!(
        undo.iter().filter(|line| *line == "c").count(),
        1,
        "c's compensation had finished: {undo:?}"
    );
    assert!(
        undo.iter().filter(|line| *line == "b").count() >= 2,
        "b's compensation was in doubt: it runs again: {undo:?}"
    );
    assert_eq!(
        undo.iter().filter(|line| *line == "a").count(),
        1,
        "{undo:?}"
    );
    assert_eq!(undo.last().map(String::as_str), Some("a"), "a comes last");
    assert_eq!(case.count("a.mark"), 1, "no forward step runs again");
    assert_eq!(case.count("b.mark"), 1);
    assert_eq!(case.count("c.mark"), 1);
    assert_eq!(entry(&case.history_json(), &run)["outcome"], "rolled_back");
    let show = case.show_json(&run);
    for id in ["a", "b", "c"] {
        assert_eq!(step(&show, id)["compensation"]["status"], "compensated");
    }
}

#[test]
fn resume_that_finishes_a_rollback_exits_like_the_rolled_back_run() {
    let case = crashed_in_compensation();
    let resumed = case.engine(&["resume", "last"]);
    assert_eq!(resumed.code, 1, "{}", resumed.snapshot());
}

// ---------------------------------------------------------------------------------------
// 4. Rollback of a successful run, later.

const BACKUP: &str = r#"
version: 1
name: backup-deploy
steps:
  - id: backup
    run: |
      name="backup-$(date +%s%N)"
      echo "$name" >> written
      echo "file=$name" >> "$RUNBOOK_OUTPUT"
    rollback: |
      echo {{quote steps.backup.outputs.file}} >> restored
      echo backup >> undo
  - id: deploy
    needs: [backup]
    run: echo deploy >> deploy.mark
    rollback: echo deploy >> undo
"#;

#[test]
fn rollback_later_uses_the_recorded_outputs() {
    let case = completed(BACKUP, &[]);
    assert_eq!(case.anchor.code, 0, "{}", case.anchor.snapshot());
    let written = case.lines("written");
    assert_eq!(written.len(), 1);
    let run = case.only_run();

    let rolled = case.engine(&["rollback", &run]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(
        case.lines("restored"),
        written,
        "the compensation got the name the step recorded"
    );
    assert_eq!(case.lines("undo"), ["deploy", "backup"]);
    assert_eq!(case.count("deploy.mark"), 1, "no forward step runs");
    assert_eq!(case.count("written"), 1);

    let show = case.engine(&["show", &run]);
    assert_eq!(show.code, 0, "{}", show.snapshot());
    assert_eq!(
        show.stdout.matches("rollback: compensated").count(),
        2,
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains(&format!("output file={}", written[0])),
        "{}",
        show.stdout
    );
    let json = case.show_json(&run);
    for id in ["backup", "deploy"] {
        assert_eq!(step(&json, id)["compensation"]["status"], "compensated");
    }

    let again = case.engine(&["rollback", &run]);
    assert_eq!(again.code, 0, "{}", again.snapshot());
    assert!(
        again.stdout.contains("nothing left to compensate"),
        "{}",
        again.snapshot()
    );
    assert_eq!(case.count("undo"), 2, "nothing ran again");
}

// ---------------------------------------------------------------------------------------
// 5. Rollback of a run that ended `rollback incomplete`.

const INCOMPLETE: &str = r#"
version: 1
name: incomplete
steps:
  - id: a
    run: echo a >> a.mark
    rollback: echo a >> a.undo
  - id: b
    needs: [a]
    run: echo b >> b.mark
    rollback: |
      echo try >> b.tries
      test -f fixed
      echo b >> b.undo
  - id: c
    needs: [b]
    run: |
      echo c >> c.mark
      exit 1
    rollback: echo c >> c.undo
"#;

fn incomplete_rollback() -> Case {
    let case = completed(INCOMPLETE, &[]);
    assert_eq!(case.anchor.code, 3, "{}", case.anchor.snapshot());
    assert_eq!(case.count("c.undo"), 1);
    assert_eq!(case.count("b.tries"), 1);
    assert_eq!(case.count("b.undo"), 0);
    assert_eq!(case.count("a.undo"), 0, "a's compensation waits for b's");
    let show = case.show_json(&case.only_run());
    assert_eq!(show["end"]["outcome"], "rollback_incomplete");
    assert_eq!(
        step(&show, "b")["compensation"]["status"],
        "compensation_failed"
    );
    assert_eq!(step(&show, "a")["compensation"]["status"], "blocked");
    case.touch("fixed");
    case
}

fn assert_retried_only_what_did_not_finish(case: &Case) {
    assert_eq!(case.count("c.undo"), 1, "c's compensation had succeeded");
    assert_eq!(case.count("b.tries"), 2);
    assert_eq!(case.count("b.undo"), 1);
    assert_eq!(case.count("a.undo"), 1);
    for mark in ["a.mark", "b.mark", "c.mark"] {
        assert_eq!(case.count(mark), 1, "{mark}");
    }
    let show = case.show_json(&case.only_run());
    assert_eq!(show["end"]["outcome"], "rolled_back", "{show:#}");
    for id in ["a", "b", "c"] {
        assert_eq!(step(&show, id)["compensation"]["status"], "compensated");
    }
}

#[test]
fn rollback_retries_only_the_compensations_that_did_not_finish() {
    let case = incomplete_rollback();
    let rolled = case.engine(&["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_retried_only_what_did_not_finish(&case);
}

#[test]
fn resume_of_a_rollback_incomplete_run_retries_the_failed_compensations() {
    let case = incomplete_rollback();
    let resumed = case.engine(&["resume", "last"]);
    assert!(
        resumed.code == 0 || resumed.code == 1,
        "{}",
        resumed.snapshot()
    );
    assert_retried_only_what_did_not_finish(&case);
}

// ---------------------------------------------------------------------------------------
// 6. The runbook changed between crash and resume.

/// The run's id, the digest its journal recorded, and the file edited after the crash with
/// the digest it has now.
fn edited_after_the_crash(case: &Case) -> (String, String, String) {
    let run = case.only_run();
    let recorded = case.journal_records(&run)[0]["digest"]
        .as_str()
        .expect("a digest")
        .to_string();
    let changed = format!("{}# edited after the crash\n", idempotent_chain());
    std::fs::write(case.file(), &changed).expect("edit the runbook");
    let now = {
        use sha2::Digest;
        format!("sha256:{:x}", sha2::Sha256::digest(changed.as_bytes()))
    };
    assert_ne!(recorded, now);
    (run, recorded, now)
}

#[test]
fn an_edited_runbook_does_not_block_resume_the_copy_kept_with_the_run_is_used() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let run = case.only_run();
    let kept = case.state().join("runs").join(&run).join("runbook.yaml");
    assert_eq!(
        std::fs::read(&kept).expect("a copy of the runbook in the run directory"),
        idempotent_chain().as_bytes(),
        "the copy holds the file's exact bytes"
    );
    // Edited so that it would break the resume: the copy is what resumes.
    std::fs::write(case.file(), "version: 1\nname: broken\nsteps: []\n").expect("edit");
    let resumed = case.engine(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(case.count("a.mark"), 1);
    assert_eq!(case.count("b.mark"), 2);
    assert_eq!(case.count("c.mark"), 1);
}

#[test]
fn use_current_takes_the_file_as_it_is_now_and_refuses_a_changed_one_unless_allowed() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let (run, recorded, now) = edited_after_the_crash(&case);
    let refused = case.engine(&["resume", &run, "--use-current"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    for needed in ["--allow-changed", &recorded, &now] {
        assert!(
            refused.stderr.contains(needed),
            "{needed:?} missing:\n{}",
            refused.snapshot()
        );
    }
    let rollback = case.engine(&["rollback", &run, "--use-current"]);
    assert_eq!(rollback.code, 2, "{}", rollback.snapshot());
    assert!(rollback.stderr.contains("--allow-changed"));
    assert_eq!(case.count("undo"), 0);
    assert_eq!(case.count("b.mark"), 1, "nothing ran");

    let resumed = case.engine(&["resume", &run, "--use-current", "--allow-changed"]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(case.count("b.mark"), 2);
    assert_eq!(case.count("c.mark"), 1);
}

#[test]
fn a_run_kept_without_a_copy_falls_back_to_the_current_file_with_the_digest_check() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let (run, recorded, now) = edited_after_the_crash(&case);
    // As an older engine left it.
    std::fs::remove_file(case.state().join("runs").join(&run).join("runbook.yaml"))
        .expect("remove the copy");
    let refused = case.engine(&["resume", &run]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    for needed in ["--allow-changed", &recorded, &now] {
        assert!(
            refused.stderr.contains(needed),
            "{needed:?} missing:\n{}",
            refused.snapshot()
        );
    }
    assert_eq!(case.count("b.mark"), 1, "nothing ran");
    let resumed = case.engine(&["resume", &run, "--allow-changed"]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert_eq!(case.count("b.mark"), 2);
}

// ---------------------------------------------------------------------------------------
// 7. Journal damage.

/// Appends bytes to a file.
/// Writes `bytes` just after the journal's last record, as a write cut short by a power loss
/// leaves them: over the blank lines a running engine writes ahead of its records, or at the
/// end of a journal without them.
fn tear(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let text = std::fs::read(path).expect("read the journal");
    let end = text
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .map_or(text.len(), |blank| blank + 1);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open the journal");
    file.write_all_at(bytes, end as u64).expect("write");
}

#[test]
fn a_killed_engine_leaves_blank_lines_ahead_which_are_read_past_and_cut_once_the_run_ends() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let run = case.only_run();
    let journal = case.journal(&run);
    let text = std::fs::read_to_string(&journal).expect("journal");
    assert!(
        text.ends_with("\n\n"),
        "space is kept ahead of the records while a run is going"
    );
    let records = case.journal_records(&run).len();
    let show = case.show_json(&run);
    assert_eq!(show["torn_tail"], false);
    assert_eq!(show["records"].as_u64(), Some(records as u64));
    let resumed = case.engine(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert!(!resumed.stderr.contains("torn"), "{}", resumed.snapshot());
    let text = std::fs::read_to_string(&journal).expect("journal");
    assert!(
        text.ends_with("}\n") && !text.contains("\n\n"),
        "cut once the run ended"
    );
    assert!(case.journal_records(&run).len() > records);
}

const TORN: &[u8] = br#"{"crc":"0badf00d","seq":999,"data":{"event":"step_st"#;

#[test]
fn a_torn_last_record_is_ignored_and_the_next_record_starts_a_new_line() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let run = case.only_run();
    let journal = case.journal(&run);
    let before = case.journal_records(&run).len();
    tear(&journal, TORN);

    let show = case.engine(&["show", &run]);
    assert_eq!(show.code, 0, "{}", show.snapshot());
    assert!(show.stdout.contains("torn"), "{}", show.snapshot());
    let json = case.show_json(&run);
    assert_eq!(json["torn_tail"], true);
    assert_eq!(json["records"].as_u64(), Some(before as u64));

    let resumed = case.engine(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{}", resumed.snapshot());
    assert!(resumed.stderr.contains("torn"), "{}", resumed.snapshot());
    assert_eq!(case.count("b.mark"), 2);
    assert_eq!(case.count("c.mark"), 1);
    // Every line parses on its own: the record after the tear did not glue onto it.
    let records = case.journal_records(&run);
    assert!(records.len() > before, "resume appended records");
    assert_eq!(
        records.last().map(|last| &last["event"]),
        Some(&Value::from("run_finished"))
    );
    assert_eq!(case.show_json(&run)["torn_tail"], false);

    // Again, now for `rollback` of the finished run.
    let before = records.len();
    tear(&journal, TORN);
    let rolled = case.engine(&["rollback", &run]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(case.lines("undo"), ["c", "b", "a"]);
    let records = case.journal_records(&run);
    assert!(records.len() > before);
    assert!(
        !std::fs::read_to_string(&journal)
            .expect("journal")
            .contains("0badf00d"),
        "the torn record was cut off"
    );
    let show = case.show_json(&run);
    assert_eq!(show["end"]["outcome"], "rolled_back");
    assert_eq!(show["torn_tail"], false);
}

/// Flips one bit of a letter inside the `event` value of journal line `line` (1-based),
/// keeping the JSON well formed: only the record's CRC can tell.
fn flip_a_byte(path: &Path, line: usize) {
    let mut bytes = std::fs::read(path).expect("read the journal");
    let start: usize = bytes
        .split(|&byte| byte == b'\n')
        .take(line - 1)
        .map(|previous| previous.len() + 1)
        .sum();
    let record = &bytes[start..];
    let key = b"\"event\":\"";
    let at = record
        .windows(key.len())
        .position(|window| window == key)
        .expect("an event record")
        + key.len()
        + 2;
    bytes[start + at] ^= 0x01;
    std::fs::write(path, bytes).expect("write the journal");
}

#[test]
fn damage_in_the_middle_of_the_journal_is_refused_with_its_line() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let run = case.only_run();
    let journal = case.journal(&run);
    assert!(case.journal_records(&run).len() > 4);
    flip_a_byte(&journal, 3);
    let damaged = std::fs::read(&journal).expect("journal");

    for args in [
        vec!["show", run.as_str()],
        vec!["show", run.as_str(), "--format", "json"],
        vec!["resume", run.as_str()],
        vec!["rollback", run.as_str()],
    ] {
        let output = case.engine(&args);
        assert_eq!(output.code, 2, "{args:?}:\n{}", output.snapshot());
        assert!(
            output.stderr.contains("line 3"),
            "{args:?}:\n{}",
            output.snapshot()
        );
    }
    assert_eq!(
        std::fs::read(&journal).expect("journal"),
        damaged,
        "the damaged journal was not rewritten"
    );
    assert_eq!(case.count("b.mark"), 1, "nothing ran");
    assert_eq!(case.count("c.mark"), 0);
    assert_eq!(case.count("undo"), 0);
}

#[test]
fn a_new_run_is_refused_over_a_run_with_a_damaged_journal() {
    let case = crashed(&idempotent_chain(), "b.mark");
    case.touch("release");
    let run = case.only_run();
    flip_a_byte(&case.journal(&run), 3);
    let refused = case.engine(&["run", "{file}"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    assert!(refused.stderr.contains(&run), "{}", refused.snapshot());
    assert!(refused.stderr.contains("line 3"), "{}", refused.snapshot());
    assert_eq!(case.count("a.mark"), 1, "nothing ran");
}

// ---------------------------------------------------------------------------------------
// 8. What the journal holds, file modes, and no secret at rest.

const SECRET: &str = "Zq9-sekrit-Value-4711";

const SECRETIVE: &str = r#"
version: 1
name: secretive
vars:
  region: eu-west-1
  token:
    env: DEPLOY_TOKEN
    secret: true
    required: true
env:
  TOKEN: "{{vars.token}}"
steps:
  - id: leak
    run: |
      echo "stdout has $TOKEN"
      echo "stderr has $TOKEN" >&2
      printf '%s' "$TOKEN" | base64
      echo "token=$TOKEN" >> "$RUNBOOK_OUTPUT"
      echo "wrapped=before-${TOKEN}-after" >> "$RUNBOOK_OUTPUT"
      echo "region={{vars.region}}" >> "$RUNBOOK_OUTPUT"
    rollback: |
      echo "undo sees {{steps.leak.outputs.region}} and $TOKEN"
      echo "undo stderr $TOKEN" >&2
      echo undone >> undo
"#;

/// Every file under `directory`, recursively, and every directory.
fn walk(directory: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut directories = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(next) = pending.pop() {
        directories.push(next.clone());
        for entry in std::fs::read_dir(&next)
            .expect("read a directory")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    (files, directories)
}

fn secret_run() -> Case {
    let case = completed(SECRETIVE, &[("DEPLOY_TOKEN", SECRET)]);
    assert_eq!(case.anchor.code, 0, "{}", case.anchor.snapshot());
    let rolled = case.engine(&["rollback", "last"]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(case.count("undo"), 1);
    case
}

#[test]
fn the_journal_header_records_format_digest_and_vars_without_secret_values() {
    let case = secret_run();
    let run = case.only_run();
    let records = case.journal_records(&run);
    let header = &records[0];
    assert_eq!(header["record"], "run_started");
    assert_eq!(header["format"], 2);
    assert_eq!(header["run_id"], run.as_str());
    let text = std::fs::read(case.file()).expect("runbook");
    let digest = {
        use sha2::Digest;
        format!("sha256:{:x}", sha2::Sha256::digest(&text))
    };
    assert_eq!(header["digest"], digest.as_str());
    let vars = header["vars"].as_array().expect("vars");
    let var = |name: &str| {
        vars.iter()
            .find(|var| var["name"] == name)
            .unwrap_or_else(|| panic!("no var {name} in {vars:?}"))
    };
    assert_eq!(var("region")["value"], "eu-west-1");
    assert_eq!(var("region")["secret"], false);
    let token = var("token");
    assert_eq!(token["secret"], true);
    assert!(token["value"].is_null(), "{token}");
    assert!(
        token["source"]
            .as_str()
            .is_some_and(|source| source.contains("DEPLOY_TOKEN")),
        "{token}"
    );
}

#[test]
fn run_files_are_private_to_the_user() {
    let case = secret_run();
    let run = case.only_run();
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    let (files, directories) = walk(&case.run_dir(&run));
    assert!(files.iter().any(|file| file.ends_with("journal.jsonl")));
    assert!(files.iter().any(|file| file.ends_with("logs/leak.log")));
    for directory in &directories {
        assert_eq!(mode(directory), 0o700, "{}", directory.display());
    }
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&case.state().join("runs")), 0o700);
    assert_eq!(mode(&case.state().join("locks")), 0o700);
    assert_eq!(mode(&case.state().join("locks/secretive.lock")), 0o600);
}

#[test]
fn no_secret_is_at_rest_under_the_state_directory() {
    let case = secret_run();
    let (files, _) = walk(&case.state());
    assert!(files.len() >= 3, "{files:?}");
    let forms = [
        SECRET.to_string(),
        base64(SECRET.as_bytes()),
        base64(format!("{SECRET}\n").as_bytes()),
    ];
    for file in &files {
        let bytes = std::fs::read(file).expect("read a state file");
        let text = String::from_utf8_lossy(&bytes);
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{form:?} found in {}:\n{text}",
                file.display()
            );
        }
    }
    // The outputs were recorded, masked.
    let show = case.show_json(&case.only_run());
    let outputs = &step(&show, "leak")["outputs"];
    assert!(
        outputs.as_array().is_some_and(|pairs| pairs
            .iter()
            .any(|pair| pair[0] == "token" && pair[1] == MASK)),
        "{outputs}"
    );
}

// ---------------------------------------------------------------------------------------
// 9. Step logs.

#[test]
fn a_step_log_holds_its_output_masked() {
    let case = secret_run();
    let log = std::fs::read_to_string(case.run_dir(&case.only_run()).join("logs/leak.log"))
        .expect("the step's log");
    for line in [
        format!("| stdout has {MASK}"),
        format!("! stderr has {MASK}"),
        format!("undo| undo sees eu-west-1 and {MASK}"),
        format!("undo! undo stderr {MASK}"),
    ] {
        assert!(log.contains(&line), "{line:?} missing:\n{log}");
    }
    assert!(!log.contains(SECRET), "{log}");
}

/// 52 429 lines of 99 characters: 5 MiB and a little.
const LOUD: &str = r#"
version: 1
name: loud
steps:
  - id: loud
    run: |
      echo first-line
      awk 'BEGIN { s = sprintf("%099d", 0); for (i = 0; i < 52429; i++) print s }'
      echo last-line
"#;

#[test]
fn a_step_log_is_bounded_and_says_how_much_it_dropped() {
    let anchor = Test::new()
        .runbook(LOUD)
        .args([
            "run",
            "{file}",
            "--state-dir",
            "{dir}/state",
            "--progress",
            "none",
        ])
        .run_within(LIMIT);
    let case = Case {
        anchor,
        env: Vec::new(),
    };
    assert_eq!(case.anchor.code, 0, "{}", case.anchor.snapshot());
    let path = case.run_dir(&case.only_run()).join("logs/loud.log");
    let log = std::fs::read_to_string(&path).expect("the step's log");
    assert!(log.len() < 3 * 1024 * 1024, "{} bytes", log.len());
    assert!(log.starts_with("| first-line\n"), "the head is kept");
    assert!(log.ends_with("| last-line\n"), "the tail is kept");
    let notice = log
        .lines()
        .find(|line| line.contains("dropped"))
        .unwrap_or_else(|| panic!("no line says what was dropped"));
    let dropped: u64 = notice
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {notice:?}"));
    // Each line is logged as "| " + line + "\n".
    let total = ("first-line".len() + 3) as u64 + 52_429 * 102 + ("last-line".len() + 3) as u64;
    let kept = (log.len() - notice.len() - 1) as u64;
    assert_eq!(kept + dropped, total, "{notice}");
}

// ---------------------------------------------------------------------------------------
// 11. JSON of `history` and `show`.

const TWO_WAYS: &str = r#"
version: 1
name: two-ways
vars:
  fail: "no"
steps:
  - id: first
    run: echo first >> first.mark
    rollback: echo first >> undo
  - id: second
    needs: [first]
    run: |
      echo second >> second.mark
      test {{quote vars.fail}} = no
    rollback: echo second >> undo
"#;

#[test]
fn history_and_show_as_json_name_the_run_its_outcome_and_steps() {
    let case = completed(TWO_WAYS, &[]);
    assert_eq!(case.anchor.code, 0, "{}", case.anchor.snapshot());
    let succeeded_id = case.only_run();
    let failed = case.engine(&["run", "{file}", "--var", "fail=yes"]);
    assert_eq!(failed.code, 1, "{}", failed.snapshot());
    let failed_id = case
        .run_ids()
        .into_iter()
        .find(|id| *id != succeeded_id)
        .expect("a second run");
    let ids = [succeeded_id, failed_id];

    let history = case.history_json();
    assert_eq!(history.len(), 2, "{history:#?}");
    for (id, outcome, code) in [(&ids[0], "succeeded", 0), (&ids[1], "rolled_back", 1)] {
        let entry = entry(&history, id);
        assert_eq!(entry["runbook"], "two-ways");
        assert_eq!(entry["outcome"], outcome, "{entry}");
        assert_eq!(entry["exit_code"], code, "{entry}");
        assert!(entry["started_at"].is_string(), "{entry}");
    }

    let succeeded = case.show_json(&ids[0]);
    assert_eq!(succeeded["run_id"], ids[0].as_str());
    assert_eq!(succeeded["runbook"], "two-ways");
    assert_eq!(succeeded["end"]["outcome"], "succeeded");
    assert_eq!(succeeded["end"]["exit_code"], 0);
    let step_ids: Vec<&str> = succeeded["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|step| step["id"].as_str())
        .collect();
    assert_eq!(step_ids, ["first", "second"]);
    for id in ["first", "second"] {
        assert_eq!(step(&succeeded, id)["forward"]["status"], "succeeded");
        assert!(step(&succeeded, id)["compensation"].is_null());
    }

    let last = case.show_json(&ids[1]);
    assert_eq!(last["run_id"], ids[1].as_str());
    assert_eq!(last["end"]["outcome"], "rolled_back");
    assert_eq!(last["end"]["exit_code"], 1);
    assert_eq!(step(&last, "second")["forward"]["status"], "failed");
    assert_eq!(step(&last, "first")["forward"]["status"], "succeeded");
    for id in ["first", "second"] {
        assert_eq!(step(&last, id)["compensation"]["status"], "compensated");
    }
    assert_eq!(case.lines("undo"), ["second", "first"]);
}

#[test]
fn last_names_the_newest_run_even_within_one_second() {
    let case = completed(TWO_WAYS, &[]);
    assert_eq!(case.anchor.code, 0, "{}", case.anchor.snapshot());
    let mut known = case.run_ids();
    for _ in 0..8 {
        let output = case.engine(&["run", "{file}"]);
        assert_eq!(output.code, 0, "{}", output.snapshot());
        let new: Vec<String> = case
            .run_ids()
            .into_iter()
            .filter(|id| !known.contains(id))
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        let show = case.show_json("last");
        assert_eq!(
            show["run_id"],
            new[0].as_str(),
            "`last` after runs {known:?} and then {}",
            new[0]
        );
        known.extend(new);
    }
}
