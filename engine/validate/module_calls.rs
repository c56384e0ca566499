//! A module call's `if`, `on` and `for_each` (SPEC §13) given to the module's steps, their
//! problems reported in the call's file and once; and the file each part of a module's step
//! was written in, for diagnostics and reports.

use std::path::Path;

use super::Diagnostic;
use super::call_effects::CallCondition;
use super::module_rewrite::Rewrite;
use super::modules::Flattened;
use super::validator::Validator;
use crate::document::{RawStep, Spanned};
use crate::source::Source;

impl Validator<'_> {
    /// The items of a call's `for_each` (`outer` makes a module's input the caller's value),
    /// checked; `None` when it has none.
    pub(super) fn call_items(
        &mut self,
        call: &RawStep,
        outer: &[Rewrite],
        module: Option<&Source>,
    ) -> Option<Vec<String>> {
        call.for_each.as_ref()?;
        let before = self.diagnostics.len();
        let items = self.for_each_items(call, outer, true).unwrap_or_default();
        let items = self.check_items(call, items);
        self.in_module_file(before, module);
        if module.is_none() {
            // So that a read of an instance that is not one says so (good ones are aliased).
            self.for_each.insert(call.id.value.clone(), items.clone());
        }
        Some(items)
    }

    /// Gives a step of the module a call with `for_each` uses one instance per item: the
    /// instances of one item need and read each other.
    pub(super) fn apply_call_for_each(
        &mut self,
        call: &RawStep,
        items: &[String],
        flat: &mut Flattened,
        call_source: &Source,
    ) {
        let Some(for_each) = &call.for_each else {
            return;
        };
        if flat.step.for_each.is_some() {
            let message = format!(
                "step `{}` has its own `for_each`, and the module call `{}` has `for_each` too",
                flat.step.id.value, call.id.value
            );
            self.push(
                Diagnostic::error("module-call-for-each", message, Some(for_each.position))
                    .in_file(call_source)
                    .with_help("a step is repeated over one list: make the module's list an input, or call the module once per item"),
            );
            // Reported: the call's items stand in, so nothing else is reported about it.
        }
        flat.step.for_each = Some(Box::new(Spanned::new(
            crate::document::Scalar::list(items),
            for_each.position,
        )));
        flat.effects.for_each_call = Some(call.id.value.clone());
    }

    /// Gives a step of the module `call` uses the call's `on` and `if`.
    pub(super) fn apply_call_effects(
        &mut self,
        call: &RawStep,
        flat: &mut Flattened,
        call_source: &Source,
    ) {
        if let Some(condition) = &call.condition {
            flat.effects.conditions.push(CallCondition {
                call: call.id.value.clone(),
                text: Spanned::clone(condition),
                rewrites_from: flat.rewrites.len(),
                source: call_source.clone(),
            });
        }
        let Some(on) = &call.on else { return };
        if let Some(own) = &flat.step.on {
            let message = format!(
                "step `{}` has its own `on`, and the module call `{}` has `on` too",
                flat.step.id.value, call.id.value
            );
            let written = match (&flat.effects.on_source, &flat.source) {
                (None, Some(module)) => format!(
                    " (the step's is at {}:{})",
                    module.name(),
                    own.position.line
                ),
                _ => String::new(),
            };
            let diagnostic = Diagnostic::error("module-call-on", message, Some(on.position))
                .with_help(format!("give the hosts in one place: the call's `on` applies to every step of the module{written}"));
            self.push(diagnostic.in_file(call_source));
            return;
        }
        flat.step.on = Some(on.clone());
        flat.effects.on_source = Some(call_source.clone());
    }

    /// The step's `if` with the `if` of each call it is inside: each checked in the file and
    /// scope of its call, then all of them required.
    pub(super) fn call_conditions(&mut self, index: usize, step: &mut crate::model::Step) {
        let conditions = match self.step_effects.get(index) {
            Some(effects) if !effects.conditions.is_empty() => effects.conditions.clone(),
            _ => return,
        };
        let own_rewrites = std::mem::take(&mut self.current_rewrites);
        let all_rewrites = self.step_rewrites.get(index).cloned().unwrap_or_default();
        let owner = super::templates::TemplateOwner::Step {
            step: index,
            own: false,
        };
        for condition in conditions {
            self.current_rewrites = all_rewrites
                .get(condition.rewrites_from..)
                .map(<[Rewrite]>::to_vec)
                .unwrap_or_default();
            let before = self.diagnostics.len();
            let scope = super::templates::Scope::new(format!("steps.{}.if", condition.call), owner);
            let checked = self.template(&condition.text, &scope);
            self.call_diagnostics(before, &condition.source, condition.text.position);
            step.condition = match step.condition.take() {
                None => Some(Box::new(checked)),
                Some(own) => match super::call_effects::both(&checked, &own) {
                    Some(combined) => Some(Box::new(combined)),
                    None => {
                        let message = format!(
                            "the `if` of module call `{}` and the `if` of its step `{}` cannot be combined",
                            condition.call, step.id
                        );
                        self.push(
                            Diagnostic::error("module-call-if", message, Some(condition.text.position))
                                .in_file(&condition.source)
                                .with_help("write each `if` as one `{{...}}` (or a literal): the step runs when both hold"),
                        );
                        Some(own)
                    }
                },
            };
        }
        self.current_rewrites = own_rewrites;
    }

    /// The diagnostics from `before` on, found checking a call's `if` or `on` (at `position`
    /// in `source`) for one step of its module: in the call's file, and reported for the
    /// first step only.
    pub(super) fn call_diagnostics(
        &mut self,
        before: usize,
        source: &Source,
        position: crate::document::Position,
    ) {
        let key = (
            source.name().to_string(),
            position.line(),
            position.column(),
        );
        if !self.checked_call_parts.insert(key) {
            self.diagnostics.truncate(before);
            return;
        }
        for diagnostic in &mut self.diagnostics[before..] {
            if diagnostic.file.is_none() {
                *diagnostic = diagnostic.clone().in_file(source);
            }
        }
    }

    /// How reports name a file: relative to the runbook's directory, the runbook by its name.
    pub(super) fn shown_file(&self, source: &Source) -> String {
        let path = Path::new(source.name());
        if source.name() == self.source.name() {
            return path.file_name().map_or_else(
                || source.name().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
        }
        path.strip_prefix(self.source.directory())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The file a step's id is written in, when it is not the runbook (a module's step).
    pub(super) fn id_file(&self, index: usize) -> Option<Source> {
        self.step_sources.get(index).cloned().flatten()
    }

    /// The file a step's `needs` are written in, when it is not the runbook: the module's,
    /// or for a first step of a module its call's.
    pub(super) fn needs_file(&self, index: usize) -> Option<Source> {
        match self
            .step_effects
            .get(index)
            .and_then(|effects| effects.needs_source.clone())
        {
            Some(source) if source.name() == self.source.name() => None,
            Some(source) => Some(source),
            None => self.id_file(index),
        }
    }
}
