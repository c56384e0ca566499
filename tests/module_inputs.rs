//! A module call's `with` value may be any template of the caller's context (SPEC §13): text
//! mixed with `{{vars.x}}` and `{{steps.a.outputs.k}}`, rendered where the module reads the
//! input, through nested modules too, with the same secret and upstream checks as one path.

mod common;

use common::{Test, engine::engine, lines};

/// Writes where it was sent: a URL built by the caller from a var and a step output.
const PROBE: &str = r#"
version: 1
name: probe
vars:
  url: { required: true }
  label: { default: plain }
steps:
  - id: call
    run: echo "$LABEL $URL" >> log
    env:
      URL: "{{vars.url}}"
      LABEL: "{{vars.label}}"
    rollback: echo "undo $LABEL $URL" >> log
"#;

/// Uses `probe.yaml` with a template of its own input.
const CHECK: &str = r#"
version: 1
name: check
vars:
  base: { required: true }
steps:
  - id: health
    uses: probe.yaml
    with:
      url: "{{vars.base}}/health"
      label: "nested-{{vars.base}}"
"#;

#[test]
fn a_with_template_is_rendered_in_the_callers_context_also_through_nested_modules() {
    let runbook = r#"
version: 1
name: caller
vars:
  port: "3000"
steps:
  - id: host
    run: echo "name=db.internal" >> "$RUNBOOK_OUTPUT"
    outputs: [name]
    readonly: true
  - id: direct
    needs: [host]
    uses: modules/probe.yaml
    with:
      url: "http://{{steps.host.outputs.name}}:{{vars.port}}/ready"
      label: direct
  - id: nested
    needs: [host]
    uses: modules/check.yaml
    with:
      base: "http://{{steps.host.outputs.name}}:{{vars.port}}"
  - id: fail
    needs: [direct, nested]
    run: exit 1
"#;
    let output = engine(
        Test::new()
            .runbook(runbook)
            .file("modules/probe.yaml", PROBE)
            .file("modules/check.yaml", CHECK),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let mut forward: Vec<String> = lines(&output.directory, "log")
        .into_iter()
        .filter(|line| !line.starts_with("undo"))
        .collect();
    forward.sort();
    assert_eq!(
        forward,
        [
            "direct http://db.internal:3000/ready",
            "nested-http://db.internal:3000 http://db.internal:3000/health",
        ]
    );
    // The compensations render the same values.
    let mut undone: Vec<String> = lines(&output.directory, "log")
        .into_iter()
        .filter(|line| line.starts_with("undo"))
        .collect();
    undone.sort();
    assert_eq!(
        undone,
        [
            "undo direct http://db.internal:3000/ready",
            "undo nested-http://db.internal:3000 http://db.internal:3000/health",
        ]
    );
}

#[test]
fn a_with_template_is_checked_like_one_path() {
    let runbook = r#"
version: 1
name: caller
vars:
  token: { env: MODULE_INPUTS_TOKEN, secret: true }
steps:
  - id: marker
    readonly: true
    run: touch marker
  - id: later
    needs: [secret, quoted]
    run: echo "name=x" >> "$RUNBOOK_OUTPUT"
    outputs: [name]
    readonly: true
  - id: secret
    uses: modules/probe.yaml
    with:
      url: "https://user:{{vars.token}}@example.com"
  - id: quoted
    uses: modules/quoting.yaml
    with:
      url: "https://{{env.HOME}}/x"
  - id: early
    uses: modules/probe.yaml
    with:
      url: "https://{{steps.later.outputs.name}}/x"
"#;
    let quoting = r#"
version: 1
name: quoting
vars:
  url: { required: true }
steps:
  - id: get
    readonly: true
    run: curl {{quote vars.url}}
"#;
    let output = engine(
        Test::new()
            .runbook(runbook)
            .file("modules/probe.yaml", PROBE)
            .file("modules/quoting.yaml", quoting)
            .env("MODULE_INPUTS_TOKEN", "s3cr3t"),
        &["run", "{file}", "--state-dir", "{dir}/state"],
    );
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(!output.marker_exists(), "nothing runs");
    let stderr = output.stderr.replace("\n  │ ", " ");
    for message in [
        "secret `vars.token` is passed into input `url` of module `modules/probe.yaml`, which is not `secret: true`",
        "reads input `url` inside an expression, and the call gives it a template: only a whole `{{vars.url}}` takes a template",
        "`steps.later.outputs.name` is read by step `early.call`, but `later` is not upstream of it",
    ] {
        assert!(stderr.contains(message), "{message}:\n{}", output.stderr);
    }
    assert!(!stderr.contains("s3cr3t"), "{}", output.stderr);
}
