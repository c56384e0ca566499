//! A secret given by `--var` or `--vars-file` is not in the journal, so `rollback RUN` and
//! `resume RUN` take it again the same way (issue 10, item 3): without it they refuse naming
//! it and how to give it, and nothing runs; a value for a variable the journal recorded, or for
//! one the run does not have, is refused, since a recovery uses what the run used.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

const SECRET: &str = "Zp4-given-on-the-command-line";

/// `undo a` saves the secret it gets and fails until a file `fixed` exists; `b` fails when
/// `fail` is `yes`.
const RUNBOOK: &str = r#"
version: 1
name: given-secret
vars:
  tok: { secret: true, required: true }
  fail: { default: "no" }
env:
  TOKEN: "{{vars.tok}}"
steps:
  - id: a
    run: "true"
    rollback:
      run: |
        printf '%s\n' "$TOKEN" >> received
        test -e fixed
  - id: b
    needs: [a]
    readonly: true
    run: test {{quote vars.fail}} != yes
"#;

fn no_panic(output: &Output) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
}

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

fn received(directory: &Path) -> Vec<String> {
    std::fs::read_to_string(directory.join("received"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn first_run(extra: &[&str]) -> Output {
    let output = Test::new()
        .runbook(RUNBOOK)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(extra)
        .run_within(LIMIT);
    no_panic(&output);
    output
}

#[test]
fn rollback_of_a_run_given_a_secret_takes_it_again_and_refuses_without_it() {
    let first = first_run(&["--var", &format!("tok={SECRET}")]);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let directory = first.directory.clone();
    std::fs::write(directory.join("fixed"), "").expect("fixed");

    let without = engine(&directory, &["rollback", "last"]);
    assert_eq!(without.code, 2, "{}", without.snapshot());
    assert!(
        without.stderr.contains("secret `tok` of run"),
        "{}",
        without.snapshot()
    );
    assert!(
        without
            .stderr
            .contains("was given by `--var` and the journal does not record secrets"),
        "{}",
        without.snapshot()
    );
    assert!(
        without.stderr.contains("--var tok=..."),
        "{}",
        without.snapshot()
    );
    assert!(received(&directory).is_empty(), "nothing ran");

    let recorded = engine(&directory, &["rollback", "last", "--var", "fail=yes"]);
    assert_eq!(recorded.code, 2, "{}", recorded.snapshot());
    assert!(
        recorded
            .stderr
            .contains("recorded the value of `fail` and a rollback or resume uses it"),
        "{}",
        recorded.snapshot()
    );
    let unknown = engine(&directory, &["rollback", "last", "--var", "tokk=1"]);
    assert_eq!(unknown.code, 2, "{}", unknown.snapshot());
    assert!(
        unknown.stderr.contains("has no variable `tokk`"),
        "{}",
        unknown.snapshot()
    );
    assert!(received(&directory).is_empty(), "nothing ran");

    std::fs::write(directory.join("secrets.yaml"), format!("tok: {SECRET}\n")).expect("write");
    let secrets = directory.join("secrets.yaml").display().to_string();
    let rolled = engine(&directory, &["rollback", "last", "--vars-file", &secrets]);
    assert_eq!(rolled.code, 0, "{}", rolled.snapshot());
    assert_eq!(received(&directory), [SECRET], "the compensation got it");
    assert!(!rolled.stdout.contains(SECRET), "{}", rolled.stdout);
}

#[test]
fn resume_of_an_incomplete_rollback_takes_the_secret_again() {
    let first = first_run(&["--var", &format!("tok={SECRET}"), "--var", "fail=yes"]);
    assert_eq!(first.code, 3, "{}", first.snapshot());
    let directory = first.directory.clone();
    assert_eq!(received(&directory), [SECRET]);

    let without = engine(&directory, &["resume", "last"]);
    assert_eq!(without.code, 2, "{}", without.snapshot());
    assert!(
        without
            .stderr
            .contains("was given by `--var` and the journal does not record secrets"),
        "{}",
        without.snapshot()
    );
    assert_eq!(received(&directory), [SECRET], "nothing ran");

    std::fs::write(directory.join("fixed"), "").expect("fixed");
    let resumed = engine(
        &directory,
        &["resume", "last", "--var", &format!("tok={SECRET}")],
    );
    assert_eq!(resumed.code, 1, "{}", resumed.snapshot());
    assert_eq!(received(&directory), [SECRET, SECRET]);
    assert!(!resumed.stdout.contains(SECRET), "{}", resumed.stdout);
}
