//! The runbook of a recorded run, for `rollback RUN` and `resume RUN`: the copy kept in its
//! directory with the copies of the module files it used (SPEC §10, §13), or with
//! `--use-current` the files as they are now, refused when the runbook or a module changed
//! unless `--allow-changed`. Validated again with the `list` var items the run recorded.

use std::path::{Path, PathBuf};

use super::list_instances::list_values;
use super::run::{digest, runbook_digest};
use crate::source::Source;
use crate::state::{MODULE_COPIES, RUNBOOK_COPY, RunRecord, kept_modules};
use crate::validate::{
    HostInputs, KeptModules, ListValues, Validation, validate_kept, validate_with_lists,
};

/// Where `rollback` and `resume` take the runbook from.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunbookChoice {
    /// `--use-current`: the file as it is now, not the copy kept with the run.
    pub use_current: bool,
    /// `--allow-changed`: the file as it is now even though its digest changed.
    pub allow_changed: bool,
}

/// The runbook of a run, validated, and whether it changed since (`--allow-changed`); `Err`
/// says why not (nothing was done). The digest check comes before validity, so an edited
/// file is reported as edited.
pub(super) fn recorded_runbook(
    record: &RunRecord,
    directory: &Path,
    choice: RunbookChoice,
    hosts: &HostInputs,
) -> Result<(Source, Validation, bool), String> {
    let copy = directory.join(RUNBOOK_COPY);
    let kept = !choice.use_current && copy.is_file();
    let source = if kept {
        let text = Source::read(&copy)
            .map_err(|error| format!("{error} (the runbook kept with run {})", record.run_id))?;
        // Named by the original path, so `runbook.dir` and default working directories stay.
        Source::new(
            PathBuf::from(&record.file),
            record.file.clone(),
            text.text().to_string(),
        )
    } else {
        Source::read(Path::new(&record.file))
            .map_err(|error| format!("{error} (the runbook of run {})", record.run_id))?
    };
    let copies = kept_modules(directory)
        .map_err(|error| format!("{error} (the modules kept with run {})", record.run_id))?;
    let copies: Option<KeptModules> = copies.map(|copies| copies.into_iter().collect());
    let validation = validated(&source, record, hosts, copies.as_ref().filter(|_| kept));
    let now = match (&copies, kept) {
        // A run kept by an older engine: its digest is the runbook text's.
        (None, true) => digest(source.text()),
        _ => runbook_digest(
            source.text(),
            validation
                .modules
                .iter()
                .map(|module| (module.path.as_str(), module.source.text())),
        ),
    };
    if now == record.digest {
        return Ok((source, validation, false));
    }
    if kept {
        return Err(format!(
            "the runbook kept in `{}` (and `{}`) does not match the digest run {} recorded ({} then, {now} now): nothing was done\n  help: `--use-current` takes the runbook file as it is now",
            copy.display(),
            directory.join(MODULE_COPIES).display(),
            record.run_id,
            record.digest
        ));
    }
    if !choice.allow_changed {
        let which = copies
            .map(|copies| changed_modules(&copies, &validation))
            .filter(|changed| !changed.is_empty())
            .map(|changed| format!(" (module {})", changed.join(", ")))
            .unwrap_or_default();
        return Err(format!(
            "the runbook `{}` changed since run {}{which} ({} then, {now} now): nothing was done\n  help: pass `--allow-changed` to use the file as it is now",
            record.file, record.run_id, record.digest
        ));
    }
    Ok((source, validation, true))
}

/// The runbook validated (from `copies` of its modules when given), again with the `list`
/// var items the run recorded when a `for_each` reads one.
fn validated(
    source: &Source,
    record: &RunRecord,
    hosts: &HostInputs,
    copies: Option<&KeptModules>,
) -> Validation {
    let validate = |lists: &ListValues| match copies {
        Some(copies) => validate_kept(source, hosts, lists, copies),
        None => validate_with_lists(source, hosts, lists),
    };
    let first = validate(&ListValues::new());
    match first
        .runbook
        .as_ref()
        .filter(|runbook| runbook.has_undecided_instances())
    {
        Some(runbook) => {
            let values = list_values(
                runbook,
                record
                    .vars
                    .iter()
                    .map(|var| (var.name.as_str(), var.value.as_deref())),
            );
            validate(&values)
        }
        None => first,
    }
}

/// The modules (`path`, backticked) whose text now differs from the copy kept with the run,
/// or that the run did not use.
fn changed_modules(copies: &KeptModules, validation: &Validation) -> Vec<String> {
    validation
        .modules
        .iter()
        .filter(|module| copies.get(&module.path).map(String::as_str) != Some(module.source.text()))
        .map(|module| format!("`{}`", module.path))
        .collect()
}
