//! `runbook report RUN` through the binary: a run that fails and rolls back, reported as
//! Markdown, JSON and HTML. The HTML is loaded in a real headless Chromium, which must show
//! the Gantt chart with a bar per phase and log no console error; text from the run is
//! escaped and the secret never appears.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Output, Test, lines};

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// Contains `&`, so the HTML-escaped form is checked too.
const SECRET: &str = "Tr0ub4dor&3-xyzzy";

const MASK: &str = "••••••";

const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails at `deploy` (its probe does not see `all good`) and rolls back: three forward steps,
/// three compensations, one skipped step, one never started.
const DEMO: &str = r#"
version: 1
name: report-demo
vars:
  token:
    env: RB_TOKEN
    secret: true
    required: true
  environment:
    default: staging
env:
  TOKEN: "{{vars.token}}"
steps:
  - id: backup
    name: Back up <b>the</b> database & "files"
    run: echo backup >> forward
    rollback: echo backup >> undo
  - id: notify
    if: "false"
    run: echo notify >> forward
    readonly: true
  - id: migrate
    needs: [backup, notify]
    after_skipped: run
    run: |
      echo migrate >> forward
      sleep 0.2
    rollback: echo migrate >> undo
    verify:
      - name: schema current
        run: echo ok
        expect: { stdout_contains: ok }
  - id: deploy
    needs: [migrate]
    run: |
      echo deploy >> forward
      echo "deploying with $TOKEN"
    rollback: echo deploy >> undo
    verify:
      - name: healthy
        run: echo "<script>alert('x')</script> token $TOKEN"
        expect: { stdout_contains: "all good" }
  - id: announce
    needs: [deploy]
    run: echo announce >> forward
    readonly: true
"#;

/// Runs the demo runbook into `{dir}/state` and checks it failed and rolled back.
fn run_demo() -> Output {
    let output = Test::new()
        .runbook(DEMO)
        .args([
            "run",
            "{file}",
            "--state-dir",
            "{dir}/state",
            "--progress",
            "plain",
        ])
        .env("RB_TOKEN", SECRET)
        .run_within(LIMIT);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(
        lines(&output.directory, "forward"),
        ["backup", "migrate", "deploy"]
    );
    assert_eq!(
        lines(&output.directory, "undo"),
        ["deploy", "migrate", "backup"]
    );
    output
}

fn state_of(run: &Output) -> String {
    run.directory.join("state").display().to_string()
}

/// `runbook report <args>` on the state directory of `run`.
fn report(run: &Output, args: &[&str]) -> Output {
    let output = Test::new()
        .args(["report"])
        .args(args)
        .args(["--state-dir", &state_of(run)])
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

fn assert_no_secret(text: &str, place: &str) {
    for form in [SECRET.to_string(), SECRET.replace('&', "&amp;")] {
        assert!(
            !text.contains(&form),
            "the secret leaked into {place}:\n{text}"
        );
    }
}

/// The line of a Markdown table whose first cells are `step` and `phase`.
fn row<'a>(markdown: &'a str, step: &str, phase: &str) -> &'a str {
    let start = format!("| `{step}` | {phase} |");
    markdown
        .lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("no timeline row for `{step}` {phase}:\n{markdown}"))
}

#[test]
fn the_markdown_report_has_the_timeline_probes_rollback_and_masked_variables() {
    let run = run_demo();
    let output = report(&run, &["last"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let markdown = &output.stdout;
    assert_no_secret(markdown, "the Markdown report");
    for heading in [
        "# Run report: report-demo",
        "## Variables",
        "## Timeline",
        "## Probes",
        "## Rollback",
        "## Needs a person",
    ] {
        assert!(
            markdown.lines().any(|line| line == heading),
            "{heading:?} missing:\n{markdown}"
        );
    }
    assert!(
        markdown.contains("**failed; rolled back (exit 1) in "),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("| `token` | `{MASK}` | env RB\\_TOKEN |")),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `environment` | `staging` | default |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| Step | Phase | Start | Duration | Status | Attempts | Message |"),
        "{markdown}"
    );
    for (step, status) in [
        ("backup", "succeeded"),
        ("migrate", "succeeded"),
        ("deploy", "failed"),
    ] {
        let forward = row(markdown, step, "forward");
        assert!(forward.contains(&format!("| {status} | 1 |")), "{forward}");
        assert!(forward.contains("| +"), "a start offset: {forward}");
        let compensation = row(markdown, step, "compensation");
        assert!(
            compensation.contains("| compensated | 1 |"),
            "{compensation}"
        );
    }
    let skipped = row(markdown, "notify", "forward");
    assert!(skipped.contains("| — | — | skipped |"), "{skipped}");
    // The run stopped before `announce` started: the journal names it, so it has a row.
    let never = row(markdown, "announce", "forward");
    assert!(never.contains("| — | — | not started |"), "{never}");
    // Chronological: every forward row comes before the compensations, undone newest first.
    let position = |step: &str, phase: &str| {
        markdown
            .find(row(markdown, step, phase))
            .expect("the row is in the report")
    };
    let order = [
        position("backup", "forward"),
        position("migrate", "forward"),
        position("deploy", "forward"),
        position("deploy", "compensation"),
        position("migrate", "compensation"),
        position("backup", "compensation"),
    ];
    assert!(order.is_sorted(), "{order:?}:\n{markdown}");
    assert!(
        markdown.contains("| `migrate` | forward | schema current | passed | 1 |"),
        "{markdown}"
    );
    let probe = markdown
        .lines()
        .find(|line| line.starts_with("| `deploy` | forward | healthy | failed |"))
        .unwrap_or_else(|| panic!("the failed probe is listed:\n{markdown}"));
    assert!(
        probe.contains(&format!("\\<script\\>alert('x')\\</script\\> token {MASK}")),
        "the probe's output is escaped and masked: {probe}"
    );
    assert!(!markdown.contains("<script>"), "{markdown}");
    assert!(
        markdown.contains(
            "complete: every compensation succeeded (3 compensated, 0 failed, 0 blocked)"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("## Needs a person\n\nNothing."),
        "{markdown}"
    );
}

#[test]
fn the_json_report_is_the_run_record_with_offsets() {
    let run = run_demo();
    let output = report(&run, &["last", "--format", "json"]);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_no_secret(&output.stdout, "the JSON report");
    let report: serde_json::Value =
        serde_json::from_str(&output.stdout).expect("the report is JSON");
    assert_eq!(report["runbook"], "report-demo");
    assert_eq!(report["end"]["outcome"], "rolled_back");
    assert_eq!(report["end"]["exit_code"], 1);
    assert_eq!(report["rollback"], "complete");
    let token = report["vars"]
        .as_array()
        .expect("vars")
        .iter()
        .find(|var| var["name"] == "token")
        .expect("the token var");
    assert_eq!(token["secret"], true);
    assert!(token["value"].is_null(), "{token}");
    let timeline = &report["timeline"];
    assert!(timeline["origin"].is_string(), "{timeline}");
    let entries = timeline["entries"].as_array().expect("timeline entries");
    let entry = |step: &str, phase: &str| {
        entries
            .iter()
            .find(|entry| entry["step"] == step && entry["phase"] == phase)
            .unwrap_or_else(|| panic!("no entry for `{step}` {phase}: {timeline}"))
    };
    let offset = |step: &str, phase: &str| {
        entry(step, phase)["offset_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("`{step}` {phase} has an offset: {timeline}"))
    };
    assert_eq!(entry("deploy", "forward")["status"], "failed");
    assert_eq!(entry("deploy", "compensation")["status"], "compensated");
    assert_eq!(
        entry("backup", "forward")["name"],
        r#"Back up <b>the</b> database & "files""#
    );
    assert!(entry("notify", "forward")["offset_ms"].is_null());
    assert_eq!(entry("notify", "forward")["status"], "skipped");
    let migrate = entry("migrate", "forward")["duration_ms"]
        .as_u64()
        .expect("a duration");
    assert!(migrate >= 200, "migrate sleeps 0.2s: {migrate}");
    assert!(offset("backup", "forward") < offset("migrate", "forward"));
    assert!(
        offset("migrate", "forward") + migrate <= offset("deploy", "forward"),
        "{timeline}"
    );
    assert!(offset("deploy", "forward") <= offset("deploy", "compensation"));
    assert!(offset("deploy", "compensation") <= offset("migrate", "compensation"));
    assert!(offset("migrate", "compensation") <= offset("backup", "compensation"));
    let span = timeline["span_ms"].as_u64().expect("a span");
    assert!(span >= offset("backup", "compensation"), "{timeline}");
}

#[test]
fn the_html_report_is_one_escaped_file_without_external_resources() {
    let run = run_demo();
    let output = report(
        &run,
        &["last", "--format", "html", "--output", "{dir}/report.html"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(output.stdout, "", "the report went to the file");
    let html = std::fs::read_to_string(output.directory.join("report.html")).expect("report.html");
    assert_no_secret(&html, "the HTML report");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(MASK), "the masked secret variable");
    // Nothing from the run becomes markup.
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; token"),
        "{html}"
    );
    assert!(
        html.contains("Back up &lt;b&gt;the&lt;/b&gt; database &amp; &quot;files&quot;"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    for external in ["<link", " src=", "href=", "url(", "@import", "https://"] {
        assert!(!html.contains(external), "{external:?} in:\n{html}");
    }
    assert_eq!(html.matches("<svg").count(), 1, "one chart");
}

#[test]
fn an_unknown_run_is_a_usage_error_naming_it() {
    let run = run_demo();
    let output = report(&run, &["20990101_000000-dead"]);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains("`20990101_000000-dead`"),
        "{}",
        output.snapshot()
    );
    assert_eq!(output.stdout, "");
    let empty = Test::new()
        .args(["report", "last", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(empty.code, 2, "{}", empty.snapshot());
    assert!(
        empty.stderr.contains("no run `last`"),
        "{}",
        empty.snapshot()
    );
}

/// What a Chromium run printed.
struct Browser {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium on `page` with `extra` arguments, in its own profile directory.
fn chromium(page: &Path, extra: &[String]) -> Browser {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "`{CHROMIUM}` is missing: this test needs Debian's `chromium` package (scripts/test installs it)"
    );
    let profile = tempfile::tempdir().expect("a profile directory");
    let logs = tempfile::tempdir().expect("a directory for the browser's output");
    let stdout_path = logs.path().join("stdout");
    let stderr_path = logs.path().join("stderr");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let browser = Browser {
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    };
    assert!(status.success(), "chromium failed:\n{}", browser.stderr);
    // Console messages (a script error, a blocked resource) are logged as `:CONSOLE`.
    let console: Vec<&str> = browser
        .stderr
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .collect();
    assert!(console.is_empty(), "the page logged: {console:#?}");
    browser
}

/// The opening tags of `<rect>` elements that are bars of the chart.
fn bars(dom: &str) -> Vec<&str> {
    dom.match_indices("<rect ")
        .filter_map(|(start, _)| {
            let tag = &dom[start..start + dom[start..].find('>')?];
            tag.contains("data-step=").then_some(tag)
        })
        .collect()
}

#[test]
fn the_html_report_shows_its_gantt_chart_in_headless_chromium() {
    let run = run_demo();
    let output = report(
        &run,
        &["last", "--format", "html", "--output", "{dir}/report.html"],
    );
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let page: PathBuf = output.directory.join("report.html");

    let dom = chromium(&page, &["--dump-dom".to_string()]).stdout;
    assert!(dom.contains("<svg"), "no chart in the DOM:\n{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;"),
        "the probe output shows as text"
    );
    let bars = bars(&dom);
    for step in ["backup", "migrate", "deploy"] {
        for phase in ["forward", "compensation"] {
            let found = bars
                .iter()
                .filter(|tag| {
                    tag.contains(&format!("data-step=\"{step}\""))
                        && tag.contains(&format!("data-phase=\"{phase}\""))
                        && tag.contains(&format!("class=\"bar {phase}"))
                })
                .count();
            assert_eq!(found, 1, "one {phase} bar for `{step}` in {bars:#?}");
        }
    }
    assert_eq!(
        bars.len(),
        6,
        "no bar for a step that never started: {bars:#?}"
    );
    assert!(
        bars.iter()
            .any(|tag| tag.contains("data-step=\"deploy\"") && tag.contains(" wrong")),
        "the failed step is marked: {bars:#?}"
    );
    for legend in ["forward step", "compensation"] {
        assert!(dom.contains(legend), "legend {legend:?} missing");
    }

    let screenshot = output.directory.join("report.png");
    chromium(
        &page,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1100,1400".to_string(),
            "--hide-scrollbars".to_string(),
        ],
    );
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.len() > 1000, "a real picture: {} bytes", png.len());
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
}
