//! Repeated warnings: after the first ten of a kind, `validate`, `plan` and `run` print one
//! line counting the rest; `--all-warnings` shows them all, JSON always has all of them, and
//! errors are never capped.

mod common;

use common::Test;
use serde_json::Value;

/// `steps` steps, each with two warnings: an unquoted var in its script, and no `rollback`.
/// With `broken`, each step also needs an unknown step (one error a step).
fn runbook(steps: usize, broken: bool) -> String {
    let mut text = String::from("version: 1\nname: many\nvars:\n  greeting: hello\nsteps:\n");
    for index in 0..steps {
        text.push_str(&format!("  - id: step_{index}\n"));
        if broken {
            text.push_str(&format!("    needs: [missing_{index}]\n"));
        }
        text.push_str(&format!("    run: echo {{{{vars.greeting}}}} {index}\n"));
    }
    text
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

const NO_ROLLBACK: &str = "runs a command but has no `rollback`";
const UNQUOTED: &str = "is pasted into a shell script without `quote`";

#[test]
fn validate_shows_ten_warnings_of_a_kind_then_counts_the_rest() {
    let output = Test::new()
        .runbook(&runbook(1234, false))
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 10);
    assert_eq!(occurrences(&output.stderr, UNQUOTED), 10);
    let cap = "and 1,224 more like this (`--all-warnings` shows them)";
    assert_eq!(occurrences(&output.stderr, cap), 2, "{}", output.stderr);
    // The summary still counts every warning.
    assert!(
        output.stdout.contains("is valid (2468 warnings)"),
        "{}",
        output.stdout
    );
}

#[test]
fn the_count_line_follows_the_tenth_warning_of_its_kind() {
    let output = Test::new()
        .runbook(&runbook(11, false))
        .args(["validate", "{file}"])
        .run();
    let lines: Vec<&str> = output.stderr.lines().collect();
    let tenth = lines
        .iter()
        .position(|line| line.contains("step `step_9` runs a command"))
        .expect("the tenth no-rollback warning");
    let count = lines
        .iter()
        .position(|line| line.contains("and 1 more like this"))
        .expect("the count line");
    assert!(count > tenth, "{}", output.stderr);
    assert!(!output.stderr.contains("step `step_10` runs a command"));
}

#[test]
fn ten_warnings_of_a_kind_are_shown_without_a_count_line() {
    let output = Test::new()
        .runbook(&runbook(10, false))
        .args(["validate", "{file}"])
        .run();
    assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 10);
    assert!(
        !output.stderr.contains("more like this"),
        "{}",
        output.stderr
    );
}

#[test]
fn all_warnings_shows_every_warning() {
    let output = Test::new()
        .runbook(&runbook(1234, false))
        .args(["validate", "--all-warnings", "{file}"])
        .run();
    assert_eq!(output.code, 0);
    assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 1234);
    assert_eq!(occurrences(&output.stderr, UNQUOTED), 1234);
    assert!(!output.stderr.contains("more like this"));
    assert!(output.stderr.contains("step `step_1233` runs a command"));
}

#[test]
fn json_has_every_warning() {
    let output = Test::new()
        .runbook(&runbook(1234, false))
        .args(["validate", "--format", "json", "{file}"])
        .run();
    assert_eq!(output.code, 0);
    let document: Value = serde_json::from_str(&output.stdout).expect("json");
    let file = &document["files"][0];
    assert_eq!(file["warnings"], 2468);
    let diagnostics = file["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diagnostics.len(), 2468);
    let of_code = |code: &str| {
        diagnostics
            .iter()
            .filter(|diagnostic| diagnostic["code"] == code)
            .count()
    };
    assert_eq!(of_code("no-rollback"), 1234);
    assert_eq!(of_code("unquoted-template"), 1234);
    assert!(!output.stdout.contains("more like this"));
}

#[test]
fn errors_are_never_capped() {
    let output = Test::new()
        .runbook(&runbook(30, true))
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.stderr);
    for index in 0..30 {
        let message = format!("step `step_{index}` needs unknown step `missing_{index}`");
        assert!(output.stderr.contains(&message), "missing: {message}");
    }
    // The warnings beside them are still capped.
    assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 10);
    assert!(output.stderr.contains("and 20 more like this"));
    assert!(
        output
            .stderr
            .contains("is not a valid runbook (30 errors, 60 warnings)"),
        "{}",
        output.stderr
    );
}

#[test]
fn strict_makes_warnings_errors_and_shows_them_all() {
    let output = Test::new()
        .runbook(&runbook(30, false))
        .args(["validate", "--strict", "{file}"])
        .run();
    assert_eq!(output.code, 2);
    assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 30);
    assert!(!output.stderr.contains("more like this"));
}

#[test]
fn plan_and_run_cap_the_warnings_printed_beside_errors() {
    for command in ["plan", "run"] {
        let output = Test::new()
            .runbook(&runbook(25, true))
            .args([command, "{file}"])
            .run();
        assert_eq!(output.code, 2, "{command}: {}", output.stderr);
        assert_eq!(occurrences(&output.stderr, "needs unknown step"), 25);
        assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 10, "{command}");
        assert_eq!(
            occurrences(
                &output.stderr,
                "and 15 more like this (`--all-warnings` shows them)"
            ),
            2,
            "{command}: {}",
            output.stderr
        );
        assert!(!output.marker_exists());
    }
}

#[test]
fn plan_and_run_show_every_warning_with_all_warnings() {
    for args in [
        vec!["plan", "--all-warnings", "{file}"],
        vec!["run", "--all-warnings", "{file}"],
        vec!["run", "--dry-run", "--all-warnings", "{file}"],
    ] {
        let output = Test::new().runbook(&runbook(25, true)).args(&args).run();
        assert_eq!(output.code, 2, "{args:?}");
        assert_eq!(occurrences(&output.stderr, NO_ROLLBACK), 25, "{args:?}");
        assert_eq!(occurrences(&output.stderr, UNQUOTED), 25, "{args:?}");
        assert!(!output.stderr.contains("more like this"));
    }
}
