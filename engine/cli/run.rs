//! `runbook run`: validates and plans first (nothing runs from an invalid runbook), takes the
//! run lock, refuses to start over an unfinished run, then executes and prints the summary.

use super::args::{GlobalArgs, RunArgs};
use super::load::{Loaded, load, var_inputs};
use super::plan::print_plan;
use super::session::{SessionInput, finish_session, lock_runbook, runtime, start_session};
use crate::errors::EXIT_INVALID;
use crate::executor::{FleetLayout, RunOptions, RunRecorder, Start, instance_runbook};
use crate::plan::ResolvedVar;
use crate::state::RunInfo;
use crate::state::{
    JournalHeader, JournalWriter, LogFiles, Record, RecordedOptions, RecordedOrigin, RecordedVar,
    RunDirectory, UnfinishedIndex, keep_modules, new_run_info, state_directory,
};
use crate::suggest::suggest;

pub fn run(args: &RunArgs, global: &GlobalArgs) -> i32 {
    if args.dry_run {
        return print_plan(
            &args.file,
            &args.vars,
            args.format,
            args.all_warnings,
            global,
        );
    }
    let loaded = match load(&args.file, &args.vars, args.all_warnings, global) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut loaded = loaded;
    let layout = match instance_runbook(loaded.runbook.clone(), &args.vars.limit) {
        Ok((runbook, layout)) => {
            loaded.runbook = runbook;
            layout
        }
        Err(message) => {
            errln!("error: {message}: nothing was run");
            return EXIT_INVALID;
        }
    };
    let fail_at = match args.fail_at.as_deref().map(|step| fail_at(&loaded, step)) {
        None => None,
        Some(Ok(index)) => Some(index),
        Some(Err(code)) => return code,
    };
    if let Err(code) = super::step_ids::check_step_ids(&loaded.runbook, &args.approve, &[], &[]) {
        return code;
    }
    match runtime() {
        Ok(runtime) => runtime.block_on(execute(loaded, layout, args, fail_at, global)),
        Err(code) => code,
    }
}

/// The step `--fail-at` names, or exit 2 saying why not (nothing has run yet).
fn fail_at(loaded: &Loaded, named: &str) -> Result<usize, i32> {
    let steps = &loaded.runbook.steps;
    if let Some(step) = loaded.runbook.step(named) {
        return Ok(step.index);
    }
    errln!(
        "error: `--fail-at {named}`: `{}` has no step `{named}`; nothing was run",
        loaded.source.name()
    );
    match suggest(named, steps.iter().map(|step| step.id.as_str())) {
        Some(close) => errln!("  help: did you mean `{close}`?"),
        None => errln!(
            "  help: the steps are {}",
            steps
                .iter()
                .map(|step| format!("`{}`", step.id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Err(EXIT_INVALID)
}

async fn execute(
    loaded: Loaded,
    layout: Option<FleetLayout>,
    args: &RunArgs,
    fail_at: Option<usize>,
    global: &GlobalArgs,
) -> i32 {
    let state = state_directory(global.state_dir.as_deref());
    let mut info = new_run_info(&state);
    let _lock = match lock_runbook(&state, &loaded.runbook, &info, "run") {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let index = UnfinishedIndex::new(&state);
    let (unfinished, damaged) = index.unfinished_runs(&state, &loaded.runbook.name);
    if let (Some(problem), false) = (damaged.first(), args.force) {
        errln!("error: {problem}");
        errln!(
            "  help: a damaged journal may hide an unfinished run: check it (`runbook show RUN`), or start anyway with `--force`; nothing was run"
        );
        return EXIT_INVALID;
    }
    if let (Some(run), false) = (unfinished.last(), args.force) {
        errln!(
            "error: run {run} of `{}` is unfinished: its engine stopped before the run ended, and a new run could land on a half-done change",
            loaded.runbook.name
        );
        errln!(
            "  help: continue it with `runbook resume {run}`, undo it with `runbook rollback {run}`, or start anyway with `--force`"
        );
        return EXIT_INVALID;
    }
    if let Err(error) = index.mark_started(&info.id, &loaded.runbook.name) {
        errln!(
            "error: cannot write the run index in `{}`: {error}: nothing was run",
            state.display()
        );
        return EXIT_INVALID;
    }
    match RunDirectory::create(&state, &info.id) {
        Ok(directory) => {
            let modules: Vec<(String, Vec<u8>)> = loaded
                .modules
                .iter()
                .map(|module| {
                    (
                        module.path.clone(),
                        module.source.text().as_bytes().to_vec(),
                    )
                })
                .collect();
            if let Err(error) = directory
                .keep_runbook(&loaded.source.bytes())
                .and_then(|()| keep_modules(&directory.path, &modules))
            {
                errln!(
                    "error: cannot keep a copy of the runbook and its modules in `{}`: {error}: nothing was run",
                    directory.path.display()
                );
                return EXIT_INVALID;
            }
            info.directory = directory.path;
        }
        Err(error) => {
            errln!(
                "error: cannot create the run directory `{}`: {error}",
                info.directory.display()
            );
            return EXIT_INVALID;
        }
    }
    let recorder = match open_recorder(&info.directory, args.journal_in_memory) {
        Ok(recorder) => recorder,
        Err(message) => {
            errln!("error: {message}: nothing was run");
            return EXIT_INVALID;
        }
    };
    let options = RunOptions {
        concurrency: args.jobs.map(|jobs| jobs as usize),
        approve_all: args.yes,
        approve: args.approve.clone(),
        no_rollback: args.no_rollback,
        fail_at,
    };
    let header_info = info.clone();
    let source = loaded.source;
    let modules = loaded.modules;
    let runbook_name = loaded.runbook.name.clone();
    let irreversible: Vec<String> = loaded
        .runbook
        .steps
        .iter()
        .filter(|step| step.irreversible)
        .map(|step| step.id.to_string())
        .collect();
    let origins: Vec<RecordedOrigin> = loaded
        .runbook
        .steps
        .iter()
        .filter_map(|step| {
            Some(RecordedOrigin {
                step: step.id.to_string(),
                written_at: step.written_at.clone()?,
                call: step.called_at.clone(),
            })
        })
        .collect();
    let input = SessionInput {
        runbook: loaded.runbook,
        info,
        inputs: &var_inputs(&args.vars),
        recorder: Some(recorder),
        options,
        layout,
    };
    let session = start_session(input, global, |emitter, resolved| {
        let mut header = journal_header(
            &header_info,
            &runbook_name,
            (&source, &modules),
            resolved,
            args,
        );
        header.irreversible = irreversible;
        header.origins = origins;
        emitter.record(&Record::Header(Box::new(header)))
    });
    match session {
        Ok(session) => finish_session(session, Start::Fresh, global).await,
        Err(code) => code,
    }
}

/// The journal and log files of a new run.
fn open_recorder(directory: &std::path::Path, in_memory: bool) -> Result<RunRecorder, String> {
    let journal = if in_memory {
        JournalWriter::in_memory(directory)
    } else {
        JournalWriter::create(directory)
    };
    let journal = journal.map_err(|error| error.to_string())?;
    let logs = LogFiles::new(directory)
        .map_err(|error| format!("cannot create the log directory: {error}"))?;
    Ok(RunRecorder::new(journal, Some(logs)))
}

/// The digest of a runbook text, recorded so `resume` and `rollback` notice an edited file.
pub(super) fn digest(text: &str) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// The digest of a runbook and the module files it uses (`path`, text), so an edited module
/// is an edited runbook; without modules, the runbook text's own digest.
pub(super) fn runbook_digest<'a>(
    text: &str,
    modules: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    use sha2::Digest;
    let mut modules: Vec<(&str, &str)> = modules.into_iter().collect();
    if modules.is_empty() {
        return digest(text);
    }
    modules.sort();
    let mut hasher = sha2::Sha256::new();
    hasher.update(text.as_bytes());
    for (path, module) in modules {
        // Lengths first: no two different sets of files hash alike.
        hasher.update(format!(
            "\0module {} {}\0{path}\0",
            path.len(),
            module.len()
        ));
        hasher.update(module.as_bytes());
    }
    format!("sha256:{:x}", hasher.finalize())
}

/// The first journal record: what ran, from which file (and its digest), with which values
/// (secrets only by where they came from), and how.
fn journal_header(
    info: &RunInfo,
    runbook: &str,
    (source, modules): (&crate::source::Source, &[crate::validate::ModuleFile]),
    vars: &[ResolvedVar],
    args: &RunArgs,
) -> JournalHeader {
    let file = std::fs::canonicalize(source.path()).unwrap_or_else(|_| source.path().to_path_buf());
    let vars = vars
        .iter()
        .map(|var| RecordedVar {
            name: var.name.clone(),
            value: if var.secret { None } else { var.value.clone() },
            secret: var.secret,
            source: var.source.describe(),
        })
        .collect();
    let options = RecordedOptions {
        jobs: args.jobs,
        yes: args.yes,
        approve: args.approve.clone(),
        no_rollback: args.no_rollback,
        timestamp: info.timestamp.clone(),
        fail_at: args.fail_at.clone(),
        limit: args.vars.limit.clone(),
        inventories: args
            .vars
            .inventories
            .iter()
            .map(|file| {
                std::fs::canonicalize(file)
                    .unwrap_or_else(|_| file.clone())
                    .display()
                    .to_string()
            })
            .collect(),
    };
    JournalHeader::new(
        &info.id,
        runbook,
        &file.display().to_string(),
        &runbook_digest(
            source.text(),
            modules
                .iter()
                .map(|module| (module.path.as_str(), module.source.text())),
        ),
        &info.started_at,
        vars,
        options,
    )
}
