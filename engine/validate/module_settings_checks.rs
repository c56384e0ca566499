//! The checks of a used module's own `env` and `defaults` (`module_settings.rs` holds them):
//! each checked in the module's scope, as written in the module's file, and applied to the
//! module's steps.

use std::path::Path;

use super::Diagnostic;
use super::module_rewrite::Rewrite;
use super::templates::{Scope, TemplateOwner};
use super::validator::Validator;
use crate::document::{RawRunbook, RawStep, Spanned};
use crate::model::{EnvEntry, Step};
use crate::source::Source;

impl Validator<'_> {
    /// Refuses what a module's `defaults` cannot mean when it is used: a `cwd` that is not
    /// an absolute path would be read from the caller's directory, not the module's.
    pub(super) fn check_module_settings(
        &mut self,
        call: &RawStep,
        uses: &Spanned<String>,
        module: &RawRunbook,
        source: &Source,
    ) {
        let Some(cwd) = module
            .defaults
            .as_ref()
            .and_then(|defaults| defaults.value.cwd.as_ref())
        else {
            return;
        };
        if !cwd.value.contains("{{") && Path::new(cwd.value.trim()).is_absolute() {
            return;
        }
        let message = format!(
            "module `{}` has `defaults.cwd` `{}`: used, a step's working directory is relative to the runbook that runs, not to the module's file",
            uses.value, cwd.value
        );
        self.push(
            Diagnostic::error("module-defaults-cwd", message, Some(cwd.position))
                .in_file(source)
                .with_help(format!(
                    "give an absolute path, or take the directory as an input and give it to each step's `cwd` (used by step `{}` at line {})",
                    call.id.value, uses.position.line
                )),
        );
    }

    /// Gives step `index` (after `step` checked it) the `env` and `defaults` of the modules
    /// it is written in, innermost first: what the step says itself wins.
    pub(super) fn apply_module_settings(&mut self, index: usize, raw: &RawStep, step: &mut Step) {
        let layers = match self.step_settings.get(index) {
            Some(layers) if !layers.is_empty() => layers.clone(),
            _ => return,
        };
        let own_rewrites = std::mem::take(&mut self.current_rewrites);
        let all_rewrites = self.step_rewrites.get(index).cloned().unwrap_or_default();
        let owner = TemplateOwner::Step {
            step: index,
            own: false,
        };
        let runbook = |key: &str| Scope::new(format!("defaults.{key}"), TemplateOwner::Runbook);
        let own_env: Vec<String> = step.env.iter().map(|entry| entry.name.clone()).collect();
        // Per layer, innermost first; written outermost first so the list reads as it applies.
        let mut inherited: Vec<Vec<EnvEntry>> = Vec::new();
        let mut taken: Vec<String> = own_env;
        let mut shell = raw.shell.is_some();
        let mut cwd = raw.cwd.is_some();
        let mut timeout = raw.timeout.is_some() || raw.approve.is_some();
        let mut grace = raw.grace.is_some();
        let mut retry = raw.retry.is_some();
        for layer in &layers {
            self.current_rewrites = all_rewrites
                .get(layer.rewrites_from..)
                .map(<[Rewrite]>::to_vec)
                .unwrap_or_default();
            let before = self.diagnostics.len();
            self.template_file = Some(layer.source.clone());
            if let Some(env) = &layer.env {
                let entries = self.env_entries(
                    &env.value,
                    "env",
                    &Scope::new("env", TemplateOwner::Runbook).allow_secrets(),
                );
                let mut kept = Vec::new();
                for entry in entries {
                    if !taken.contains(&entry.name) {
                        taken.push(entry.name.clone());
                        kept.push(entry);
                    }
                }
                inherited.push(kept);
            }
            if let Some(defaults) = &layer.defaults {
                let defaults = &defaults.value;
                if !shell && let Some(value) = &defaults.shell {
                    step.shell = self.shell(Some(value), "defaults", owner);
                    shell = true;
                }
                if !cwd && let Some(value) = &defaults.cwd {
                    step.cwd = Some(self.template(value, &Scope::new("defaults.cwd", owner)));
                    cwd = true;
                }
                if !timeout && defaults.timeout.is_some() {
                    step.timeout = self.duration_value(
                        defaults.timeout.as_ref(),
                        "defaults.timeout",
                        &runbook("timeout"),
                    );
                    timeout = true;
                }
                if !grace && defaults.grace.is_some() {
                    if let Some(value) = self.duration_value(
                        defaults.grace.as_ref(),
                        "defaults.grace",
                        &runbook("grace"),
                    ) {
                        step.grace = value;
                    }
                    grace = true;
                }
                if !retry && let Some(value) = &defaults.retry {
                    step.retry = self.retry(Some(value), &runbook("retry.delay"));
                    retry = true;
                }
            }
            self.template_file = None;
            self.module_setting_diagnostics(before, &layer.source);
        }
        let mut env: Vec<EnvEntry> = inherited.into_iter().rev().flatten().collect();
        env.append(&mut step.env);
        step.env = env;
        self.current_rewrites = own_rewrites;
    }

    /// The diagnostics from `before` on, found checking a module's `env` or `defaults` for
    /// one of its steps: in the module's file, each reported once for all its steps.
    fn module_setting_diagnostics(&mut self, before: usize, source: &Source) {
        let found: Vec<Diagnostic> = self.diagnostics.drain(before..).collect();
        for diagnostic in found {
            let diagnostic = if diagnostic.file.is_none() {
                diagnostic.in_file(source)
            } else {
                diagnostic
            };
            let position = diagnostic.position.unwrap_or_default();
            let key = (
                format!("{}\n{}", source.name(), diagnostic.message),
                position.line(),
                position.column(),
            );
            if self.checked_call_parts.insert(key) {
                self.diagnostics.push(diagnostic);
            }
        }
    }
}
