//! What `run`, `resume` and `rollback` share once they know which run they drive: the run
//! lock, variables resolved with real values, the masker, the journal-backed emitter, the
//! rendered runbook `env`, and the dispatch with its summary.

use std::io::IsTerminal;
use std::sync::Arc;

use super::args::{GlobalArgs, LogFormat, Progress};
use super::diagnostics::render_error;
use crate::errors::{EXIT_INVALID, EXIT_LOCKED};
use crate::executor::{
    Emitter, EventSink, Fleet, FleetLayout, RunOptions, RunRecorder, RunShared, Start, dispatch,
};
use crate::model::Runbook;
use crate::plan::{Context, ResolvedVar, VarInputs, resolve_vars};
use crate::report::{
    JsonLines, LiveProgress, PlainLines, Reporter, final_line, for_stdout, summary_text,
};
use crate::secrets::Masker;
use crate::state::{LockError, RunInfo, RunLock, UnfinishedIndex};
use crate::template::{PreparedContext, TemplateEngine};

/// A run ready to dispatch.
#[derive(Debug)]
pub(super) struct Session {
    pub shared: Arc<RunShared>,
    pub context: Context,
}

/// Takes the run lock of `runbook` (its `lock`, default its name), or prints who holds it and
/// returns exit code 75.
pub(super) fn lock_runbook(
    state: &std::path::Path,
    runbook: &Runbook,
    info: &RunInfo,
    action: &str,
) -> Result<RunLock, i32> {
    let what = if action == "run" {
        format!("run {}", info.id)
    } else {
        format!("{action} of run {}", info.id)
    };
    let holder = format!(
        "{what} of `{}` (pid {}, started {})",
        runbook.name,
        std::process::id(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    match RunLock::acquire(state, &runbook.lock, &holder) {
        Ok(lock) => Ok(lock),
        Err(error @ LockError::Held { .. }) => {
            errln!("error: {error}");
            errln!("  help: wait for it to finish; nothing was done");
            Err(EXIT_LOCKED)
        }
        Err(error) => {
            err!("{}", render_error(&error));
            Err(EXIT_INVALID)
        }
    }
}

/// Everything a session needs to be built.
pub(super) struct SessionInput<'a> {
    pub runbook: Runbook,
    pub info: RunInfo,
    pub inputs: &'a VarInputs,
    /// None for a preview (`rollback --dry-run`), which records nothing.
    pub recorder: Option<RunRecorder>,
    pub options: RunOptions,
    /// Where instances run, when a step has `on` (the runbook is then an instance runbook).
    pub layout: Option<FleetLayout>,
}

/// Resolves variables with their real values, builds the emitter, lets `first_record` write
/// the journal's first record for this session, renders the runbook `env`.
pub(super) fn start_session(
    input: SessionInput<'_>,
    global: &GlobalArgs,
    first_record: impl FnOnce(&Emitter, &[ResolvedVar]) -> Result<(), String>,
) -> Result<Session, i32> {
    let SessionInput {
        runbook,
        info,
        inputs,
        recorder,
        options,
        layout,
    } = input;
    let engine = TemplateEngine::new();
    let runbook = Arc::new(runbook);
    let mut context = Context::for_run(&runbook, &info);
    let resolved = match resolve_vars(&runbook, inputs, &mut context, &engine, true) {
        Ok(Ok(resolved)) => resolved,
        Ok(Err(problems)) => {
            for problem in problems {
                errln!("error: {}", problem.message);
            }
            errln!("error: the variables are not valid: nothing was done");
            return Err(EXIT_INVALID);
        }
        Err(error) => {
            err!("{}", render_error(&error));
            return Err(EXIT_INVALID);
        }
    };
    let secrets: Vec<String> = resolved
        .iter()
        .filter(|var| var.secret)
        .filter_map(|var| var.value.clone())
        .filter(|value| !value.is_empty())
        .collect();
    let masker = Masker::new(secrets.iter().cloned());
    if !masker.too_short().is_empty() {
        errln!(
            "warning: a secret value is shorter than 4 characters: it is masked, but so is any text that happens to contain it"
        );
    }
    let emitter = Emitter::new(masker, reporter(global), recorder);
    if let Err(message) = first_record(&emitter, &resolved) {
        errln!("error: {message}: nothing was done");
        return Err(EXIT_INVALID);
    }
    let prepared = PreparedContext::new(context.value()).map_err(|error| {
        errln!("error: {error}");
        EXIT_INVALID
    })?;
    let mut base_env = Vec::new();
    for entry in &runbook.env {
        match engine.render_prepared(&entry.value.text, &prepared) {
            Ok(value) => base_env.push((entry.name.clone(), value)),
            Err(error) => {
                errln!(
                    "error: cannot render `{}`: {}: nothing was done",
                    entry.value.place,
                    emitter.mask(&error.to_string())
                );
                return Err(EXIT_INVALID);
            }
        }
    }
    base_env.push(("RUNBOOK_RUN_ID".into(), info.id.clone()));
    base_env.push((
        "RUNBOOK_RUN_DIR".into(),
        info.directory.display().to_string(),
    ));
    let fleet = match layout.map(|layout| Fleet::new(&runbook, layout, &info.directory)) {
        None => None,
        Some(Ok(fleet)) => Some(fleet),
        Some(Err(error)) => {
            errln!(
                "error: cannot make the private directory for the ssh control sockets: {error}: nothing was done"
            );
            return Err(EXIT_INVALID);
        }
    };
    let shared = Arc::new(RunShared {
        runbook,
        engine,
        emitter,
        info,
        options,
        base_env,
        approval_lock: tokio::sync::Mutex::new(()),
        fleet,
    });
    Ok(Session { shared, context })
}

/// Dispatches the session and prints its summary; returns the exit code.
pub(super) async fn finish_session(session: Session, start: Start, global: &GlobalArgs) -> i32 {
    let run_id = session.shared.info.id.clone();
    let name = session.shared.runbook.source_name.clone();
    let rehearsal = session
        .shared
        .options
        .fail_at
        .map(|index| session.shared.runbook.steps[index].id.to_string());
    let directory = session.shared.info.directory.clone();
    let dispatched = dispatch(session.shared, session.context, start).await;
    UnfinishedIndex::settle(&directory);
    match dispatched {
        Ok(result) => {
            if global.log_format == LogFormat::Text && global.progress != Progress::None {
                out!(
                    "{}",
                    for_stdout(&summary_text(&result, &run_id, rehearsal.as_deref()))
                );
            } else if global.log_format == LogFormat::Text {
                outln!("{}", final_line(&result, &run_id, rehearsal.as_deref()));
            }
            result.exit_code
        }
        Err(error) => {
            errln!("error: the engine could not run `{name}`: {error}");
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

/// A tokio runtime for one command.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            err!("{}", render_error(&error));
            EXIT_INVALID
        })
}
