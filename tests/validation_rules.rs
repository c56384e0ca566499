//! One test per validation rule (SPEC §2–§6, §9): each drives `runbook validate` on a short
//! runbook and checks the exit code, the diagnostic's stable `code` (from `--format json`),
//! that the message names the offending thing, and where it points (JSON `line`/`column` and
//! the `runbook.yaml:L:C` header of the text report).

mod common;

use common::Test;
use serde_json::Value;

/// One entry of `files[0].diagnostics` in `validate --format json`.
#[derive(Debug, Clone)]
struct Diag {
    line: Option<u64>,
    column: Option<u64>,
    severity: String,
    code: String,
    message: String,
    help: Option<String>,
    related: Vec<(u64, u64, String)>,
}

impl Diag {
    fn from_json(value: &Value) -> Diag {
        let text = |key: &str| value[key].as_str().map(str::to_string);
        Diag {
            line: value["line"].as_u64(),
            column: value["column"].as_u64(),
            severity: text("severity").expect("severity"),
            code: text("code").expect("code"),
            message: text("message").expect("message"),
            help: text("help"),
            related: value["related"]
                .as_array()
                .map(|related| {
                    related
                        .iter()
                        .map(|entry| {
                            let line = entry["line"].as_u64().expect("related line");
                            let column = entry["column"].as_u64().expect("related column");
                            let label = entry["label"].as_str().unwrap_or_default().to_string();
                            (line, column, label)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn help(&self) -> &str {
        self.help.as_deref().unwrap_or_default()
    }
}

/// What `validate` said about one runbook, in JSON and as text.
#[derive(Debug)]
struct Checked {
    code: i32,
    json: Value,
    diagnostics: Vec<Diag>,
    /// stderr of the text run: the miette reports.
    text: String,
    /// stdout of the text run: the `is valid` line.
    text_stdout: String,
}

/// Runs `validate` on `yaml` twice, with `--format json` and as text, with `extra` arguments.
fn check(yaml: &str, extra: &[&str]) -> Checked {
    let json_run = Test::new()
        .runbook(yaml)
        .args(["validate", "--format", "json", "{file}"])
        .args(extra)
        .run();
    let text_run = Test::new()
        .runbook(yaml)
        .args(["validate", "{file}"])
        .args(extra)
        .run();
    for output in [&json_run, &text_run] {
        assert!(
            !output.stderr.contains("panicked"),
            "panic:\n{}",
            output.snapshot()
        );
    }
    assert_eq!(
        json_run.code,
        text_run.code,
        "json and text runs disagree:\n{}\n{}",
        json_run.snapshot(),
        text_run.snapshot()
    );
    let json: Value = serde_json::from_str(&json_run.stdout)
        .unwrap_or_else(|error| panic!("JSON on stdout ({error}):\n{}", json_run.snapshot()));
    let diagnostics = json["files"][0]["diagnostics"]
        .as_array()
        .map(|list| list.iter().map(Diag::from_json).collect())
        .unwrap_or_default();
    Checked {
        code: json_run.code,
        json,
        diagnostics,
        text: text_run.stderr,
        text_stdout: text_run.stdout,
    }
}

impl Checked {
    fn with_code(&self, code: &str) -> Vec<&Diag> {
        self.diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.code == code)
            .collect()
    }

    /// The only diagnostic with `code`.
    fn one(&self, code: &str) -> &Diag {
        let found = self.with_code(code);
        assert_eq!(
            found.len(),
            1,
            "expected one `{code}` diagnostic, got:\n{:#?}",
            self.diagnostics
        );
        found[0]
    }

    fn has(&self, code: &str) -> bool {
        !self.with_code(code).is_empty()
    }

    fn errors(&self) -> u64 {
        self.json["files"][0]["errors"]
            .as_u64()
            .expect("errors count")
    }

    /// The diagnostic points at `line:column`, in JSON and in the text report's header.
    fn assert_at(&self, diagnostic: &Diag, line: u64, column: u64) {
        assert_eq!(
            (diagnostic.line, diagnostic.column),
            (Some(line), Some(column)),
            "position of {diagnostic:#?}"
        );
        let header = format!("runbook.yaml:{line}:{column}]");
        assert!(
            self.text.contains(&header),
            "text report lacks `{header}`:\n{}",
            self.text
        );
        // miette wraps long messages at 100 columns: compare word by word.
        let words = |text: &str| {
            text.split_whitespace()
                .filter(|word| *word != "│")
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            words(&self.text).contains(&words(&diagnostic.message)),
            "text report lacks the message `{}`:\n{}",
            diagnostic.message,
            self.text
        );
    }

    /// One error with `code`, exit 2, at `line:column`, whose message contains every fragment.
    fn error(&self, code: &str, line: u64, column: u64, fragments: &[&str]) -> &Diag {
        assert_eq!(
            self.code, 2,
            "exit code; diagnostics:\n{:#?}",
            self.diagnostics
        );
        assert_eq!(self.json["valid"], Value::Bool(false));
        let diagnostic = self.one(code);
        assert_eq!(diagnostic.severity, "error", "{diagnostic:#?}");
        assert_contains(&diagnostic.message, fragments);
        self.assert_at(diagnostic, line, column);
        diagnostic
    }

    /// One warning with `code` at `line:column`, and the runbook is still valid (exit 0).
    fn warning(&self, code: &str, line: u64, column: u64, fragments: &[&str]) -> &Diag {
        assert_eq!(
            self.code, 0,
            "warnings keep exit 0; diagnostics:\n{:#?}",
            self.diagnostics
        );
        let diagnostic = self.one(code);
        assert_eq!(diagnostic.severity, "warning", "{diagnostic:#?}");
        assert_contains(&diagnostic.message, fragments);
        self.assert_at(diagnostic, line, column);
        diagnostic
    }

    /// Exit 0 and no diagnostic at all.
    fn clean(&self) {
        assert_eq!(self.code, 0, "{:#?}", self.diagnostics);
        assert!(
            self.diagnostics.is_empty(),
            "expected no diagnostics, got:\n{:#?}",
            self.diagnostics
        );
        assert!(
            self.text_stdout.contains("is valid (0 warnings)"),
            "{}",
            self.text_stdout
        );
    }
}

fn assert_contains(text: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            text.contains(fragment),
            "`{text}` does not contain `{fragment}`"
        );
    }
}

// §2 top level ---------------------------------------------------------------------------

#[test]
fn invalid_runbook_name() {
    let checked = check(
        r#"version: 1
name: Deploy_App
steps:
  - id: a
    run: "true"
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error("invalid-name", 2, 7, &["`Deploy_App`", "not a valid name"]);
    assert_contains(diagnostic.help(), &["lowercase"]);
}

#[test]
fn concurrency_zero() {
    let checked = check(
        r#"version: 1
name: t
concurrency: 0
steps:
  - id: a
    run: "true"
    readonly: true
"#,
        &[],
    );
    checked.error("invalid-concurrency", 3, 14, &["`concurrency`", "not 0"]);
}

// §4 steps and the DAG ----------------------------------------------------------------------

#[test]
fn unknown_need_suggests_the_closest_id() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: build
    run: "true"
    readonly: true
  - id: deploy
    needs: [biuld]
    run: "true"
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error("unknown-need", 8, 13, &["`deploy`", "unknown step `biuld`"]);
    assert_eq!(diagnostic.help(), "did you mean `build`?");
}

#[test]
fn a_step_that_needs_itself() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    needs: [a]
    run: "true"
    readonly: true
"#,
        &[],
    );
    checked.error("cycle", 5, 12, &["step `a` needs itself"]);
}

#[test]
fn a_cycle_is_reported_as_its_path() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    needs: [c]
    run: "true"
    readonly: true
  - id: b
    needs: [a]
    run: "true"
    readonly: true
  - id: c
    needs: [b]
    run: "true"
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error("cycle", 5, 12, &["`a` -> `b` -> `c` -> `a`"]);
    let related: Vec<u64> = diagnostic
        .related
        .iter()
        .map(|(line, _, _)| *line)
        .collect();
    assert_eq!(
        related,
        vec![9, 13],
        "the other steps of the cycle are pointed at: {diagnostic:#?}"
    );
}

#[test]
fn a_duplicate_id_reports_both_lines() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: backup
    run: "true"
    readonly: true
  - id: backup
    run: "true"
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error("duplicate-id", 7, 9, &["`backup`", "first used on line 4"]);
    assert_eq!(
        diagnostic
            .related
            .iter()
            .map(|(line, column, _)| (*line, *column))
            .collect::<Vec<_>>(),
        vec![(4, 9)]
    );
    assert!(checked.text.contains("first used here"), "{}", checked.text);
}

#[test]
fn approve_and_run_together() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: gate
    approve: Go ahead?
    run: "true"
"#,
        &[],
    );
    checked.error("approve-and-run", 5, 14, &["`gate`", "`approve` and `run`"]);
}

#[test]
fn a_step_with_nothing_to_do() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: idle
    name: Does nothing
"#,
        &[],
    );
    checked.error(
        "empty-step",
        4,
        9,
        &["`idle`", "no `run`, `approve` or `verify`"],
    );
}

// §5 probes ---------------------------------------------------------------------------------

#[test]
fn a_probe_with_two_kinds() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: both
        run: "true"
        tcp: "127.0.0.1:5432"
"#,
        &[],
    );
    checked.error("probe-kind", 6, 15, &["probe `both`", "more than one kind"]);
}

#[test]
fn a_probe_with_no_kind() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: nothing
        within: 10s
"#,
        &[],
    );
    checked.error("probe-kind", 6, 15, &["probe `nothing`", "no kind"]);
}

#[test]
fn expect_on_an_http_probe() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: health
        http: { url: "http://127.0.0.1:3000/health" }
        expect: { stdout_contains: ok }
"#,
        &[],
    );
    checked.error(
        "probe-expect",
        8,
        17,
        &["probe `health`", "`expect`", "only to `run` probes"],
    );
}

#[test]
fn an_invalid_regex_in_stdout_matches() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: version
        run: cat VERSION
        expect: { stdout_matches: "([0-9" }
"#,
        &[],
    );
    checked.error(
        "invalid-regex",
        8,
        35,
        &["`stdout_matches`", "not a valid regular expression"],
    );
}

#[test]
fn a_bad_stdout_number() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: count
        run: echo 3
        expect: { stdout_number: "about 5" }
"#,
        &[],
    );
    let diagnostic = checked.error("probe-number", 8, 34, &["`stdout_number`", "`about 5`"]);
    assert_contains(diagnostic.help(), &["<="]);
}

#[test]
fn tcp_that_is_not_host_port() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: db port
        tcp: localhost
"#,
        &[],
    );
    checked.error(
        "probe-tcp",
        7,
        14,
        &["probe `db port`", "`host:port`", "`localhost`"],
    );
}

#[test]
fn an_http_url_without_scheme() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: health
        http: { url: "example.com/health" }
"#,
        &[],
    );
    checked.error("probe-url", 7, 22, &["`http://`", "`example.com/health`"]);
}

#[test]
fn an_http_status_out_of_range() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: check
    verify:
      - name: health
        http: { url: "http://127.0.0.1/", status: 700 }
"#,
        &[],
    );
    checked.error("probe-status", 7, 51, &["`status`", "between 100 and 599"]);
}

#[test]
fn retry_with_zero_attempts() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    run: "true"
    readonly: true
    retry: { attempts: 0 }
"#,
        &[],
    );
    checked.error("invalid-retry", 7, 24, &["`retry.attempts`", "not 0"]);
}

#[test]
fn retry_backoff_below_one() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    run: "true"
    readonly: true
    retry: { attempts: 3, backoff: 0.5 }
"#,
        &[],
    );
    checked.error("invalid-retry", 7, 36, &["`retry.backoff`", "not 0.5"]);
}

#[test]
fn two_pivots() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: migrate
    run: "true"
    pivot: true
  - id: switch
    run: "true"
    pivot: true
"#,
        &[],
    );
    let diagnostic = checked.error(
        "second-pivot",
        9,
        12,
        &["`migrate`", "`switch`", "at most one"],
    );
    assert_eq!(
        diagnostic
            .related
            .iter()
            .map(|(line, column, _)| (*line, *column))
            .collect::<Vec<_>>(),
        vec![(6, 12)]
    );
}

#[test]
fn a_pivot_with_allow_failure() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: migrate
    run: "true"
    pivot: true
    allow_failure: true
"#,
        &[],
    );
    checked.error(
        "pivot-allow-failure",
        6,
        12,
        &["`migrate`", "`pivot`", "`allow_failure`"],
    );
}

// §9 secrets --------------------------------------------------------------------------------

/// A runbook with a secret var `token` and one step whose body is `step` (indented 4).
fn with_secret(step: &str) -> String {
    format!(
        r#"version: 1
name: t
vars:
  token:
    env: API_TOKEN
    secret: true
steps:
  - id: call
{step}"#
    )
}

#[test]
fn a_secret_inlined_in_run() {
    let checked = check(
        &with_secret("    run: curl -u {{quote vars.token}} http://x\n    readonly: true\n"),
        &[],
    );
    let diagnostic = checked.error(
        "secret-inlined",
        9,
        26,
        &["secret `vars.token`", "`steps[0].run`"],
    );
    assert_contains(diagnostic.help(), &["env:", "$TOKEN"]);
}

#[test]
fn a_secret_inlined_in_cwd() {
    let checked = check(
        &with_secret("    run: \"true\"\n    readonly: true\n    cwd: \"/srv/{{vars.token}}\"\n"),
        &[],
    );
    checked.error(
        "secret-inlined",
        11,
        18,
        &["secret `vars.token`", "`steps[0].cwd`"],
    );
}

#[test]
fn a_secret_inlined_in_if() {
    let checked = check(
        &with_secret("    if: \"{{vars.token}}\"\n    run: \"true\"\n    readonly: true\n"),
        &[],
    );
    checked.error(
        "secret-inlined",
        9,
        12,
        &["secret `vars.token`", "`steps[0].if`"],
    );
}

#[test]
fn a_secret_inlined_in_a_probe_run() {
    let checked = check(
        &with_secret(
            "    verify:\n      - name: auth works\n        run: test -n {{quote vars.token}}\n",
        ),
        &[],
    );
    checked.error(
        "secret-inlined",
        11,
        30,
        &["secret `vars.token`", "`steps[0].verify[0].run`"],
    );
}

#[test]
fn a_secret_in_env_is_fine() {
    let checked = check(
        &with_secret(
            "    env:\n      API_TOKEN: \"{{vars.token}}\"\n    run: 'curl -H \"Authorization: Bearer $API_TOKEN\" http://x'\n    readonly: true\n",
        ),
        &[],
    );
    checked.clean();
}

// §6 templates ------------------------------------------------------------------------------

#[test]
fn an_undefined_var_suggests_the_closest() {
    let checked = check(
        r#"version: 1
name: t
vars:
  release: v1
steps:
  - id: a
    run: echo {{quote vars.relase}}
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error("undefined-var", 7, 23, &["`vars.relase`", "`steps[0].run`"]);
    assert_eq!(diagnostic.help(), "did you mean `vars.release`?");
}

const DEFAULT_READS_LATER_VAR: &str = r#"version: 1
name: t
vars:
  backup_file: "{{vars.backup_dir}}/db.sql"
  backup_dir: /var/backups
steps:
  - id: a
    run: echo {{quote vars.backup_file}}
    readonly: true
"#;

#[test]
fn a_var_default_using_a_var_declared_below_is_refused() {
    let checked = check(DEFAULT_READS_LATER_VAR, &[]);
    assert_eq!(checked.code, 2);
    assert_eq!(checked.errors(), 1, "{:#?}", checked.diagnostics);
    let diagnostic = &checked.diagnostics[0];
    assert_contains(
        &diagnostic.message,
        &["`vars.backup_dir`", "`vars.backup_file.default`"],
    );
    checked.assert_at(diagnostic, 4, 19);
}

#[test]
fn a_var_default_using_a_var_declared_below_says_so() {
    let checked = check(DEFAULT_READS_LATER_VAR, &[]);
    let diagnostic = checked.error("var-order", 4, 19, &["`vars.backup_dir`", "declared after"]);
    assert_contains(diagnostic.help(), &["declared above"]);
    assert!(!checked.has("undefined-var"), "{:#?}", checked.diagnostics);
}

#[test]
fn an_unknown_template_root_suggests_the_var() {
    let checked = check(
        r#"version: 1
name: t
vars:
  dir: /srv/app
steps:
  - id: a
    run: cd {{quote dir}}
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error(
        "unknown-template-variable",
        7,
        21,
        &["`dir`", "`steps[0].run`"],
    );
    assert_eq!(diagnostic.help(), "did you mean `vars.dir`?");
}

#[test]
fn a_step_output_from_a_step_that_is_not_upstream() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: backup
    run: echo "file=/tmp/x" >> "$RUNBOOK_OUTPUT"
    readonly: true
  - id: restore
    run: cat {{quote steps.backup.outputs.file}}
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error(
        "step-not-upstream",
        8,
        22,
        &[
            "`steps.backup.outputs.file`",
            "step `restore`",
            "not upstream",
        ],
    );
    assert_eq!(
        diagnostic.help(),
        "add `backup` to `needs`, so it has finished before this step starts"
    );
}

#[test]
fn an_undeclared_output_key_when_the_step_declares_outputs() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: backup
    outputs: [file]
    run: echo "file=/tmp/x" >> "$RUNBOOK_OUTPUT"
    readonly: true
  - id: restore
    needs: [backup]
    run: cat {{quote steps.backup.outputs.fiel}}
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error(
        "unknown-output",
        10,
        22,
        &["step `backup`", "output `fiel`"],
    );
    assert_eq!(diagnostic.help(), "did you mean `file`?");
}

#[test]
fn run_status_outside_hooks() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    run: echo {{quote run.status}}
    readonly: true
"#,
        &[],
    );
    checked.error(
        "run-path",
        5,
        23,
        &["`run.status`", "only in hooks", "`steps[0].run`"],
    );
}

#[test]
fn run_status_in_hooks_is_fine() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    run: "true"
    readonly: true
hooks:
  on_failure:
    - run: echo {{quote run.status}}
  always:
    - run: echo {{quote run.status}} {{quote steps.a.status}}
"#,
        &[],
    );
    checked.clean();
}

#[test]
fn an_unknown_helper_suggests_quote() {
    let checked = check(
        r#"version: 1
name: t
vars:
  dir: /srv
steps:
  - id: a
    run: ls {{qoute vars.dir}}
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.error("unknown-helper", 7, 15, &["`qoute`", "`steps[0].run`"]);
    assert_eq!(diagnostic.help(), "did you mean `quote`?");
}

#[test]
fn a_template_syntax_error() {
    let checked = check(
        r#"version: 1
name: t
vars:
  dir: /srv
steps:
  - id: a
    run: echo {{#if vars.dir}}yes
    readonly: true
"#,
        &[],
    );
    checked.error(
        "template-syntax",
        7,
        15,
        &["`steps[0].run`", "unclosed", "{{#if}}"],
    );
}

#[test]
fn yaml_1_1_booleans_are_refused_in_boolean_fields() {
    // The parser runs with strict booleans: only `true`/`false` are booleans. `yes`, `no`,
    // `on`, `off` in a boolean field are an error at the value, whatever the field.
    for (key, value) in [
        ("readonly", "yes"),
        ("readonly", "no"),
        ("allow_failure", "on"),
        ("idempotent", "off"),
        ("pivot", "yes"),
    ] {
        let yaml = format!(
            "version: 1\nname: t\nsteps:\n  - id: a\n    run: \"true\"\n    {key}: {value}\n"
        );
        let checked = check(&yaml, &[]);
        let column = 4 + key.len() as u64 + 3;
        checked.error("yaml", 6, column, &["invalid boolean", "true/false"]);
    }
    for value in ["true", "True", "false"] {
        let yaml = format!(
            "version: 1\nname: t\nsteps:\n  - id: a\n    run: \"true\"\n    readonly: true\n    idempotent: {value}\n"
        );
        check(&yaml, &[]).clean();
    }
}

// Warnings ----------------------------------------------------------------------------------

#[test]
fn an_unquoted_var_in_run_is_a_warning() {
    let checked = check(
        r#"version: 1
name: t
vars:
  dir: /srv/my app
steps:
  - id: a
    run: ls {{vars.dir}}
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.warning(
        "unquoted-template",
        7,
        15,
        &["`{{vars.dir}}`", "without `quote`", "`steps[0].run`"],
    );
    assert_contains(diagnostic.help(), &["{{quote vars.dir}}"]);
    assert!(
        checked.text_stdout.contains("is valid (1 warning)"),
        "{}",
        checked.text_stdout
    );
}

#[test]
fn an_unquoted_var_with_shell_safe_choices_is_fine() {
    let checked = check(
        r#"version: 1
name: t
vars:
  stage:
    default: staging
    choices: [staging, production]
steps:
  - id: a
    run: deploy --to {{vars.stage}}
    readonly: true
"#,
        &[],
    );
    checked.clean();
}

#[test]
fn an_unquoted_var_with_unsafe_choices_still_warns() {
    let checked = check(
        r#"version: 1
name: t
vars:
  stage:
    default: staging
    choices: [staging, "prod; rm -rf /"]
steps:
  - id: a
    run: deploy --to {{vars.stage}}
    readonly: true
"#,
        &[],
    );
    checked.warning("unquoted-template", 9, 24, &["`{{vars.stage}}`"]);
}

#[test]
fn a_step_without_rollback_warns_unless_readonly() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: change
    run: touch /tmp/x
  - id: look
    run: ls /tmp
    readonly: true
"#,
        &[],
    );
    let diagnostic = checked.warning("no-rollback", 4, 9, &["step `change`", "no `rollback`"]);
    assert_contains(diagnostic.help(), &["readonly: true"]);
    assert_eq!(
        checked.diagnostics.len(),
        1,
        "`look` is readonly: {:#?}",
        checked.diagnostics
    );
}

#[test]
fn a_rollback_reading_its_own_outputs_warns_without_only_if_succeeded() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: backup
    run: echo "file=/tmp/x" >> "$RUNBOOK_OUTPUT"
    rollback: rm -f {{quote steps.backup.outputs.file}}
  - id: guarded
    run: echo "file=/tmp/y" >> "$RUNBOOK_OUTPUT"
    rollback:
      run: rm -f {{quote steps.guarded.outputs.file}}
      only_if_succeeded: true
"#,
        &[],
    );
    let diagnostic = checked.warning(
        "rollback-reads-missing-output",
        6,
        15,
        &["rollback of `backup`", "own outputs"],
    );
    assert_contains(diagnostic.help(), &["only_if_succeeded: true"]);
    assert_eq!(
        checked.diagnostics.len(),
        1,
        "`guarded` has only_if_succeeded: {:#?}",
        checked.diagnostics
    );
}

#[test]
fn strict_turns_warnings_into_exit_2() {
    let yaml = r#"version: 1
name: t
steps:
  - id: change
    run: touch /tmp/x
"#;
    let relaxed = check(yaml, &[]);
    relaxed.warning("no-rollback", 4, 9, &["`change`"]);
    let strict = check(yaml, &["--strict"]);
    let diagnostic = strict.error("no-rollback", 4, 9, &["`change`"]);
    assert_eq!(diagnostic.severity, "error");
    assert!(
        strict.text.contains("is not a valid runbook"),
        "{}",
        strict.text
    );
}

#[test]
fn hard_coded_secrets_are_warned() {
    // Each script in a block scalar on line 7, indented 6: column 7 is its first character.
    let cases = [
        ("PGPASSWORD='hunter2' psql -h db", 7),
        ("PGPASSWORD='S3cr3t!Pass#2024' psql -h db", 7),
        ("mysql -pS3cr3t -h db", 7),
        ("psql postgres://admin:pw@db/prod", 12),
        ("tool --password=hunter2", 14),
        (
            "curl -H \"Authorization: Bearer abcdef.ghijkl\" http://x",
            31,
        ),
    ];
    let mut warned = 0;
    for (script, column) in cases {
        let yaml = format!(
            "version: 1\nname: t\nsteps:\n  - id: a\n    readonly: true\n    run: |\n      {script}\n"
        );
        let checked = check(&yaml, &[]);
        let diagnostic = checked.warning(
            "hard-coded-secret",
            7,
            column,
            &["`steps[0]`", "hard-coded secret"],
        );
        assert_contains(diagnostic.help(), &["secret: true"]);
        warned += 1;
    }
    assert_eq!(warned, 6);
}

#[test]
fn a_password_from_the_environment_is_not_a_hard_coded_secret() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    readonly: true
    run: PGPASSWORD="$DB_PASSWORD" psql -h db
"#,
        &[],
    );
    checked.clean();
}

// One pass, several files, command-line inputs ----------------------------------------------

#[test]
fn several_errors_in_different_steps_are_reported_in_one_pass() {
    let checked = check(
        r#"version: 1
name: t
steps:
  - id: a
    needs: [nope]
    run: "true"
    readonly: true
  - id: b
    run: echo {{quote vars.missing}}
    readonly: true
  - id: c
    run: "true"
    readonly: true
    retry: { attempts: 0 }
  - id: d
    verify:
      - name: port
        tcp: localhost
  - id: e
"#,
        &[],
    );
    assert_eq!(checked.code, 2);
    let codes: Vec<&str> = checked
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code.as_str())
        .collect();
    assert_eq!(
        codes,
        [
            "unknown-need",
            "undefined-var",
            "invalid-retry",
            "probe-tcp",
            "empty-step"
        ]
    );
    assert_eq!(checked.errors(), 5);
    assert!(
        checked.text.contains("(5 errors, 0 warnings)"),
        "{}",
        checked.text
    );
}

const VALID: &str = r#"version: 1
name: good
steps:
  - id: a
    run: "true"
    readonly: true
"#;

#[test]
fn several_files_with_one_bad_exit_2_and_report_both() {
    let bad = "version: 1\nname: Bad\nsteps:\n  - id: a\n    run: \"true\"\n    readonly: true\n";
    let output = Test::new()
        .runbook(bad)
        .file("good.yaml", VALID)
        .args(["validate", "--format", "json", "{dir}/good.yaml", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    let json: Value = serde_json::from_str(&output.stdout).expect("JSON on stdout");
    assert_eq!(json["valid"], Value::Bool(false));
    let files = json["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{json:#}");
    assert_eq!(files[0]["file"], "[DIR]/good.yaml");
    assert_eq!(files[0]["valid"], Value::Bool(true));
    assert_eq!(files[1]["file"], "[DIR]/runbook.yaml");
    assert_eq!(files[1]["valid"], Value::Bool(false));
    assert_eq!(files[1]["diagnostics"][0]["code"], "invalid-name");

    let text = Test::new()
        .runbook(bad)
        .file("good.yaml", VALID)
        .args(["validate", "{dir}/good.yaml", "{file}"])
        .run();
    assert_eq!(text.code, 2, "{}", text.snapshot());
    assert!(
        text.stdout.contains("`[DIR]/good.yaml` is valid"),
        "{}",
        text.snapshot()
    );
    assert!(
        text.stderr
            .contains("`[DIR]/runbook.yaml` is not a valid runbook"),
        "{}",
        text.snapshot()
    );
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let output = Test::new()
        .runbook(VALID)
        .args(["validate", "{file}", "{dir}/absent.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output.stderr.contains("cannot read `[DIR]/absent.yaml`"),
        "{}",
        output.snapshot()
    );
    assert!(
        output.stdout.contains("`[DIR]/runbook.yaml` is valid"),
        "the readable file is still checked: {}",
        output.snapshot()
    );

    let json = Test::new()
        .args(["validate", "--format", "json", "{dir}/absent.yaml"])
        .run();
    assert_eq!(json.code, 2, "{}", json.snapshot());
    let document: Value = serde_json::from_str(&json.stdout).expect("JSON on stdout");
    let diagnostic = Diag::from_json(&document["files"][0]["diagnostics"][0]);
    assert_eq!(diagnostic.code, "unreadable");
    assert_contains(&diagnostic.message, &["`[DIR]/absent.yaml`"]);
}

#[test]
fn a_missing_vars_file_exits_2_naming_it() {
    let output = Test::new()
        .runbook(VALID)
        .args(["validate", "{file}", "--vars-file", "{dir}/prod-vars.yaml"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
    assert!(
        output.stderr.contains("[DIR]/prod-vars.yaml"),
        "{}",
        output.snapshot()
    );
    let checked = check(VALID, &["--vars-file", "{dir}/prod-vars.yaml"]);
    assert_eq!(checked.code, 2);
    assert_contains(&checked.one("vars-file").message, &["prod-vars.yaml"]);
}

const WITH_STAGE: &str = r#"version: 1
name: t
vars:
  stage:
    default: staging
    choices: [staging, production]
steps:
  - id: a
    run: deploy --to {{vars.stage}}
    readonly: true
"#;

#[test]
fn a_var_given_with_an_unknown_name() {
    let checked = check(WITH_STAGE, &["--var", "stgae=production"]);
    assert_eq!(checked.code, 2);
    let diagnostic = checked.one("unknown-var");
    assert_eq!(diagnostic.severity, "error");
    assert_contains(&diagnostic.message, &["`stgae`"]);
    assert_eq!(diagnostic.help(), "did you mean `stage`?");
    assert!(
        checked.text.contains("did you mean `stage`?"),
        "{}",
        checked.text
    );
}

#[test]
fn a_var_given_outside_its_choices() {
    let checked = check(WITH_STAGE, &["--var", "stage=prod"]);
    let diagnostic = checked.error("var-choice", 4, 3, &["`prod`", "variable `stage`", "--var"]);
    assert_eq!(diagnostic.help(), "choices: staging, production");
    check(WITH_STAGE, &["--var", "stage=production"]).clean();
}
