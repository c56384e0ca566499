//! Files a user names are read with a bound (issue 10, item 9): a runbook, a `--vars-file`,
//! a var's `file:` or a probe's `ca_file` that is `/dev/zero`, a FIFO nobody writes, or far
//! larger than any such file is refused at once with exit 2, naming the file and why, and
//! nothing runs; none of them hangs or eats the machine's memory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Output, Test};

/// A hang is the failure these tests look for: a read that does not end is killed here.
const LIMIT: Duration = Duration::from_secs(30);

fn runbook(vars: &str, verify: &str) -> String {
    format!(
        r#"
version: 1
name: bounded
{vars}
steps:
  - id: a
    readonly: true
    run: touch "$MARKER"
{verify}
"#
    )
}

fn fifo(directory: &Path) -> String {
    let path = directory.join("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    path.display().to_string()
}

fn large_file(directory: &Path, bytes: usize) -> String {
    let path = directory.join("large");
    std::fs::write(&path, vec![b'a'; bytes]).expect("write");
    path.display().to_string()
}

fn refused(output: &Output, expected: &[&str]) {
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    for text in expected {
        assert!(
            output.stderr.contains(text),
            "{text:?} missing:\n{}",
            output.snapshot()
        );
    }
    assert!(!output.marker_exists(), "nothing runs");
}

const DEVICE: &str = "it is a character device, not a regular file";
const FIFO: &str = "it is a FIFO, not a regular file";

#[test]
fn a_runbook_that_is_a_device_or_a_fifo_is_refused_at_once() {
    for command in ["validate", "plan", "run"] {
        let output = Test::new()
            .args([command, "/dev/zero", "--state-dir", "{dir}/state"])
            .run_within(LIMIT);
        refused(&output, &["cannot read `/dev/zero`", DEVICE]);
        let test = Test::new();
        let path = fifo(test.path());
        let output = test
            .args([command, &path, "--state-dir", "{dir}/state"])
            .run_within(LIMIT);
        refused(&output, &[FIFO]);
    }
}

#[test]
fn a_vars_file_that_is_a_device_a_fifo_or_too_large_is_refused() {
    let text = runbook("vars:\n  x: { default: a }", "");
    for command in ["validate", "plan", "run"] {
        let output = Test::new()
            .runbook(&text)
            .args([
                command,
                "{file}",
                "--vars-file",
                "/dev/zero",
                "--state-dir",
                "{dir}/state",
            ])
            .run_within(LIMIT);
        refused(&output, &["cannot read vars file `/dev/zero`", DEVICE]);
        let test = Test::new().runbook(&text);
        let path = fifo(test.path());
        let output = test
            .args([
                command,
                "{file}",
                "--vars-file",
                &path,
                "--state-dir",
                "{dir}/state",
            ])
            .run_within(LIMIT);
        refused(&output, &[FIFO]);
        let test = Test::new().runbook(&text);
        let path = large_file(test.path(), (4 << 20) + 1);
        let output = test
            .args([
                command,
                "{file}",
                "--vars-file",
                &path,
                "--state-dir",
                "{dir}/state",
            ])
            .run_within(LIMIT);
        refused(&output, &["it is larger than the limit of 4 MiB"]);
    }
}

#[test]
fn a_var_file_that_is_a_device_a_fifo_or_too_large_is_refused_at_the_var() {
    let cases: [(&str, &str); 3] = [
        ("/dev/zero", DEVICE),
        ("fifo", FIFO),
        ("large", "it is larger than the limit of 1 MiB"),
    ];
    for (file, expected) in cases {
        let text = runbook(&format!("vars:\n  x: {{ file: {file} }}"), "");
        for command in ["plan", "run"] {
            let test = Test::new().runbook(&text);
            fifo(test.path());
            large_file(test.path(), (1 << 20) + 1);
            let output = test
                .args([command, "{file}", "--state-dir", "{dir}/state"])
                .run_within(LIMIT);
            refused(&output, &["for variable `x`", expected, "runbook.yaml:"]);
        }
    }
    // At the limit it is a value like any other.
    let text = runbook("vars:\n  x: { file: large }", "");
    let test = Test::new().runbook(&text);
    large_file(test.path(), 1 << 20);
    let output = test
        .args(["run", "{file}", "--state-dir", "{dir}/state"])
        .run_within(LIMIT);
    assert_eq!(output.code, 0, "{}", output.snapshot());
}

#[test]
fn a_ca_file_that_is_a_device_is_refused() {
    let text = runbook(
        "",
        "    verify:\n      - name: up\n        http: { url: \"https://127.0.0.1:9/\", ca_file: /dev/zero }",
    );
    let output = Test::new()
        .runbook(&text)
        .args(["validate", "{file}"])
        .run_within(LIMIT);
    refused(&output, &["/dev/zero", "character device"]);
}
