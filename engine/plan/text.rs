//! The plan as text for a person: variables, waves of steps with their rendered commands and
//! probes, and the rollback each failure would take.

use std::collections::HashSet;
use std::fmt::Write;

use super::model::{
    Plan, PlanFailure, PlanProbe, PlanRollout, PlanStep, SharedText, StepKind, WhenSkipped,
};

const LISTED_IN_TEXT: usize = 10;

/// Writes the plan for the terminal to `out` as it goes: for a 10,000-step plan the text is
/// close to a megabyte, which need not be held while the plan and the runbook are.
pub fn write_text<W: Write>(out: &mut W, plan: &Plan) {
    let _ = writeln!(
        out,
        "plan for runbook `{}` ({})",
        plan.runbook.name, plan.runbook.file
    );
    if let Some(description) = &plan.runbook.description {
        write_block(out, "  ", description.trim());
    }
    let _ = writeln!(
        out,
        "  {} steps in {} waves, at most {} at once{}",
        plan.steps.len(),
        plan.waves.len(),
        plan.concurrency,
        plan.timeout
            .as_ref()
            .map(|timeout| format!(", run timeout {timeout}"))
            .unwrap_or_default()
    );
    if !plan.vars.is_empty() {
        let _ = writeln!(out, "\nvariables");
        let width = plan
            .vars
            .iter()
            .map(|var| var.name.len())
            .max()
            .unwrap_or(0);
        for var in &plan.vars {
            let value = var.value.as_deref().unwrap_or("(unset)");
            write_block(
                out,
                &format!("  {:width$} = ", var.name),
                &format!(
                    "{value}  ({}{})",
                    var.source,
                    if var.secret { ", secret" } else { "" }
                ),
            );
        }
    }
    if !plan.env.is_empty() {
        let _ = writeln!(out, "\nenvironment");
        for entry in &plan.env {
            write_block(out, &format!("  {}=", entry.name), &entry.value);
        }
    }
    if !plan.hosts.is_empty() {
        let limit = if plan.limit.is_empty() {
            String::new()
        } else {
            format!(" (--limit {})", plan.limit.join(","))
        };
        let _ = writeln!(out, "\nhosts{limit}");
        let width = plan
            .hosts
            .iter()
            .map(|host| host.name.len())
            .max()
            .unwrap_or(0);
        for host in &plan.hosts {
            let mut address = host.address.clone();
            if let Some(user) = &host.user {
                address = format!("{user}@{address}");
            }
            if let Some(port) = host.port {
                address = format!("{address}:{port}");
            }
            let groups = if host.groups.is_empty() {
                String::new()
            } else {
                format!("  groups: {}", host.groups.join(", "))
            };
            let _ = writeln!(out, "  {:width$}  {address}{groups}", host.name);
        }
    }
    if !plan.hooks.on_start.is_empty() {
        let _ = writeln!(out, "\non start");
        for hook in &plan.hooks.on_start {
            write_block(out, "    ", hook);
        }
    }
    // Steps the plan already knows are skipped: an `if` false now, or a need skipped. Waves
    // come in order, so a need is decided before the steps that need it.
    let mut skipped: HashSet<&str> = HashSet::new();
    for (index, wave) in plan.waves.iter().enumerate() {
        let parallel = if wave.len() > 1 { " (in parallel)" } else { "" };
        let _ = writeln!(out, "\nwave {}{parallel}", index + 1);
        for step in plan.steps.iter().filter(|step| step.wave == index + 1) {
            let certain = step
                .skipped_with
                .as_ref()
                .is_some_and(|need| skipped.contains(need.as_str()));
            if certain
                || step
                    .condition
                    .as_ref()
                    .is_some_and(|condition| condition.decision == "skipped")
            {
                skipped.insert(step.id.as_str());
            }
            write_step(out, step, certain);
        }
    }
    for rollout in &plan.rollouts {
        write_rollout(out, rollout);
    }
    let _ = writeln!(out, "\nrollback");
    if plan.rollback.order.is_empty() {
        let _ = writeln!(out, "  no step has a rollback");
    } else {
        let order: Vec<String> = plan
            .rollback
            .order
            .iter()
            .map(|wave| wave.join(" + "))
            .collect();
        let _ = writeln!(out, "  full rollback order: {}", order.join(" -> "));
    }
    if !plan.rollback.instances.is_empty() {
        let _ = writeln!(
            out,
            "  by instance (each rollout's last batch first): {}",
            list(&plan.rollback.instances, plan.rollback.instances.len())
        );
    }
    if !plan.rollback.without_rollback.is_empty() {
        let _ = writeln!(
            out,
            "  passed over (no rollback): {}",
            list(
                &plan.rollback.without_rollback,
                plan.rollback.without_rollback.len()
            )
        );
    }
    if !plan.rollback.irreversible.is_empty() {
        let _ = writeln!(
            out,
            "  cannot be undone (irreversible): {}",
            list(
                &plan.rollback.irreversible,
                plan.rollback.irreversible.len()
            )
        );
    }
    for probe in &plan.rollback.verify {
        write_probe(out, "  then verify ", probe);
    }
    let _ = writeln!(out, "\nif a step fails");
    for step in &plan.steps {
        match &step.instances {
            Some(instances) if instances.is_empty() => {
                let _ = writeln!(out, "  {}: no host selected, it does not run", step.id);
            }
            Some(instances) => {
                for instance in instances {
                    write_failure(out, &instance.id, step.allow_failure, &instance.on_failure);
                }
            }
            None => write_failure(out, &step.id, step.allow_failure, &step.on_failure),
        }
    }
    for (label, hooks) in [
        ("on success", &plan.hooks.on_success),
        ("on failure", &plan.hooks.on_failure),
        ("always", &plan.hooks.always),
    ] {
        if !hooks.is_empty() {
            let _ = writeln!(out, "\n{label}");
            for hook in hooks {
                write_block(out, "    ", hook);
            }
        }
    }
}

/// One row of "if a step fails".
fn write_failure(
    out: &mut impl Write,
    id: &SharedText,
    allow_failure: bool,
    failure: &PlanFailure,
) {
    if allow_failure {
        let _ = writeln!(out, "  {id}: allowed to fail, nothing is compensated");
        return;
    }
    let mut order = Vec::new();
    if failure.compensates_itself {
        order.push(id.clone());
    }
    order.extend(failure.compensates.iter().cloned());
    let total = failure.compensates_total + usize::from(failure.compensates_itself);
    let what = if total == 0 {
        "nothing to compensate".to_string()
    } else {
        format!("compensate {}", list(&order, total))
    };
    let pivot = failure
        .stopped_by_pivot
        .as_ref()
        .map(|pivot| format!(" (stops at pivot `{pivot}`: exit 4)"))
        .unwrap_or_default();
    let _ = writeln!(out, "  {id}: {what}{pivot}");
}

/// A rollout: its batches with their hosts, and what a failure in each undoes.
fn write_rollout(out: &mut impl Write, rollout: &PlanRollout) {
    let pause = rollout
        .pause
        .as_ref()
        .map(|pause| format!(", pause {pause} between batches"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\nrollout of group `{}`: {} hosts in {} batches, max_failed {} ({} host{} tolerated){pause}",
        rollout.group,
        rollout.hosts.len(),
        rollout.batches.len(),
        rollout.max_failed,
        rollout.tolerated,
        if rollout.tolerated == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "  steps: {}", rollout.steps.join(", "));
    for batch in &rollout.batches {
        let _ = writeln!(out, "  batch {}: {}", batch.number, batch.hosts.join(", "));
    }
    for probe in &rollout.verify {
        write_probe(
            out,
            "  after each batch, on each of its hosts, verify ",
            probe,
        );
    }
    if rollout.tolerated > 0 {
        let _ = writeln!(
            out,
            "  a host that fails within max_failed has its own instances undone alone and takes no further part; beyond it:"
        );
    }
    for batch in &rollout.batches {
        let failure = &batch.on_failure;
        let hosts: Vec<String> = failure
            .hosts
            .iter()
            .map(|hosts| hosts.join(" + "))
            .collect();
        let before = if failure.before_rollout.is_empty() {
            String::new()
        } else {
            format!(
                ", then before the rollout: {}",
                list(&failure.before_rollout, failure.before_rollout.len())
            )
        };
        let _ = writeln!(
            out,
            "  if batch {} fails: undo {}{before}",
            batch.number,
            hosts.join(", then ")
        );
    }
}

fn list(items: &[SharedText], total: usize) -> String {
    let shown: Vec<&str> = items
        .iter()
        .take(LISTED_IN_TEXT)
        .map(SharedText::as_str)
        .collect();
    let more = total.saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// One step; `skipped` says a need of it is already known to be skipped.
fn write_step(out: &mut impl Write, step: &PlanStep, skipped: bool) {
    let name = if step.name != step.id {
        format!("  {}", step.name)
    } else {
        String::new()
    };
    let needs = if step.needs.is_empty() {
        String::new()
    } else {
        format!("  (needs {})", step.needs.join(", "))
    };
    let mut flags = Vec::new();
    if step.pivot {
        flags.push("pivot".to_string());
    }
    if step.irreversible {
        flags.push("irreversible".to_string());
    }
    if step.allow_failure {
        flags.push("allow_failure".to_string());
    }
    if step.after_skipped == WhenSkipped::Run {
        flags.push("after_skipped: run".to_string());
    }
    if !step.idempotent {
        flags.push("not idempotent".to_string());
    }
    match (&step.timeout, step.on_timeout) {
        (Some(timeout), Some(answer)) => flags.push(format!("timeout {timeout}, then {answer}")),
        (Some(timeout), None) => flags.push(format!("timeout {timeout}")),
        (None, _) => {}
    }
    if step.retry.attempts > 1 {
        flags.push(format!(
            "{} attempts, {} apart",
            step.retry.attempts, step.retry.delay
        ));
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!("  [{}]", flags.join(", "))
    };
    let _ = writeln!(out, "  {}{name}{needs}{flags}", step.id);
    match (&step.written_at, &step.called_at) {
        (Some(written_at), Some(call)) => {
            let _ = writeln!(out, "    written at {written_at}, from {call}");
        }
        (Some(written_at), None) => {
            let _ = writeln!(out, "    written at {written_at}");
        }
        _ => {}
    }
    if let Some(instances) = &step.instances {
        let ids: Vec<&str> = instances
            .iter()
            .map(|instance| instance.id.as_str())
            .collect();
        let shown = if ids.is_empty() {
            "no host selected: it does not run".to_string()
        } else {
            ids.join(", ")
        };
        let _ = writeln!(out, "    on {}: {shown}", step.on.join(", "));
    }
    match &step.skipped_with {
        Some(need) if skipped => {
            let _ = writeln!(out, "    skipped: it needs `{need}`, which is skipped");
        }
        Some(need) => {
            let _ = writeln!(out, "    skipped when `{need}` is skipped");
        }
        None => {}
    }
    if let Some(condition) = step
        .condition
        .as_ref()
        .filter(|condition| condition.decided_at_run_time)
    {
        let _ = writeln!(out, "    if decided at run time: {}", condition.template);
    } else if let Some(condition) = &step.condition {
        let rendered = condition
            .rendered
            .as_ref()
            .map(|rendered| format!(" = {:?}", rendered.trim()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    if {}{rendered}: {}",
            condition.template, condition.decision
        );
    }
    match (step.kind, &step.command) {
        (StepKind::Approve, Some(question)) => write_block(out, "    approve: ", question),
        (_, Some(command)) => write_block(out, "    $ ", command),
        _ => {}
    }
    // Per host, the lines its values change (the JSON plan has each command in full).
    let general: Vec<&str> = step
        .command
        .as_deref()
        .unwrap_or_default()
        .lines()
        .collect();
    for instance in step.instances.iter().flatten() {
        if let Some(name) = &instance.name {
            let _ = writeln!(out, "    @{} name: {name}", instance.host);
        }
        if let Some(command) = &instance.command {
            let changed: Vec<&str> = command
                .lines()
                .enumerate()
                .filter(|(index, line)| general.get(*index) != Some(line))
                .map(|(_, line)| line.trim())
                .collect();
            let _ = writeln!(out, "    @{} $ {}", instance.host, changed.join(" … "));
        }
    }
    for entry in &step.env {
        write_block(out, &format!("    env {}=", entry.name), &entry.value);
    }
    for probe in &step.verify {
        write_probe(out, "    verify ", probe);
    }
    if let Some(rollback) = &step.rollback {
        let condition = if rollback.only_if_succeeded {
            " (only if it succeeded)"
        } else {
            ""
        };
        let _ = writeln!(out, "    rollback{condition}:");
        write_block(out, "      $ ", &rollback.command);
        for entry in &rollback.env {
            write_block(out, &format!("      env {}=", entry.name), &entry.value);
        }
        for probe in &rollback.verify {
            write_probe(out, "      verify ", probe);
        }
    }
}

fn write_probe(out: &mut impl Write, prefix: &str, probe: &PlanProbe) {
    let target = probe.target.trim();
    let target = if target.contains('\n') {
        format!("{} …", target.lines().next().unwrap_or_default())
    } else {
        target.to_string()
    };
    let _ = writeln!(
        out,
        "{prefix}`{}`: {} {target} -> {} ({})",
        probe.name,
        probe.kind,
        probe.expect.join(", "),
        probe.timing
    );
}

/// Writes a possibly multi-line value (a script, a message, a variable), the first line
/// after `prefix`, the rest aligned under it: never flush left.
fn write_block(out: &mut impl Write, prefix: &str, text: &str) {
    let indent = " ".repeat(prefix.chars().count());
    let text = text.trim_end();
    if text.is_empty() {
        let _ = writeln!(out, "{}", prefix.trim_end());
        return;
    }
    for (index, line) in text.lines().enumerate() {
        let lead = if index == 0 { prefix } else { indent.as_str() };
        let _ = writeln!(out, "{lead}{line}");
    }
}
