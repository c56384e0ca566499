//! `runbook run`: validates and plans first (nothing runs from an invalid runbook), then
//! executes with the chosen reporters and prints the summary.

use std::io::IsTerminal;
use std::sync::Arc;

use super::args::{GlobalArgs, LogFormat, Progress, RunArgs};
use super::diagnostics::render_error;
use super::load::{Loaded, load, var_inputs};
use super::plan::print_plan;
use crate::errors::EXIT_INVALID;
use crate::executor::{Emitter, EventSink, RunOptions, RunRecorder, RunShared, dispatch};
use crate::plan::{Context, resolve_vars};
use crate::report::{JsonLines, LiveProgress, PlainLines, Reporter, summary_text};
use crate::secrets::Masker;
use crate::state::{JournalWriter, LogFiles, RunDirectory, new_run_info, state_directory};
use crate::template::TemplateEngine;

pub fn run(args: &RunArgs, global: &GlobalArgs) -> i32 {
    if args.dry_run {
        return print_plan(&args.file, &args.vars, args.format, global);
    }
    let loaded = match load(&args.file, &args.vars, global) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            err!("{}", render_error(&error));
            return EXIT_INVALID;
        }
    };
    runtime.block_on(execute(loaded, args, global))
}

async fn execute(loaded: Loaded, args: &RunArgs, global: &GlobalArgs) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    let mut info = new_run_info(&state);
    match RunDirectory::create(&state, &info.id) {
        Ok(directory) => info.directory = directory.path,
        Err(error) => {
            errln!(
                "error: cannot create the run directory `{}`: {error}",
                info.directory.display()
            );
            return EXIT_INVALID;
        }
    }
    let engine = TemplateEngine::new();
    let secrets = loaded.secret_values();
    let runbook = Arc::new(loaded.runbook);
    let mut context = Context::for_run(&runbook, &info);
    let resolved = match resolve_vars(
        &runbook,
        &var_inputs(&args.vars),
        &mut context,
        &engine,
        true,
    ) {
        Ok(Ok(resolved)) => resolved,
        Ok(Err(_)) | Err(_) => {
            errln!("error: variables changed between planning and running: nothing was run");
            return EXIT_INVALID;
        }
    };
    let masker = Masker::new(secrets.iter().cloned());
    for &index in masker.too_short() {
        if let Some(name) = loaded
            .vars
            .iter()
            .filter(|var| var.secret && var.value.as_ref().is_some_and(|value| !value.is_empty()))
            .nth(index)
            .map(|var| var.name.clone())
        {
            errln!(
                "warning: secret `{name}` is shorter than 4 characters: it is masked, but short values also mask ordinary text"
            );
        }
    }
    let recorder = match open_recorder(&info.directory) {
        Ok(recorder) => recorder,
        Err(message) => {
            errln!("error: {message}: nothing was run");
            return EXIT_INVALID;
        }
    };
    let emitter = Emitter::new(masker, reporter(global), Some(recorder));
    let header = journal_header(&info, &runbook, &loaded.source, &resolved, args);
    if let Err(message) = emitter.record(&header) {
        errln!("error: {message}: nothing was run");
        return EXIT_INVALID;
    }
    let mut base_env = Vec::new();
    let prepared = crate::template::PreparedContext::new(context.value());
    for entry in &runbook.env {
        let rendered = prepared
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|prepared| {
                engine
                    .render_prepared(&entry.value.text, prepared)
                    .map_err(|error| error.to_string())
            });
        match rendered {
            Ok(value) => base_env.push((entry.name.clone(), value)),
            Err(message) => {
                errln!(
                    "error: cannot render `{}`: {}: nothing was run",
                    entry.value.place,
                    emitter.mask(&message)
                );
                return EXIT_INVALID;
            }
        }
    }
    base_env.push(("RUNBOOK_RUN_ID".into(), info.id.clone()));
    base_env.push((
        "RUNBOOK_RUN_DIR".into(),
        info.directory.display().to_string(),
    ));
    let options = RunOptions {
        concurrency: args.jobs.map(|jobs| jobs as usize),
        approve_all: args.yes,
        approve: args.approve.clone(),
        no_rollback: args.no_rollback,
    };
    let run_id = info.id.clone();
    let shared = Arc::new(RunShared {
        runbook,
        graph: loaded.graph,
        engine,
        emitter,
        info,
        options,
        base_env,
        approval_lock: tokio::sync::Mutex::new(()),
    });
    match dispatch(shared, context).await {
        Ok(result) => {
            if global.log_format == LogFormat::Text && global.progress != Progress::None {
                out!("{}", summary_text(&result, &run_id));
            } else if global.log_format == LogFormat::Text {
                outln!(
                    "run {run_id}: {} (exit {})",
                    result.outcome.as_str(),
                    result.exit_code
                );
            }
            result.exit_code
        }
        Err(error) => {
            errln!(
                "error: the engine could not run `{}`: {error}",
                loaded.source.name()
            );
            EXIT_INVALID
        }
    }
}

/// The reporter the options ask for.
fn reporter(global: &GlobalArgs) -> EventSink {
    let mut reporter: Box<dyn Reporter> = match (global.log_format, global.progress) {
        (LogFormat::Json, _) => Box::new(JsonLines),
        (LogFormat::Text, Progress::None) => Box::new(PlainLines { quiet: true }),
        (LogFormat::Text, Progress::Auto) if std::io::stderr().is_terminal() => {
            Box::new(LiveProgress::new())
        }
        (LogFormat::Text, Progress::Plain | Progress::Auto) => {
            Box::new(PlainLines { quiet: false })
        }
    };
    Box::new(move |event| reporter.handle(event))
}

/// The journal and log files of a new run.
fn open_recorder(directory: &std::path::Path) -> Result<RunRecorder, String> {
    let journal = JournalWriter::create(directory).map_err(|error| error.to_string())?;
    let logs = LogFiles::new(directory)
        .map_err(|error| format!("cannot create the log directory: {error}"))?;
    Ok(RunRecorder::new(journal, Some(logs)))
}

/// The first journal record: what ran, from which file (and its digest), with which values
/// (secrets only by where they came from), and how.
fn journal_header(
    info: &crate::plan::RunInfo,
    runbook: &crate::model::Runbook,
    source: &crate::source::Source,
    vars: &[crate::plan::ResolvedVar],
    args: &RunArgs,
) -> serde_json::Value {
    use sha2::Digest;
    let digest = format!(
        "sha256:{:x}",
        sha2::Sha256::digest(source.text().as_bytes())
    );
    let file = std::fs::canonicalize(source.path()).unwrap_or_else(|_| source.path().to_path_buf());
    let vars: Vec<serde_json::Value> = vars
        .iter()
        .map(|var| {
            serde_json::json!({
                "name": var.name,
                "value": if var.secret { None } else { var.value.clone() },
                "secret": var.secret,
                "source": var.source.describe(),
            })
        })
        .collect();
    let options = serde_json::json!({
        "jobs": args.jobs,
        "yes": args.yes,
        "approve": args.approve,
        "no_rollback": args.no_rollback,
        "timestamp": info.timestamp,
    });
    crate::state::header(
        &info.id,
        &runbook.name,
        &file.display().to_string(),
        &digest,
        &info.started_at,
        serde_json::Value::Array(vars),
        options,
    )
}
