//! Every runbook in tests/fixtures/bad (copied from shared/bad-inputs) is refused by
//! `validate` and by `run` with exit 2, a message matching its `# expect:` line, no panic,
//! and nothing executed; the messages are snapshot-tested.

mod common;

use common::Test;
use common::yaml_files::yaml_files;

fn fixtures() -> Vec<std::path::PathBuf> {
    yaml_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad"))
}

fn header(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("# {key}: ")).map(str::to_string))
}

#[test]
fn every_bad_input_is_refused_by_validate_and_run() {
    let files = fixtures();
    assert!(
        files.len() >= 14,
        "expected the shared bad inputs, found {}",
        files.len()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("fixture");
        let expect = header(&text, "expect");
        let commands: Vec<Vec<String>> = match header(&text, "command") {
            Some(command) => vec![
                command.split_whitespace().map(str::to_string).collect(),
                vec!["plan".into()],
            ],
            None => vec![vec!["validate".into()], vec!["run".into(), "--yes".into()]],
        };
        for command in commands {
            let output = Test::new()
                .runbook(&text)
                .args(&command)
                .args(["{file}"])
                .run();
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            assert_eq!(
                output.code,
                2,
                "{name} with {command:?}: {}",
                output.snapshot()
            );
            assert!(
                !output.stderr.contains("panicked"),
                "{name}: {}",
                output.stderr
            );
            assert!(
                !output.marker_exists(),
                "{name} with {command:?} executed a step"
            );
            if let Some(pattern) = &expect {
                let regex = regex::RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .build()
                    .expect("expect regex");
                assert!(
                    regex.is_match(&output.stderr),
                    "{name} with {command:?}: message does not match `{pattern}`:\n{}",
                    output.stderr
                );
            }
        }
    }
}

#[test]
fn bad_input_messages() {
    for file in fixtures() {
        let text = std::fs::read_to_string(&file).expect("fixture");
        let name = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let command = if header(&text, "command").is_some() {
            "plan"
        } else {
            "validate"
        };
        let output = Test::new()
            .runbook_bytes(&format!("{name}.yaml"), text.as_bytes())
            .args([command, &format!("{name}.yaml")])
            .run();
        insta::assert_snapshot!(name, output.snapshot());
    }
}
