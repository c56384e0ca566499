//! Probes (SPEC §5): `within` and `hold` together settle, then watch; a probe's `name` is a
//! template, rendered when the probe runs and checked by `validate`.

mod common;

use std::time::Duration;

use common::{Test, json_events};

const LIMIT: Duration = Duration::from_secs(60);

/// The probe counts its samples in the file `n`: it passes from the third sample on, until
/// the count reaches `break_at`.
const SETTLING: &str = r#"
version: 1
name: settling
vars:
  min: "3"
  break_at: "1000"
steps:
  - id: restart
    readonly: true
    run: rm -f n
    verify:
      - name: "sample count reached {{vars.min}}"
        run: |
          n=$(( $(cat n 2>/dev/null || echo 0) + 1 ))
          echo "$n" > n
          if [ "$n" -ge {{quote vars.break_at}} ]; then echo 0; else echo "$n"; fi
        expect: { stdout_number: ">= {{vars.min}}" }
        within: 30s
        hold: 300ms
        interval: 20ms
"#;

fn probe_event(stdout: &str) -> serde_json::Value {
    json_events(stdout)
        .into_iter()
        .find(|event| event["event"] == "probe_finished")
        .expect("a probe_finished event")
}

#[test]
fn a_probe_settles_then_holds_under_its_rendered_name() {
    let output = Test::new()
        .runbook(SETTLING)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(["--log-format", "json"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let probe = probe_event(&output.stdout);
    assert_eq!(probe["probe"], "sample count reached 3");
    assert_eq!(probe["passed"], true);
    let message = probe["message"].as_str().expect("a message");
    assert!(
        message.contains("(settled after 3 samples over ") && message.contains(", then on all "),
        "{message}"
    );
    assert!(probe["samples"].as_u64().expect("samples") >= 4, "{probe}");
}

#[test]
fn a_probe_that_settles_and_then_breaks_fails_in_the_window() {
    let output = Test::new()
        .runbook(SETTLING)
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .args(["--var", "break_at=5", "--log-format", "json"])
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let probe = probe_event(&output.stdout);
    assert_eq!(probe["passed"], false);
    assert_eq!(probe["samples"], 5);
    let message = probe["message"].as_str().expect("a message");
    assert!(
        message.contains("settled after 3 samples over ") && message.contains(", then sample 3, "),
        "{message}"
    );
}

#[test]
fn plan_shows_both_timings_and_the_rendered_name() {
    let output = Test::new().runbook(SETTLING).args(["plan", "{file}"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("sample count reached 3")
            && output
                .stdout
                .contains("within 30s, then hold 300ms every 20ms"),
        "{}",
        output.stdout
    );
}

#[test]
fn a_probe_name_is_checked_as_a_template() {
    let yaml = SETTLING.replace("{{vars.min}}\"\n", "{{vars.minimum}}\"\n");
    let output = Test::new()
        .runbook(&yaml)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    insta::assert_snapshot!("probe_name_unknown_var", output.snapshot());
}
