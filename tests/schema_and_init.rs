//! The JSON Schema matches the document types (no drift), every example and runbook
//! validates against it, and `runbook init` writes a runbook that validates.

mod common;

use std::path::Path;
use std::process::Command;

use common::Test;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let output = Test::new().args(["schema"]).run();
    assert_eq!(output.code, 0);
    let committed = std::fs::read_to_string(root().join("schemas/runbook.schema.json"))
        .expect("schemas/runbook.schema.json");
    assert!(
        committed == output.stdout,
        "schemas/runbook.schema.json is out of date: run `cargo run -q -- schema > schemas/runbook.schema.json`"
    );
}

fn yaml_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for directory in [
        "examples",
        "examples/modules",
        "runbooks",
        "runbooks/modules",
    ] {
        for entry in std::fs::read_dir(root().join(directory)).expect("directory") {
            let path = entry.expect("entry").path();
            if path
                .extension()
                .is_some_and(|extension| extension == "yaml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_and_runbook_validates_against_the_schema() {
    let files = yaml_files();
    assert!(files.len() >= 5);
    let script = r#"
import json, re, sys, yaml, jsonschema
# The engine reads YAML 1.2, where only true/false are booleans: PyYAML's YAML 1.1 would
# read the step key `on:` as True.
class Loader(yaml.SafeLoader):
    pass
Loader.yaml_implicit_resolvers = {
    first: [entry for entry in resolvers if entry[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
schema = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    jsonschema.validate(yaml.load(open(path), Loader=Loader), schema)
    print("ok", path)
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(root().join("schemas/runbook.schema.json"))
        .args(&files)
        .output()
        .expect(
            "python3 (install python3 with the jsonschema and pyyaml packages: scripts/test does)",
        );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        files.len()
    );
}

#[test]
fn every_example_and_runbook_is_valid_without_warnings() {
    for file in yaml_files() {
        let output = Test::new()
            .args(["validate", "--strict", &file.display().to_string()])
            .run();
        assert_eq!(output.code, 0, "{}: {}", file.display(), output.snapshot());
    }
}

#[test]
fn init_writes_a_runbook_that_validates_and_plans() {
    let test = Test::new();
    let directory = test.path().to_path_buf();
    let output = test.args(["init", "nightly-backup"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    let file = output.directory.join("nightly-backup.yaml");
    let text = std::fs::read_to_string(&file).expect("written runbook");
    assert!(text.contains("name: nightly-backup"));
    let validate = Test::new()
        .args(["validate", "--strict", &file.display().to_string()])
        .run();
    assert_eq!(validate.code, 0, "{}", validate.snapshot());
    let plan = Test::new()
        .args(["plan", &file.display().to_string()])
        .run();
    assert_eq!(plan.code, 0, "{}", plan.snapshot());
    let again = Test::new()
        .current_dir(&directory)
        .args(["init", "nightly-backup"])
        .run();
    assert_eq!(
        again.code,
        2,
        "init must not overwrite: {}",
        again.snapshot()
    );
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
}
