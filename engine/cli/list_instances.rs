//! `for_each` over a `list` var (SPEC §13): a runbook is validated with such a step checked
//! once; once the var's value is known (resolved for `plan`/`run`/`validate --var`, or
//! recorded by the run for `resume`/`rollback`) it is validated again with the items, so the
//! plan and the run see one instance per item.

use crate::model::{Runbook, parse_list};
use crate::validate::ListValues;

/// The items of each list var a `for_each` reads, from `(name, value)` pairs; a var with no
/// value has no items.
pub(super) fn list_values<'a>(
    runbook: &Runbook,
    values: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> ListValues {
    let values: Vec<(&str, Option<&str>)> = values.collect();
    runbook
        .for_each_vars
        .iter()
        .map(|each| {
            let items = values
                .iter()
                .find(|(name, _)| *name == each.var)
                .and_then(|(_, value)| *value)
                .map(|value| parse_list(value).unwrap_or_default())
                .unwrap_or_default();
            (each.var.clone(), items)
        })
        .collect()
}

/// The note `validate` prints for each step whose instances wait for a var's value.
pub(super) fn undecided_notes(runbook: &Runbook) -> Vec<String> {
    runbook
        .for_each_vars
        .iter()
        .filter(|each| !each.decided)
        .map(|each| {
            format!(
                "step `{}` runs once per item of `vars.{}`: checked once, its instances are decided by the var's value (`--var {}=a,b` or `plan` shows them)",
                each.step, each.var, each.var
            )
        })
        .collect()
}
