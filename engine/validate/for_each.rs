//! `for_each` on a step (SPEC §13): its items are read and checked here; the model expands the
//! step into one instance `id[item]` per item once the runbook is valid.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::Diagnostic;
use super::for_each_instance::{ANY_ITEM, Instance};
use super::module_rewrite::Rewrite;
use super::validator::Validator;
use crate::document::{RawRunbook, RawStep, Spanned};
use crate::model::{ForEachVar, parse_list};
use crate::suggest::suggest;

/// `for_each: "{{vars.<name>}}"`.
static ONE_VAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$").ok());

/// An item names an instance, `id[item]`, and is a segment of `steps.<id>.items.<item>`
/// (one with a `.` is read as `steps.<id>.items.[v1.2]`): letters, digits, `_`, `.` and `-`,
/// not starting or ending with `.`, without `..`.
fn is_item(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('.')
        && !text.ends_with('.')
        && !text.contains("..")
        && text.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.')
        })
}

impl Validator<'_> {
    /// Reads each step's `for_each` list into `self.for_each_by_index`, reporting items that
    /// cannot name an instance.
    fn for_each_lists(&mut self, raw: &RawRunbook) {
        self.for_each_by_index = Vec::with_capacity(raw.steps.value.len());
        for (index, step) in raw.steps.value.iter().enumerate() {
            let Some(for_each) = &step.for_each else {
                self.for_each_by_index.push(None);
                continue;
            };
            // A module step given its call's `for_each`: the call's items, checked there.
            if self
                .step_effects
                .get(index)
                .is_some_and(|effects| effects.for_each_call.is_some())
            {
                let items = for_each
                    .value
                    .0
                    .as_deref()
                    .map(parse_list)
                    .and_then(Result::ok)
                    .unwrap_or_default();
                self.for_each_by_index.push(Some(items));
                continue;
            }
            let rewrites = self.step_rewrites.get(index).cloned().unwrap_or_default();
            let Some(items) = self.for_each_items(step, &rewrites, false) else {
                self.for_each_by_index.push(Some(Vec::new()));
                continue;
            };
            let items = self.check_items(step, items);
            self.for_each_by_index.push(Some(items));
        }
    }

    /// The items of a step's (or a module call's) `for_each`: a list written in the runbook,
    /// or a `list` var's (`rewrites` make a module's input the caller's value); `None` when
    /// it is neither, reported.
    pub(super) fn for_each_items(
        &mut self,
        step: &RawStep,
        rewrites: &[Rewrite],
        module_call: bool,
    ) -> Option<Vec<String>> {
        let for_each = step.for_each.as_ref()?;
        if for_each.value.is_list() {
            return Some(
                for_each
                    .value
                    .0
                    .as_deref()
                    .map(parse_list)
                    .and_then(Result::ok)
                    .unwrap_or_default(),
            );
        }
        self.list_var_items(step, rewrites, module_call)
    }

    /// The items that name an instance, each once: the others are reported (and left out,
    /// so nothing else is reported about them). Items not known yet (a `list` var without a
    /// value) are checked once they are.
    pub(super) fn check_items(&mut self, step: &RawStep, items: Vec<String>) -> Vec<String> {
        let Some(for_each) = &step.for_each else {
            return items;
        };
        let id = &step.id.value;
        let from = match self.for_each_vars.iter().find(|each| each.step == *id) {
            Some(each) if !each.decided => return items,
            Some(each) => format!(" (from `vars.{}`)", each.var),
            None => String::new(),
        };
        let mut seen = HashSet::new();
        let mut good = Vec::new();
        for item in items {
            if !is_item(&item) {
                let message = format!(
                    "`for_each` item `{item}`{from} of step `{id}` cannot name an instance"
                );
                self.push(
                    Diagnostic::error("for-each-item", message, Some(for_each.position))
                        .with_help(format!("an item is made of letters, digits, `_`, `.` and `-` (a `.` not first, last or doubled): it names the instance `{id}[item]` and is read as `steps.{id}.items.<item>`")),
                );
            } else if !seen.insert(item.clone()) {
                let message = format!("`for_each` item `{item}`{from} of step `{id}` is repeated");
                self.push(
                    Diagnostic::error("for-each-repeated", message, Some(for_each.position))
                        .with_help("each item names one instance: give each once"),
                );
            } else {
                good.push(item);
            }
        }
        good
    }
}

impl Validator<'_> {
    /// The items of a `for_each` that is not a list written in the runbook: the value of the
    /// `list` var it reads (a module's input is the caller's value), or the one item
    /// `ANY_ITEM` while that value is unknown. `None` when it is not a list var, reported.
    fn list_var_items(
        &mut self,
        step: &RawStep,
        rewrites: &[Rewrite],
        module_call: bool,
    ) -> Option<Vec<String>> {
        let for_each = step.for_each.as_ref()?;
        let id = &step.id.value;
        let written = for_each.value.0.clone().unwrap_or_default();
        let text = super::module_rewrite::rewrite(&written, rewrites);
        let text = text.trim();
        if !text.contains("{{") && text != written.trim() {
            // A module input given a literal: its items, comma-separated.
            return Some(parse_list(text).unwrap_or_default());
        }
        let name = ONE_VAR
            .as_ref()
            .and_then(|one| one.captures(text))
            .and_then(|captures| captures.get(1))
            .map(|name| name.as_str().to_string());
        let Some(name) = name else {
            let message = format!(
                "`for_each` of step `{id}` is neither a list nor one `{{{{vars.<list var>}}}}`"
            );
            self.push(
                Diagnostic::error("for-each-list", message, Some(for_each.position)).with_help(
                    "write the items (`for_each: [api, worker]`) or read a `type: list` var (`for_each: \"{{vars.services}}\"`)",
                ),
            );
            return None;
        };
        let Some(var) = self.vars.iter().find(|var| var.name == name) else {
            let shown = name.trim_start_matches(super::module_rewrite::UNDECLARED);
            let message = format!("`for_each` of step `{id}` reads unknown variable `{shown}`");
            let help = suggest(shown, self.vars.iter().map(|var| var.name.as_str()))
                .map(|best| format!("did you mean `vars.{best}`?"));
            self.push(
                Diagnostic::error("for-each-var", message, Some(for_each.position))
                    .with_optional_help(help),
            );
            return None;
        };
        if !var.list {
            let message =
                format!("`for_each` of step `{id}` reads `vars.{name}`, which is not a list");
            self.push(
                Diagnostic::error("for-each-var", message, Some(for_each.position)).with_help(
                    format!("declare it `type: list` (`{name}: {{ type: list }}`) or give it a list default"),
                ),
            );
            return None;
        }
        let items = self.list_values.get(&name).cloned();
        self.for_each_vars.push(ForEachVar {
            step: id.clone(),
            var: name,
            decided: items.is_some(),
            module_call,
        });
        Some(items.unwrap_or_else(|| vec![ANY_ITEM.to_string()]))
    }

    /// The runbook with each step that has `for_each` replaced by its instances, and `needs`
    /// naming it by all of them; `None` when no step has `for_each`.
    pub(super) fn expand_for_each(&mut self, raw: &RawRunbook) -> Option<RawRunbook> {
        // Left empty when no step has `for_each`: every lookup reads a missing entry as `None`.
        self.instances = Vec::new();
        if raw.steps.value.iter().all(|step| step.for_each.is_none()) {
            return None;
        }
        self.for_each_lists(raw);
        let mut lists = std::mem::take(&mut self.for_each_by_index);
        let mut expanded = raw.clone();
        let mut steps = Vec::new();
        let mut instances = Vec::new();
        let mut rewrites = Vec::new();
        let mut sources = Vec::new();
        let mut effects = Vec::new();
        let mut groups: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for (step, effects) in raw.steps.value.iter().zip(&self.step_effects) {
            if let Some(call) = &effects.for_each_call {
                groups
                    .entry(call.clone())
                    .or_default()
                    .push(step.id.value.clone());
            }
        }
        for (index, (step, items)) in raw.steps.value.iter().zip(lists.iter_mut()).enumerate() {
            let step_rewrites = self.step_rewrites.get(index).cloned().unwrap_or_default();
            let step_source = self.step_sources.get(index).cloned().flatten();
            let step_effects = self.step_effects.get(index).cloned().unwrap_or_default();
            let Some(items) = items.take() else {
                steps.push(step.clone());
                instances.push(None);
                rewrites.push(step_rewrites);
                sources.push(step_source);
                effects.push(step_effects);
                continue;
            };
            self.for_each.insert(step.id.value.clone(), items.clone());
            // The steps of one module call with `for_each`: an instance reads and needs the
            // others' instance of the same item.
            let group = match &step_effects.for_each_call {
                Some(call) => groups.get(call).cloned().unwrap_or_default(),
                None => vec![step.id.value.clone()],
            };
            for (index, item) in items.into_iter().enumerate() {
                let instance = Instance {
                    step: step.id.value.clone(),
                    item,
                    index,
                    group: group.clone(),
                };
                let mut copy = step.clone();
                copy.for_each = None;
                copy.id.value = instance.id();
                // A name that reads `item` says which instance it is; another gets the item.
                if let Some(name) = &mut copy.name
                    && instance.substitute(&name.value) == name.value
                {
                    name.value = format!("{} [{}]", name.value, instance.item);
                }
                steps.push(copy);
                instances.push(Some(instance));
                rewrites.push(step_rewrites.clone());
                sources.push(step_source.clone());
                effects.push(step_effects.clone());
            }
        }
        // A step with no instance (its list is empty) passes its own needs on: a step that
        // needs it still waits for what it needed.
        let empty: std::collections::HashMap<&str, &[Spanned<String>]> = raw
            .steps
            .value
            .iter()
            .filter(|step| self.for_each.get(&step.id.value).is_some_and(Vec::is_empty))
            .map(|step| {
                let needs = step
                    .needs
                    .as_ref()
                    .map_or(&[][..], |needs| &needs.value[..]);
                (step.id.value.as_str(), needs)
            })
            .collect();
        for (step, instance) in steps.iter_mut().zip(&instances) {
            if let Some(needs) = &mut step.needs {
                let mut seen = HashSet::new();
                needs.value = needs
                    .value
                    .iter()
                    .flat_map(|need| through_empty(need, &empty))
                    .filter(|need| seen.insert(need.value.clone()))
                    .collect();
                needs.value = needs
                    .value
                    .iter()
                    .flat_map(|need| match self.for_each.get(&need.value) {
                        // Within one module call with `for_each`: the same item's instance.
                        _ if instance
                            .as_ref()
                            .is_some_and(|instance| instance.group.contains(&need.value)) =>
                        {
                            let item = instance.as_ref().map_or("", |instance| &instance.item);
                            vec![crate::document::Spanned::new(
                                format!("{}[{item}]", need.value),
                                need.position,
                            )]
                        }
                        Some(items) => items
                            .iter()
                            .map(|item| {
                                crate::document::Spanned::new(
                                    format!("{}[{item}]", need.value),
                                    need.position,
                                )
                            })
                            .collect(),
                        None => vec![need.clone()],
                    })
                    .collect();
            }
        }
        expanded.steps.value = steps;
        self.instances = instances;
        self.step_rewrites = rewrites;
        self.step_sources = sources;
        self.step_effects = effects;
        Some(expanded)
    }
}

/// `need`, or when it names a step with no instance, what that step needed (and so on), each
/// at the place `need` was written.
fn through_empty(
    need: &Spanned<String>,
    empty: &std::collections::HashMap<&str, &[Spanned<String>]>,
) -> Vec<Spanned<String>> {
    let mut found = Vec::new();
    let mut pending = vec![need.value.clone()];
    let mut visited = HashSet::new();
    while let Some(id) = pending.pop() {
        if !visited.insert(id.clone()) {
            continue;
        }
        match empty.get(id.as_str()) {
            Some(needs) => pending.extend(needs.iter().rev().map(|need| need.value.clone())),
            None => found.push(Spanned::new(id, need.position)),
        }
    }
    found
}
