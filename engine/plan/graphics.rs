//! The DAG as a picture: Mermaid and Graphviz DOT, with rollback edges drawn dashed so they
//! stand apart from `needs` edges.

use std::fmt::Write;

use super::model::Plan;

fn label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "'")
}

/// Rollback order edges `(dependent, need)`: the dependent's compensation runs before its
/// need's. Only pairs where both steps have a compensation.
fn undo_edges(plan: &Plan) -> Vec<(&str, &str)> {
    let with_rollback: std::collections::HashSet<&str> = plan
        .steps
        .iter()
        .filter(|step| step.rollback.is_some())
        .map(|step| step.id.as_str())
        .collect();
    plan.steps
        .iter()
        .filter(|step| with_rollback.contains(step.id.as_str()))
        .flat_map(|step| {
            step.needs
                .iter()
                .map(move |need| (step.id.as_str(), need.as_str()))
        })
        .filter(|(_, need)| with_rollback.contains(need))
        .collect()
}

/// Mermaid `flowchart`: solid arrows for `needs`, dashed `undo` arrows for the order of
/// compensations (a dependent's undo runs before its need's).
pub fn to_mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for step in &plan.steps {
        let shape = match step.kind {
            "approve" => format!("{{\"{}\"}}", label(&step.name)),
            _ => format!("[\"{}\"]", label(&step.name)),
        };
        let _ = writeln!(out, "  {}{shape}", step.id);
    }
    for step in &plan.steps {
        for need in &step.needs {
            let _ = writeln!(out, "  {need} --> {}", step.id);
        }
    }
    for (step, need) in undo_edges(plan) {
        let _ = writeln!(out, "  {step} -. undo .-> {need}");
    }
    for step in plan.steps.iter().filter(|step| step.rollback.is_some()) {
        let _ = writeln!(out, "  class {} compensated", step.id);
    }
    out.push_str("  classDef compensated stroke-dasharray: 4 2\n");
    out
}

/// Graphviz DOT: `needs` edges solid, rollback edges dashed red and not used for layout.
pub fn to_dot(plan: &Plan) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        label(&plan.runbook.name)
    );
    for step in &plan.steps {
        let shape = if step.kind == "approve" {
            ", shape=diamond"
        } else {
            ""
        };
        let style = if step.rollback.is_some() {
            ", peripheries=2"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\"{shape}{style}];",
            step.id,
            label(&step.name)
        );
    }
    for step in &plan.steps {
        for need in &step.needs {
            let _ = writeln!(out, "  \"{need}\" -> \"{}\";", step.id);
        }
    }
    for (step, need) in undo_edges(plan) {
        let _ = writeln!(
            out,
            "  \"{step}\" -> \"{need}\" [style=dashed, color=red, constraint=false, label=\"undo\"];"
        );
    }
    out.push_str("}\n");
    out
}
