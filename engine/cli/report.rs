//! `runbook report RUN`: a recorded run's deployment summary as Markdown, a self-contained
//! HTML page with a Gantt chart, or JSON (the run record plus its timeline), on stdout or
//! into `--output FILE`.

use super::args::{GlobalArgs, ReportArgs, ReportFormat};
use crate::errors::{EXIT_INVALID, EXIT_SUCCESS};
use crate::report::{Timeline, html_report, markdown_report};
use crate::state::{RunRecord, find_run, state_directory};

/// The run record as `show --format json` prints it, with the timeline's offsets added.
fn json_report(record: &RunRecord, timeline: &Timeline) -> String {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "timeline".to_string(),
            serde_json::to_value(timeline).unwrap_or_default(),
        );
        // `end` is null both while the engine works and after it died: say which.
        object.insert(
            "in_progress".to_string(),
            serde_json::Value::Bool(record.in_progress()),
        );
    }
    let mut text =
        crate::report::escape_c1(&serde_json::to_string_pretty(&value).unwrap_or_default())
            .into_owned();
    text.push('\n');
    text
}

pub(crate) fn report(args: &ReportArgs, global: &GlobalArgs) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    let directory = match find_run(&state, &args.run) {
        Ok(directory) => directory,
        Err(message) if message.contains(&format!("`{}`", args.run)) => {
            errln!("error: {message}");
            return EXIT_INVALID;
        }
        Err(message) => {
            errln!("error: no run `{}`: {message}", args.run);
            return EXIT_INVALID;
        }
    };
    let record = match RunRecord::load(&directory) {
        Ok(record) => record,
        Err(error) => {
            errln!("error: cannot read run `{}`", args.run);
            errln!("caused by: {error}");
            return EXIT_INVALID;
        }
    };
    let timeline = Timeline::of(&record);
    let text = match args.format {
        ReportFormat::Md => markdown_report(&record, &timeline),
        ReportFormat::Html => html_report(&record, &timeline),
        ReportFormat::Json => json_report(&record, &timeline),
    };
    match &args.output {
        None => out!("{}", crate::report::for_stdout(&text)),
        Some(path) => {
            if let Err(error) = std::fs::write(path, text) {
                errln!("error: cannot write the report to `{}`", path.display());
                errln!("caused by: {error}");
                return EXIT_INVALID;
            }
        }
    }
    EXIT_SUCCESS
}
