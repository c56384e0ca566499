//! Each command's help lists the options it uses: the run-time output options
//! (`--progress`, `--log-format`) appear in the help of `run`, `resume` and `rollback` only,
//! and stay accepted everywhere (SPEC §11 makes them global).

mod common;

use common::Test;

const RUN_OUTPUT_OPTIONS: [&str; 2] = ["--progress", "--log-format"];

fn help(command: &str) -> String {
    let output = Test::new().args([command, "--help"]).run();
    assert_eq!(output.code, 0, "{}", output.snapshot());
    output.stdout
}

#[test]
fn commands_that_show_a_run_list_the_run_output_options() {
    for command in ["run", "resume", "rollback"] {
        let text = help(command);
        for option in RUN_OUTPUT_OPTIONS {
            assert!(
                text.contains(option),
                "`{command} --help` lacks {option}:\n{text}"
            );
        }
        assert!(text.contains("--state-dir"), "{text}");
    }
}

#[test]
fn commands_that_ignore_them_do_not_list_them() {
    let validate = help("validate");
    assert!(
        validate.contains("--strict") && validate.contains("--vars-file"),
        "{validate}"
    );
    for command in [
        "validate", "plan", "report", "schema", "init", "history", "show",
    ] {
        let text = help(command);
        for option in RUN_OUTPUT_OPTIONS {
            assert!(
                !text.contains(option),
                "`{command} --help` lists {option}:\n{text}"
            );
        }
        assert!(text.contains("--no-color"), "{text}");
    }
}

#[test]
fn the_state_dir_help_names_the_xdg_default_not_the_working_directory() {
    let text = help("history");
    assert!(text.contains("$XDG_STATE_HOME/runbook"), "{text}");
    assert!(!text.contains(".runbook"), "{text}");
}

#[test]
fn the_hidden_options_are_still_accepted_before_or_after_the_command() {
    let runbook =
        "version: 1\nname: fine\nsteps:\n  - id: a\n    run: \"true\"\n    readonly: true\n";
    for args in [
        vec![
            "validate",
            "{file}",
            "--progress",
            "plain",
            "--log-format",
            "json",
        ],
        vec![
            "--progress",
            "none",
            "--log-format",
            "json",
            "validate",
            "{file}",
        ],
        vec!["plan", "{file}", "--progress", "plain"],
    ] {
        let output = Test::new().runbook(runbook).args(&args).run();
        assert_eq!(output.code, 0, "{args:?}:\n{}", output.snapshot());
    }
    let bad = Test::new()
        .runbook(runbook)
        .args(["validate", "{file}", "--progress", "sideways"])
        .run();
    assert_eq!(bad.code, 2, "{}", bad.snapshot());
}
