//! Warnings that keep a runbook honest: hard-coded secrets in scripts, steps that change
//! things without a way back, and `after_skipped: run` where no need can be skipped.

use std::sync::LazyLock;

use regex::Regex;

use super::Diagnostic;
use super::validator::Validator;
use crate::document::{AfterSkipped, RawRunbook, RawStep, Spanned};
use crate::model::Runbook;

/// Patterns of a literal credential in a script. A value that starts with `$` or `{{` is a
/// reference, not a literal, and is not reported.
static HARD_CODED_SECRETS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let rules = [
        (
            r#"(?i)\b[A-Z_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_KEY)=(?:'[^'$]+'|"[^"$]+"|[^\s'"$`{][^\s;]*)"#,
            "a password or token assigned a literal value",
        ),
        (
            r#"(?i)--password[= ](?:'[^'$]+'|"[^"$]+"|[^\s'"$`{-][^\s;]*)"#,
            "a literal `--password`",
        ),
        (
            r#"\bmysql(?:dump|admin)?\b[^\n]*\s-p[^\s'"$`{]\S*"#,
            "a literal mysql `-p` password",
        ),
        (
            r#"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@{$]+:[^@\s/$`{]+@"#,
            "a password in a URL",
        ),
        (
            r#"(?i)\bpassword\s*=\s*(?:'[^'$]+'|"[^"$]+"|[^\s'"$`{;][^\s;'"]*)"#,
            "a literal `password=`",
        ),
        (
            r#"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{6,}=*"#,
            "a literal bearer token",
        ),
        (r#"-----BEGIN [A-Z ]*PRIVATE KEY-----"#, "a private key"),
        (r#"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"#, "a cloud access key"),
    ];
    rules
        .into_iter()
        .filter_map(|(pattern, what)| Regex::new(pattern).ok().map(|regex| (regex, what)))
        .collect()
});

impl Validator<'_> {
    /// Warns on literal credentials in a script, one warning per line.
    pub(super) fn lint_script(&mut self, script: &Spanned<String>, place: &str) {
        let mut found = Vec::new();
        for (line_index, line) in script.value.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            if let Some((found_at, what)) = HARD_CODED_SECRETS
                .iter()
                .find_map(|(regex, what)| regex.find(line).map(|hit| (hit.start(), *what)))
            {
                let offset = script
                    .value
                    .lines()
                    .take(line_index)
                    .map(|line| line.len() + 1)
                    .sum::<usize>()
                    + found_at;
                found.push((offset, what));
            }
        }
        for (offset, what) in found {
            let position = self.locate(script, offset);
            let message = format!("`{place}` looks like it contains a hard-coded secret: {what}");
            self.push(
                Diagnostic::warning("hard-coded-secret", message, Some(position))
                    .with_help("declare a `secret: true` var read from `env:` or `file:`, pass it through `env:`, and use \"$NAME\""),
            );
        }
    }

    /// Warns when a step runs a command but has no compensation.
    pub(super) fn lint_step(&mut self, raw: &RawStep, _place: &str) {
        let changes_things = raw.run.is_some();
        let irreversible = raw.irreversible.as_ref().filter(|flag| flag.value);
        let exempt = raw.pivot.as_ref().is_some_and(|pivot| pivot.value)
            || raw.readonly.as_ref().is_some_and(|readonly| readonly.value)
            || irreversible.is_some();
        if changes_things && raw.rollback.is_none() && !exempt {
            let message = format!(
                "step `{}` runs a command but has no `rollback`",
                raw.id.value
            );
            self.push(
                Diagnostic::warning("no-rollback", message, Some(raw.id.position))
                    .with_help("add a `rollback`, or say `readonly: true` (it changes nothing) or `irreversible: true` (a page)"),
            );
        }
        if let Some(readonly) = &raw.readonly
            && readonly.value
            && raw.rollback.is_some()
        {
            let message = format!("step `{}` is `readonly` but has a `rollback`", raw.id.value);
            self.push(Diagnostic::warning(
                "readonly-rollback",
                message,
                Some(readonly.position),
            ));
        }
        if let Some(irreversible) = irreversible
            && raw.rollback.is_some()
        {
            let message = format!(
                "step `{}` is `irreversible` but has a `rollback`",
                raw.id.value
            );
            self.push(
                Diagnostic::warning(
                    "irreversible-rollback",
                    message,
                    Some(irreversible.position),
                )
                .with_help(
                    "a step whose effect can be undone is not irreversible: drop one of them",
                ),
            );
        }
    }

    /// Warns where `after_skipped: run` can change nothing: none of the step's needs can be
    /// skipped, so it reads as a decision the runbook does not make.
    pub(super) fn lint_after_skipped(&mut self, raw: &RawRunbook, runbook: &Runbook) {
        let skipped_by = runbook.skipped_by();
        for (step, raw_step) in runbook.steps.iter().zip(&raw.steps.value) {
            let Some(after) = raw_step
                .after_skipped
                .as_ref()
                .filter(|after| after.value == AfterSkipped::Run)
            else {
                continue;
            };
            if step.needs.iter().any(|&need| skipped_by[need].is_some()) {
                continue;
            }
            let message = format!(
                "step `{}` has `after_skipped: run`, but none of its needs can be skipped",
                step.id
            );
            self.push(
                Diagnostic::warning("after-skipped-unused", message, Some(after.position))
                    .with_help("a need can be skipped when it, or a step it needs, has an `if`; drop `after_skipped`"),
            );
        }
    }
}
