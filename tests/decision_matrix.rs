//! `examples/decision-matrix.yaml` in each of its branches: the test plays the service (the
//! files the runbook measures) and checks what the runbook did about it: roll back now, quick
//! fix (working, or followed by a rollback), ask a person (who denies, or does not answer),
//! or fix forward.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test, lines};

const LIMIT: Duration = Duration::from_secs(60);

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/decision-matrix.yaml");
    std::fs::read_to_string(path).expect("the example")
}

/// The service as the runbook finds it: `up`, its error rate, data at risk, and whether the
/// quick fix will work.
struct Service {
    up: bool,
    rate: &'static str,
    data_at_risk: bool,
    fixable: bool,
}

impl Service {
    fn up(rate: &'static str) -> Service {
        Service {
            up: true,
            rate,
            data_at_risk: false,
            fixable: false,
        }
    }

    fn test(&self) -> Test {
        let mut test = Test::new()
            .runbook(&example())
            .file(".decision-service/error_rate", &format!("{}\n", self.rate))
            .file(".decision-service/version", "2.0\n")
            .file(".decision-service/previous_version", "1.0\n")
            .file(
                ".decision-service/data_at_risk",
                if self.data_at_risk { "yes\n" } else { "no\n" },
            );
        if self.up {
            test = test.file(".decision-service/up", "");
        }
        if self.fixable {
            test = test.file(".decision-service/fixable", "");
        }
        test.args(["run", "{file}", "--state-dir", "{dir}/state"])
            // Short windows: the branches, not the waiting, are under test.
            .args([
                "--var",
                "quick_fix_window=1s",
                "--var",
                "quick_fix_hold=300ms",
            ])
    }

    fn run(&self, extra: &[&str]) -> Output {
        let output = self.test().args(extra).run_within(LIMIT);
        assert!(!output.stderr.contains("panicked"), "{}", output.snapshot());
        output
    }
}

fn service_file(output: &Output, name: &str) -> String {
    std::fs::read_to_string(output.directory.join(".decision-service").join(name))
        .unwrap_or_default()
}

fn actions(output: &Output) -> Vec<String> {
    lines(&output.directory.join(".decision-service"), "actions")
}

/// The run's `summary` line: what it decided.
fn summary(output: &Output) -> String {
    output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", output.stdout))
        .to_string()
}

/// The report's line for one branch: `skipped` or `succeeded`.
fn reported(output: &Output, branch: &str) -> String {
    let report = service_file(output, "report");
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix(branch).map(str::trim))
        .unwrap_or_else(|| panic!("no `{branch}` in the report:\n{report}"))
        .to_string()
}

#[test]
fn a_service_that_is_down_is_rolled_back_at_once() {
    let output = Service {
        up: false,
        ..Service::up("3")
    }
    .run(&[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["rollback"]);
    assert_eq!(service_file(&output, "version"), "1.0\n");
    assert_eq!(reported(&output, "roll back now"), "succeeded");
    assert_eq!(reported(&output, "fix forward"), "skipped");
    assert_eq!(
        summary(&output),
        "error rate 3%, up no: rolled back at once"
    );
    assert!(
        output
            .stdout
            .contains("quick_fix: skipped (needs `triage`, which was skipped)"),
        "{}",
        output.stdout
    );

    // Data at risk weighs the same, whatever the error rate.
    let output = Service {
        data_at_risk: true,
        ..Service::up("1")
    }
    .run(&[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["rollback"]);
}

#[test]
fn a_high_error_rate_gets_the_quick_fix_and_a_rollback_when_it_does_not_help() {
    let output = Service::up("15").run(&[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["quick_fix", "rollback"]);
    assert_eq!(service_file(&output, "version"), "1.0\n");
    assert_eq!(reported(&output, "quick fix then roll back"), "succeeded");
    assert_eq!(
        summary(&output),
        "error rate 15%, up yes: the quick fix did not help, rolled back"
    );

    // The fix works: it settles under 5% and holds, and nothing is rolled back.
    let output = Service {
        fixable: true,
        ..Service::up("15")
    }
    .run(&[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["quick_fix"]);
    assert_eq!(service_file(&output, "version"), "2.0\n");
    assert_eq!(reported(&output, "quick fix then roll back"), "skipped");
    assert_eq!(
        summary(&output),
        "error rate 15%, up yes: the quick fix held"
    );
}

#[test]
fn a_middling_error_rate_asks_a_person_and_nobody_answering_rolls_back() {
    let output = Service::up("7").run(&["--var", "ask_timeout=1s"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["rollback"]);
    assert_eq!(reported(&output, "asked then roll back"), "succeeded");
    assert_eq!(
        summary(&output),
        "error rate 7%, up yes: asked (timed_out), rolled back"
    );
    assert!(
        output
            .stdout
            .contains("nobody answered in time: approved by `on_timeout`"),
        "{}",
        output.stdout
    );
}

#[test]
fn a_middling_error_rate_asks_a_person_who_chooses_to_fix_forward() {
    let mut running = Service::up("7").test().spawn();
    running.wait_for_stdout("ask_oncall: waiting for approval", LIMIT);
    let state = running.path().join("state").display().to_string();
    let denied = Test::new()
        .args(["deny", "last", "ask_oncall", "--reason", "a fix is ready"])
        .args(["--state-dir", &state])
        .env("USER", "oncall")
        .run_within(LIMIT);
    assert_eq!(denied.code, 0, "{}", denied.snapshot());
    let output = running.finish(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["fix_forward"]);
    assert_eq!(service_file(&output, "version"), "2.0\n");
    assert_eq!(reported(&output, "asked then fix forward"), "succeeded");
    assert_eq!(
        summary(&output),
        "error rate 7%, up yes: asked (denied), fixing forward"
    );
    assert!(
        output
            .stdout
            .contains("denied by oncall (command): a fix is ready"),
        "{}",
        output.stdout
    );
}

#[test]
fn a_low_error_rate_is_fixed_forward() {
    let output = Service::up("2").run(&[]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(actions(&output), ["fix_forward"]);
    assert_eq!(
        service_file(&output, "ticket"),
        "error rate 2%: fix forward\n"
    );
    assert_eq!(reported(&output, "fix forward"), "succeeded");
    assert_eq!(reported(&output, "roll back now"), "skipped");
    assert_eq!(summary(&output), "error rate 2%, up yes: fixing forward");
}

#[test]
fn an_error_rate_that_is_not_a_number_stops_the_run_instead_of_choosing_nothing() {
    let output = Service::up("n/a").run(&[]);
    assert_ne!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("cannot compare `n/a` with `10`"),
        "{}",
        output.stdout
    );
    assert!(actions(&output).is_empty());
}
