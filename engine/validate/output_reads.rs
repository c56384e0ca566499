//! Warnings where a template reads a step output that may not exist when it is rendered
//! (SPEC §4, §8 rule 6): the step may be skipped while the reader still runs (`after_skipped:
//! run`), may fail with `allow_failure`, or, for a compensation reading its own step, may
//! have failed before writing it; `rollback_verify` runs after a failure that may have come
//! before the step ran at all, and so do the `summary` and the `on_failure` and `always`
//! hooks. A read through `default` is guarded.

use std::collections::HashMap;

use super::Diagnostic;
use super::validator::Validator;
use crate::document::Spanned;
use crate::model::{Hook, Runbook, Step, Template};

/// One `steps.<id>.outputs.<key>` read that fails when the output is missing.
struct OutputRead {
    step: String,
    key: String,
    /// The host of an instance read as `steps.<id>.hosts.<host>.outputs.<key>`.
    host: Option<String>,
    /// Byte offset of the path inside the template.
    offset: usize,
}

impl OutputRead {
    fn path(&self) -> String {
        match &self.host {
            Some(host) => format!("steps.{}.hosts.{host}.outputs.{}", self.step, self.key),
            None => format!("steps.{}.outputs.{}", self.step, self.key),
        }
    }
}

impl Validator<'_> {
    /// Warns about every read of a step output that may be missing when it is rendered.
    pub(super) fn check_output_reads(&mut self, runbook: &Runbook) {
        let skipped_by = runbook.skipped_by();
        let ids = std::mem::take(&mut self.step_ids);
        for reader in &runbook.steps {
            let rollback_place = format!("steps[{}].rollback", reader.index);
            for template in reader.templates() {
                let in_rollback = template.place.starts_with(&rollback_place);
                // Most reads are of steps that always run and succeed first: the template is
                // analysed again only when one of the steps it reads may leave no output.
                let risky = template.runtime_paths.iter().any(|path| {
                    output_target(runbook, &ids, path).is_some_and(|target| {
                        skipped_by[target.index].is_some()
                            || target.allow_failure
                            || (in_rollback && target.index == reader.index)
                    })
                });
                if !risky {
                    continue;
                }
                for read in self.unguarded_output_reads(template) {
                    let Some(target) = ids.get(&read.step).map(|&index| &runbook.steps[index])
                    else {
                        continue;
                    };
                    let diagnostic = if target.index == reader.index {
                        // A probe of the step itself runs after its `run` succeeded; only its
                        // compensation may run after a failure. The rollback's script has
                        // its own warning (`steps.rs`).
                        let only_if_succeeded = reader
                            .rollback
                            .as_ref()
                            .is_some_and(|rollback| rollback.only_if_succeeded);
                        if !in_rollback
                            || only_if_succeeded
                            || template.place == format!("{rollback_place}.run")
                        {
                            continue;
                        }
                        own_output_in_rollback(reader, template, &read)
                    } else if let Some(cause) = skipped_by[target.index]
                        .filter(|_| !skipped_together(runbook, target.index, reader.index))
                    {
                        skipped_output(runbook, reader, target, cause, template, &read)
                    } else if target.allow_failure {
                        failed_output(reader, target, template, &read)
                    } else {
                        continue;
                    };
                    let position = self.locate(
                        &Spanned::new(template.text.clone(), template.position),
                        read.offset,
                    );
                    self.push(Diagnostic {
                        position: Some(position),
                        length: read.path().chars().count(),
                        ..diagnostic
                    });
                }
            }
        }
        self.step_ids = ids;
        // These run after a failure too, which may have come before the step ran at all.
        let after_failure = [
            ("`rollback_verify`", rollback_verify_templates(runbook)),
            ("the `summary`", runbook.summary.iter().collect()),
            (
                "an `on_failure` hook",
                hook_templates(&runbook.hooks.on_failure),
            ),
            ("an `always` hook", hook_templates(&runbook.hooks.always)),
        ];
        for (what, templates) in after_failure {
            for template in templates {
                self.warn_reads_after_failure(what, template);
            }
        }
    }

    /// Warns about each unguarded output read of `template`, which `what` renders whether or
    /// not the run got as far as the step that writes the output.
    fn warn_reads_after_failure(&mut self, what: &str, template: &Template) {
        for read in self.unguarded_output_reads(template) {
            let path = read.path();
            let message = format!(
                "{what} reads `{path}` (in `{}`), which does not exist when the run failed before `{}` wrote it",
                template.place, read.step
            );
            let position = self.locate(
                &Spanned::new(template.text.clone(), template.position),
                read.offset,
            );
            self.push(
                Diagnostic::warning("output-may-be-missing", message, Some(position))
                    .with_length(path.chars().count())
                    .with_help(format!("use `{{{{default {path} \"\"}}}}`")),
            );
        }
    }

    /// The output reads of `template` not guarded by `default`.
    fn unguarded_output_reads(&self, template: &Template) -> Vec<OutputRead> {
        let reads_outputs = template
            .runtime_paths
            .iter()
            .any(|path| output_read(path).is_some());
        if !reads_outputs {
            return Vec::new();
        }
        let Ok(analysis) = self.engine.analyze(&template.text) else {
            return Vec::new();
        };
        analysis
            .references
            .iter()
            .filter(|reference| {
                !template.text[..reference.span.start]
                    .trim_end()
                    .ends_with("default")
            })
            .filter_map(|reference| {
                let (step, host, key) = output_read(&reference.path)?;
                Some(OutputRead {
                    step: step.to_string(),
                    key: key.to_string(),
                    host: host.map(str::to_string),
                    offset: reference.span.start,
                })
            })
            .collect()
    }
}

/// The step, host (of an instance) and key an output read names: `steps.<id>.outputs.<key>`
/// or `steps.<id>.hosts.<host>.outputs.<key>`.
fn output_read(path: &[String]) -> Option<(&str, Option<&str>, &str)> {
    match path {
        [steps, id, outputs, key] if steps == "steps" && outputs == "outputs" => {
            Some((id, None, key))
        }
        [steps, id, hosts, host, outputs, key]
            if steps == "steps" && hosts == "hosts" && outputs == "outputs" =>
        {
            Some((id, Some(host), key))
        }
        _ => None,
    }
}

fn rollback_verify_templates(runbook: &Runbook) -> Vec<&Template> {
    runbook
        .rollback_verify
        .iter()
        .flat_map(|probe| probe.templates())
        .collect()
}

fn hook_templates(hooks: &[Hook]) -> Vec<&Template> {
    hooks
        .iter()
        .flat_map(|hook| {
            std::iter::once(&hook.run).chain(hook.env.iter().map(|entry| &entry.value))
        })
        .collect()
}

/// The step whose output `path` (`steps.<id>.outputs.<key>`) names.
fn output_target<'a>(
    runbook: &'a Runbook,
    ids: &HashMap<String, usize>,
    path: &[String],
) -> Option<&'a Step> {
    match path {
        [steps, id, outputs, _] if steps == "steps" && outputs == "outputs" => {
            ids.get(id).map(|&index| &runbook.steps[index])
        }
        _ => None,
    }
}

/// Whether a skip of `skipped` is certain to skip `reader` too: a chain of needs leads from
/// `reader` back to it through steps none of which says `after_skipped: run`. Breadth first,
/// so the usual case, a direct need, is found at once.
fn skipped_together(runbook: &Runbook, skipped: usize, reader: usize) -> bool {
    if runbook.steps[reader].runs_after_skipped {
        return false;
    }
    let mut seen = vec![false; 0];
    let mut queue: std::collections::VecDeque<usize> =
        runbook.steps[reader].needs.iter().copied().collect();
    while let Some(step) = queue.pop_front() {
        if step == skipped {
            return true;
        }
        if seen.is_empty() {
            seen = vec![false; runbook.steps.len()];
        }
        if std::mem::replace(&mut seen[step], true) || runbook.steps[step].runs_after_skipped {
            continue;
        }
        queue.extend(runbook.steps[step].needs.iter().copied());
    }
    false
}

fn default_help(read: &OutputRead) -> String {
    format!("use `{{{{default {} \"\"}}}}`", read.path())
}

fn skipped_output(
    runbook: &Runbook,
    reader: &Step,
    target: &Step,
    cause: usize,
    template: &Template,
    read: &OutputRead,
) -> Diagnostic {
    let why = if cause == target.index {
        format!("`{}` has an `if`", target.id)
    } else {
        format!(
            "`{}` is skipped when `{}` is",
            target.id, runbook.steps[cause].id
        )
    };
    let message = format!(
        "`{}` may not exist when `{}` is rendered: {why}, and `{}` may still run without it",
        read.path(),
        template.place,
        reader.id
    );
    Diagnostic::warning("output-may-be-missing", message, None).with_help(format!(
        "{}, or drop `after_skipped: run` so that `{}` is skipped with `{}`",
        default_help(read),
        reader.id,
        target.id
    ))
}

fn failed_output(
    reader: &Step,
    target: &Step,
    template: &Template,
    read: &OutputRead,
) -> Diagnostic {
    let message = format!(
        "`{}` may not exist when `{}` is rendered: `{}` has `allow_failure`, so it may fail before writing it and `{}` still runs",
        read.path(),
        template.place,
        target.id,
        reader.id
    );
    Diagnostic::warning("output-may-be-missing", message, None).with_help(format!(
        "{}, or decide on `steps.{}.status` in an `if`",
        default_help(read),
        target.id
    ))
}

fn own_output_in_rollback(reader: &Step, template: &Template, read: &OutputRead) -> Diagnostic {
    let message = format!(
        "the rollback of `{}` reads the step's own output `{}` in `{}`, but it also runs when the step failed before writing it",
        reader.id,
        read.path(),
        template.place
    );
    Diagnostic::warning("rollback-reads-missing-output", message, None).with_help(format!(
        "add `only_if_succeeded: true` to the rollback, or {}",
        default_help(read)
    ))
}
