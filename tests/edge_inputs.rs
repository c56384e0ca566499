//! YAML edge cases through `runbook validate` (RELIABILITY B-03, B-04, B-05, B-08): each has a
//! documented outcome, accepted or refused with a clear message, and never a panic.

mod common;

use common::{Output, Test};
use serde_json::Value;

/// A valid runbook; edge cases are built around it.
const VALID: &str =
    "version: 1\nname: t\nsteps:\n  - id: a\n    run: echo hi\n    readonly: true\n";

const MAX_RUNBOOK_BYTES: usize = 4 * 1024 * 1024;

/// `validate` on raw bytes, as text.
fn validate(bytes: &[u8]) -> Output {
    let output = Test::new()
        .runbook_bytes("runbook.yaml", bytes)
        .args(["validate", "{file}"])
        .run();
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    output
}

/// `validate --format json` on raw bytes: the exit code and the first file's diagnostics.
fn validate_json(bytes: &[u8]) -> (i32, Vec<Value>) {
    let output = Test::new()
        .runbook_bytes("runbook.yaml", bytes)
        .args(["validate", "--format", "json", "{file}"])
        .run();
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    let json: Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("JSON on stdout ({error}):\n{}", output.snapshot()));
    let diagnostics = json["files"][0]["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (output.code, diagnostics)
}

/// Refused with exit 2, and the text report mentions every fragment (case-insensitive).
fn refused(bytes: &[u8], fragments: &[&str]) -> Output {
    let output = validate(bytes);
    assert_eq!(output.code, 2, "{}", output.snapshot());
    let lower = output.stderr.to_lowercase();
    for fragment in fragments {
        assert!(
            lower.contains(&fragment.to_lowercase()),
            "message lacks `{fragment}`:\n{}",
            output.snapshot()
        );
    }
    output
}

fn accepted(bytes: &[u8]) -> Output {
    let output = validate(bytes);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        output.stdout.contains("is valid (0 warnings)"),
        "{}",
        output.snapshot()
    );
    output
}

/// The only diagnostic points at `line:column`, in JSON and in the text report's header.
fn assert_position(bytes: &[u8], line: u64, column: u64) {
    let (code, diagnostics) = validate_json(bytes);
    assert_eq!(code, 2);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(
        (
            diagnostics[0]["line"].as_u64(),
            diagnostics[0]["column"].as_u64()
        ),
        (Some(line), Some(column)),
        "{diagnostics:#?}"
    );
    let text = validate(bytes);
    let header = format!("runbook.yaml:{line}:{column}]");
    assert!(
        text.stderr.contains(&header),
        "no `{header}` in:\n{}",
        text.stderr
    );
}

/// The first diagnostic's message, from `--format json`.
fn first_message(bytes: &[u8]) -> String {
    let (_, diagnostics) = validate_json(bytes);
    diagnostics
        .first()
        .and_then(|diagnostic| diagnostic["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

// Duplicate keys ------------------------------------------------------------------------------

#[test]
fn a_duplicate_top_level_key() {
    let yaml =
        b"version: 1\nname: t\nname: u\nsteps:\n  - id: a\n    run: echo\n    readonly: true\n";
    refused(yaml, &["duplicate key `name`"]);
    assert_position(yaml, 3, 1);
}

#[test]
fn a_duplicate_key_inside_a_step() {
    let yaml = b"version: 1\nname: t\nsteps:\n  - id: a\n    run: echo one\n    readonly: true\n    run: echo two\n";
    refused(yaml, &["duplicate key `run`"]);
    assert_position(yaml, 7, 5);
}

#[test]
fn a_duplicate_key_inside_env() {
    let yaml = b"version: 1\nname: t\nsteps:\n  - id: a\n    run: echo\n    readonly: true\n    env:\n      FOO: a\n      BAR: b\n      FOO: c\n";
    refused(yaml, &["duplicate key `FOO`"]);
    assert_position(yaml, 10, 7);
}

// Whitespace, encodings, line endings -----------------------------------------------------------

#[test]
fn tab_indentation_is_refused() {
    let output = refused(
        b"version: 1\nname: t\nsteps:\n\t- id: a\n\t  run: echo\n",
        &["tab"],
    );
    assert!(
        output.stderr.contains("indent with spaces"),
        "{}",
        output.stderr
    );
    assert_position(
        b"version: 1\nname: t\nsteps:\n\t- id: a\n\t  run: echo\n",
        4,
        2,
    );
}

#[test]
fn a_tab_inside_a_step_is_refused() {
    refused(
        b"version: 1\nname: t\nsteps:\n  - id: a\n\trun: echo\n",
        &["tab"],
    );
}

#[test]
fn a_tab_indenting_a_key_points_at_the_tab_with_the_hint() {
    // The parser reports these where the value on the line above starts.
    for (yaml, line) in [
        (
            &b"version: 1\nname: t\nsteps:\n  - id: a\n\trun: echo\n"[..],
            5,
        ),
        (b"version: 1\n\tname: t\n", 2),
        (b"version: 1\nname: t\nvars:\n  a: x\n\tb: y\n", 5),
    ] {
        refused(yaml, &["tab is used for indentation", "indent with spaces"]);
        assert_position(yaml, line, 1);
    }
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(VALID.as_bytes());
    accepted(&bytes);
    // Positions are counted without the mark.
    let mut bad = "\u{feff}".as_bytes().to_vec();
    bad.extend_from_slice(
        b"version: 1\nname: Bad\nsteps:\n  - id: a\n    run: echo\n    readonly: true\n",
    );
    assert_position(&bad, 2, 7);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let yaml = "version: 1\r\nname: t\r\nsteps:\r\n  - id: a\r\n    run: |\r\n      echo one\r\n      echo two\r\n    readonly: true\r\n";
    accepted(yaml.as_bytes());
    // The script reaches the shell without carriage returns.
    let plan = Test::new()
        .runbook(yaml)
        .args(["plan", "--format", "json", "{file}"])
        .run();
    assert_eq!(plan.code, 0, "{}", plan.snapshot());
    let json: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    assert_eq!(json["steps"][0]["command"], "echo one\necho two\n");
    // Positions in a CRLF file are right, also inside a block scalar.
    let bad = "version: 1\r\nname: t\r\nsteps:\r\n  - id: a\r\n    run: |\r\n      echo one\r\n      echo {{quote vars.nope}}\r\n    readonly: true\r\n";
    assert_position(bad.as_bytes(), 7, 20);
}

#[test]
fn invalid_utf8_is_refused() {
    let output = refused(
        b"version: 1\nname: t\nsteps:\n  - id: a\n    run: echo \xff\xfe\n    readonly: true\n",
        &["UTF-8"],
    );
    assert!(
        output.stderr.contains("[DIR]/runbook.yaml"),
        "names the file: {}",
        output.stderr
    );
}

#[test]
fn an_empty_file_is_refused() {
    for bytes in [&b""[..], b"\n\n", b"   \n\t\n"] {
        let output = refused(bytes, &["the runbook is empty"]);
        assert!(output.stderr.contains("runbook init"), "{}", output.stderr);
    }
}

#[test]
fn a_comments_only_file_is_refused() {
    refused(
        b"# TODO: write the deploy runbook\n# version: 1\n\n",
        &["the runbook is empty"],
    );
}

// Hostile inputs --------------------------------------------------------------------------------

/// The 9-level x 9-alias bomb (~300 bytes, 9^9 strings when expanded) as a step's `needs`.
fn alias_bomb() -> String {
    let mut items = vec!["&a0 \"a\"".to_string()];
    for level in 1..=9 {
        items.push(format!(
            "&a{level} [{}]",
            vec![format!("*a{}", level - 1); 9].join(",")
        ));
    }
    format!(
        "version: 1\nname: t\nsteps:\n  - id: a\n    run: echo\n    readonly: true\n  - id: b\n    run: echo\n    readonly: true\n    needs: [{}]\n",
        items.join(", ")
    )
}

#[test]
fn an_alias_bomb_is_refused() {
    let yaml = alias_bomb();
    refused(yaml.as_bytes(), &[]);
    let (code, diagnostics) = validate_json(yaml.as_bytes());
    assert_eq!(code, 2);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0]["line"], 10, "{diagnostics:#?}");
}

#[test]
fn an_alias_bomb_is_refused_naming_the_alias_limit() {
    let message = first_message(alias_bomb().as_bytes()).to_lowercase();
    assert!(
        message.contains("alias") || message.contains("limit"),
        "{message}"
    );
}

#[test]
fn too_many_aliases_hit_the_alias_limit() {
    // 1,200 aliases of one string: valid as `needs` entries, and over the parser's alias budget.
    let yaml = format!(
        "version: 1\nname: t\nsteps:\n  - id: a\n    run: echo\n    readonly: true\n  - id: b\n    run: echo\n    readonly: true\n    needs: [&x a, {}]\n",
        ["*x"; 1200].join(", ")
    );
    refused(yaml.as_bytes(), &["alias expansion limit exceeded"]);
}

#[test]
fn deep_nesting_is_refused() {
    let yaml = format!("version: 1\nname: t\nsteps: {}\n", "[".repeat(20_000));
    refused(yaml.as_bytes(), &["nested too deeply"]);
}

/// A valid runbook padded with comment lines to exactly `size` bytes.
fn padded(size: usize) -> Vec<u8> {
    let mut bytes = VALID.as_bytes().to_vec();
    let line = format!("# {}\n", "x".repeat(97));
    while bytes.len() + line.len() <= size {
        bytes.extend_from_slice(line.as_bytes());
    }
    let rest = size - bytes.len();
    if rest > 0 {
        bytes.extend(std::iter::repeat_n(b'#', rest - 1));
        bytes.push(b'\n');
    }
    assert_eq!(bytes.len(), size);
    bytes
}

#[test]
fn a_file_over_4_mib_is_refused_before_parsing() {
    // Valid YAML and a valid runbook but for its size: only the cap can refuse it.
    let output = refused(
        &padded(MAX_RUNBOOK_BYTES + 1),
        &["4194305 bytes", "4194304-byte limit"],
    );
    assert!(
        output.stderr.contains("[DIR]/runbook.yaml"),
        "{}",
        output.stderr
    );
    // Refused before parsing: a YAML error further in is never reached.
    let mut broken = padded(MAX_RUNBOOK_BYTES);
    broken.extend_from_slice(b"steps: [\n");
    let output = refused(&broken, &["4194304-byte limit"]);
    assert!(
        !output.stderr.to_lowercase().contains("duplicate"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_file_of_exactly_4_mib_is_accepted() {
    accepted(&padded(MAX_RUNBOOK_BYTES));
}

#[test]
fn a_nul_escape_in_run_is_refused() {
    let yaml =
        b"version: 1\nname: t\nsteps:\n  - id: a\n    readonly: true\n    run: \"echo a\\0b\"\n";
    refused(yaml, &["NUL", "steps[0].run"]);
    assert_position(yaml, 6, 10);
}

#[test]
fn a_literal_nul_byte_is_refused() {
    let yaml = b"version: 1\nname: t\nsteps:\n  - id: a\n    readonly: true\n    run: echo a\0b\n";
    refused(yaml, &["NUL"]);
    assert_position(yaml, 6, 16);
}

// YAML 1.1 scalars and documents ----------------------------------------------------------------

#[test]
fn yaml_1_1_booleans_in_string_fields_stay_strings() {
    let yaml = r#"version: 1
name: no
description: off
vars:
  answer: no
  switch:
    default: off
    choices: [on, off]
steps:
  - id: a
    name: yes
    description: NO
    run: echo {{quote vars.answer}} {{vars.switch}}
    readonly: true
  - id: gate
    approve: y
"#;
    accepted(yaml.as_bytes());
    let plan = Test::new()
        .runbook(yaml)
        .args(["plan", "--format", "json", "{file}"])
        .run();
    assert_eq!(plan.code, 0, "{}", plan.snapshot());
    let json: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    assert_eq!(json["runbook"]["name"], "no");
    assert_eq!(json["runbook"]["description"], "off");
    assert_eq!(json["vars"][0]["name"], "answer");
    assert_eq!(json["vars"][0]["value"], "no");
    assert_eq!(json["vars"][1]["value"], "off");
    assert_eq!(json["steps"][0]["name"], "yes");
    assert_eq!(json["steps"][0]["description"], "NO");
    assert_eq!(json["steps"][0]["command"], "echo 'no' off");
}

const NUMERIC_VERSION: &str = r#"version: 1
name: t
vars:
  release:
    default: 1.10
    choices: [1.9, 1.10]
  mode: 0755
steps:
  - id: a
    run: deploy {{quote vars.release}} {{quote vars.mode}}
    readonly: true
"#;

#[test]
fn numbers_in_var_values_keep_their_text() {
    let plan = Test::new()
        .runbook(NUMERIC_VERSION)
        .args(["plan", "--format", "json", "{file}"])
        .run();
    assert_eq!(plan.code, 0, "{}", plan.snapshot());
    let json: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    assert_eq!(json["vars"][0]["value"], "1.10");
    assert_eq!(json["vars"][1]["value"], "0755");
    let given = Test::new()
        .runbook(NUMERIC_VERSION)
        .args(["validate", "{file}", "--var", "release=1.10"])
        .run();
    assert_eq!(given.code, 0, "{}", given.snapshot());
}

#[test]
fn a_multi_document_stream_is_refused() {
    let two = format!("{VALID}---\n{}", VALID.replace("name: t", "name: u"));
    refused(two.as_bytes(), &["multiple YAML documents"]);
    assert_position(two.as_bytes(), 8, 1);
    // A trailing `---` starts a second, empty document: refused the same way.
    refused(
        format!("---\n{VALID}---\n").as_bytes(),
        &["multiple YAML documents"],
    );
    // One document with explicit start and end markers is fine.
    accepted(format!("---\n{VALID}...\n").as_bytes());
}

#[test]
fn the_multi_document_message_speaks_to_runbook_authors() {
    let message = first_message(format!("{VALID}---\n{VALID}").as_bytes());
    assert!(message.contains("multiple YAML documents"), "{message}");
    assert!(!message.contains("from_str"), "{message}");
}

#[test]
fn every_unknown_key_and_bad_boolean_is_reported_in_one_pass() {
    let runbook = "version: 1\nname: typos\nsteps:\n  - id: a\n    rnu: echo\n    rollbak: echo undo\n  - id: b\n    run: echo b\n    allow_failure: yes\n    verify:\n      - name: x\n        run: \"true\"\n        expectt: {exit_code: 0}\n";
    let output = Test::new()
        .runbook(runbook)
        .args(["validate", "--format", "json", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    let report: serde_json::Value = serde_json::from_str(&output.stdout).expect("json");
    let diagnostics = report["files"][0]["diagnostics"]
        .as_array()
        .expect("diagnostics");
    let found: Vec<(u64, String)> = diagnostics
        .iter()
        .map(|diagnostic| {
            (
                diagnostic["line"].as_u64().unwrap_or(0),
                diagnostic["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let lines: Vec<u64> = found.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![5, 6, 9, 13], "{found:?}");
    assert!(
        found[0].1.contains("`rnu`")
            && found[1].1.contains("`rollbak`")
            && found[3].1.contains("`expectt`"),
        "{found:?}"
    );
    let helps: Vec<&str> = diagnostics
        .iter()
        .filter_map(|diagnostic| diagnostic["help"].as_str())
        .collect();
    assert!(helps.contains(&"did you mean `run`?"), "{helps:?}");
}
