//! The run lock (SPEC §8.2, §10; RELIABILITY §7): while a run, resume or rollback of a runbook
//! holds its lock, every other `run`, `resume` or `rollback` of that runbook in the same state
//! directory exits 75 at once, naming the holder; other runbooks are not held up; of twenty
//! simultaneous starts exactly one runs; a killed holder frees the lock (and the new run is
//! then refused only because the old one is unfinished).
//!
//! The holding step records its pid (`$$`, its group's leader) and its engine's pid (`$PPID`),
//! appends to `held.mark`, then waits for `release`: the tests wait for the marker (bounded),
//! never sleep to synchronise, and count marker lines to prove what ran.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Output, Running, Test, group_members, lines};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// A refusal must not wait for the holder: far less than the holder's lifetime.
const AT_ONCE: Duration = Duration::from_secs(10);

const LOCKED: &str = r#"
version: 1
name: locked
steps:
  - id: hold
    run: |
      echo $$ >> pids
      echo $PPID >> engines
      echo held >> held.mark
      while [ ! -f release ]; do sleep 0.05; done
    rollback: echo undo >> undo
"#;

const OTHER: &str = r#"
version: 1
name: other
steps:
  - id: quick
    run: echo other >> other.mark
"#;

/// A test directory with `runbook.yaml` and a state directory `state`, kept alive by the
/// output of the first command run in it.
struct Case {
    directory: PathBuf,
    _keep: tempfile::TempDir,
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::write(self.directory.join("release"), "");
        kill_step_processes(&self.directory);
    }
}

impl Case {
    fn new(yaml: &str) -> Case {
        let keep = tempfile::tempdir().expect("a temporary directory");
        let directory = keep.path().to_path_buf();
        std::fs::write(directory.join("runbook.yaml"), yaml).expect("write the runbook");
        Case {
            directory,
            _keep: keep,
        }
    }

    fn dir(&self) -> &Path {
        &self.directory
    }

    fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// `runbook ARGS --state-dir <dir>/state` in the test directory, not waited for; `{file}`
    /// stands for the runbook, `{dir}` for the test directory.
    fn start(&self, args: &[&str]) -> Running {
        let file = self.dir().join("runbook.yaml").display().to_string();
        let directory = self.dir().display().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.replace("{file}", &file).replace("{dir}", &directory))
            .collect();
        Test::new()
            .current_dir(self.dir())
            .args(&args)
            .args(["--state-dir", &self.state().display().to_string()])
            .spawn()
    }

    fn engine(&self, args: &[&str]) -> Output {
        let output = self.start(args).finish(LIMIT);
        assert!(
            !output.stderr.contains("panicked"),
            "panic:\n{}",
            output.snapshot()
        );
        output
    }

    /// Like `engine`, and how long it took.
    fn timed(&self, args: &[&str]) -> (Output, Duration) {
        let started = Instant::now();
        let output = self.engine(args);
        (output, started.elapsed())
    }

    fn count(&self, name: &str) -> usize {
        lines(self.dir(), name).len()
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.dir().join(name), "").expect("create a file");
    }

    /// Waits (bounded) until the file `name` exists in the test directory.
    fn wait_for(&self, name: &str) {
        let path = self.dir().join(name);
        let deadline = Instant::now() + LIMIT;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "`{name}` did not appear within {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

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

    fn only_run(&self) -> String {
        let ids = self.run_ids();
        assert_eq!(ids.len(), 1, "expected one run, found {ids:?}");
        ids[0].clone()
    }

    /// Whether the lock of `runbook` can be taken now (and releases it again).
    fn lock_is_free(&self, runbook: &str) -> bool {
        let path = self.state().join("locks").join(format!("{runbook}.lock"));
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
        Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok()
    }
}

/// Kills the process groups of the step processes listed in `pids`, if still alive.
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

fn assert_refused_by_lock(output: &Output, elapsed: Duration, holder_run: &str, holder_pid: i32) {
    assert_eq!(output.code, 75, "{}", output.snapshot());
    assert!(elapsed < AT_ONCE, "refused only after {elapsed:?}");
    for needed in [holder_run.to_string(), format!("pid {holder_pid}")] {
        assert!(
            output.stderr.contains(&needed),
            "the holder's {needed:?} is not named:\n{}",
            output.snapshot()
        );
    }
}

#[test]
fn a_second_run_resume_or_rollback_of_a_held_runbook_exits_75_naming_the_holder() {
    let case = Case::new(LOCKED);
    std::fs::write(case.dir().join("other.yaml"), OTHER).expect("write the other runbook");
    let holder = case.start(&["run", "{file}"]);
    case.wait_for("held.mark");
    let holder_run = case.only_run();
    let holder_pid = holder.pid();

    let (second, elapsed) = case.timed(&["run", "{file}"]);
    assert_refused_by_lock(&second, elapsed, &holder_run, holder_pid);
    assert_eq!(
        case.run_ids(),
        std::slice::from_ref(&holder_run),
        "the refused run left no run"
    );

    let (other, _) = case.timed(&["run", "{dir}/other.yaml"]);
    assert_eq!(
        other.code,
        0,
        "another runbook is not held up:\n{}",
        other.snapshot()
    );
    assert_eq!(case.count("other.mark"), 1);

    for command in ["resume", "rollback"] {
        let (output, elapsed) = case.timed(&[command, &holder_run]);
        assert_refused_by_lock(&output, elapsed, &holder_run, holder_pid);
    }
    assert_eq!(
        case.count("held.mark"),
        1,
        "nothing ran the held step again"
    );
    assert_eq!(case.count("undo"), 0, "nothing compensated it");

    case.touch("release");
    let finished = holder.finish(LIMIT);
    assert_eq!(finished.code, 0, "{}", finished.snapshot());

    // Released with the run: the next run takes the lock at once.
    let (next, _) = case.timed(&["run", "{file}"]);
    assert_eq!(next.code, 0, "{}", next.snapshot());
    assert_eq!(case.count("held.mark"), 2);
}

#[test]
fn a_run_is_refused_while_a_rollback_of_the_runbook_holds_the_lock() {
    let case = Case::new(
        r#"
version: 1
name: slow-undo
steps:
  - id: change
    run: echo change >> change.mark
    rollback: |
      echo $$ >> pids
      echo undo >> undo.mark
      while [ ! -f release ]; do sleep 0.05; done
"#,
    );
    let first = case.engine(&["run", "{file}"]);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let run = case.only_run();
    let rollback = case.start(&["rollback", &run]);
    case.wait_for("undo.mark");

    let (refused, elapsed) = case.timed(&["run", "{file}"]);
    assert_refused_by_lock(&refused, elapsed, &run, rollback.pid());
    assert!(
        refused.stderr.contains("rollback of run"),
        "{}",
        refused.snapshot()
    );
    let (again, elapsed) = case.timed(&["rollback", &run]);
    assert_refused_by_lock(&again, elapsed, &run, rollback.pid());
    assert_eq!(case.count("change.mark"), 1);
    assert_eq!(case.count("undo.mark"), 1, "one rollback ran");

    case.touch("release");
    let finished = rollback.finish(LIMIT);
    assert_eq!(finished.code, 0, "{}", finished.snapshot());
}

#[test]
fn of_twenty_simultaneous_starts_exactly_one_runs() {
    let case = Case::new(LOCKED);
    let engines: Vec<Running> = (0..20).map(|_| case.start(&["run", "{file}"])).collect();
    case.wait_for("held.mark");
    let winner: i32 = lines(case.dir(), "engines")
        .first()
        .and_then(|pid| pid.trim().parse().ok())
        .expect("the running step's engine pid");
    assert!(
        engines.iter().any(|engine| engine.pid() == winner),
        "the step's parent {winner} is one of the engines"
    );
    let mut holder = None;
    let mut refused = 0;
    for engine in engines {
        if engine.pid() == winner {
            holder = Some(engine);
            continue;
        }
        let output = engine.finish(LIMIT);
        assert_eq!(output.code, 75, "{}", output.snapshot());
        assert!(
            output
                .stderr
                .contains("another run holds the lock `locked`: run "),
            "{}",
            output.snapshot()
        );
        refused += 1;
    }
    assert_eq!(refused, 19);
    assert_eq!(case.count("held.mark"), 1, "exactly one ran");
    assert_eq!(case.count("engines"), 1);
    assert_eq!(case.run_ids().len(), 1, "the refused starts left no run");

    case.touch("release");
    let finished = holder.expect("the holder").finish(LIMIT);
    assert_eq!(finished.code, 0, "{}", finished.snapshot());
    assert!(case.lock_is_free("locked"));

    let (next, _) = case.timed(&["run", "{file}"]);
    assert_eq!(next.code, 0, "{}", next.snapshot());
    assert_eq!(case.count("held.mark"), 2);
}

#[test]
fn a_killed_holder_frees_the_lock_and_its_unfinished_run_is_what_refuses() {
    let case = Case::new(LOCKED);
    let holder = case.start(&["run", "{file}"]);
    case.wait_for("held.mark");
    let run = case.only_run();
    assert!(!case.lock_is_free("locked"), "the running engine holds it");
    holder.signal(Signal::SIGKILL);
    let killed = holder.finish(LIMIT);
    assert_eq!(killed.code, -1, "{}", killed.snapshot());

    // The watchdog stops the step the dead engine left behind; it held no copy of the lock
    // descriptor either way (close-on-exec), so the lock is free.
    assert!(case.lock_is_free("locked"), "a dead holder frees the lock");
    kill_step_processes(case.dir());

    let (refused, elapsed) = case.timed(&["run", "{file}"]);
    assert_eq!(refused.code, 2, "{}", refused.snapshot());
    assert!(elapsed < AT_ONCE, "{elapsed:?}");
    assert!(
        refused.stderr.contains(&run) && refused.stderr.contains("unfinished"),
        "{}",
        refused.snapshot()
    );
    assert_eq!(case.count("held.mark"), 1);

    case.touch("release");
    let forced = case.engine(&["run", "{file}", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.snapshot());
    assert_eq!(case.count("held.mark"), 2);
}
