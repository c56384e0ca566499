//! The DAG as a picture: Mermaid and Graphviz DOT, with rollback edges drawn dashed so they
//! stand apart from `needs` edges.

use std::fmt::Write;

use super::model::{Plan, StepKind};

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

/// One node of the drawing: a step, or an instance `id@host` of a step with `on`.
struct Node<'a> {
    /// A graph identifier: the step id, or the instance id with `@` and `.` spelt out.
    key: String,
    label: String,
    approve: bool,
    compensated: bool,
    /// `(group, batch)` of a rolled-out instance.
    batch: Option<(&'a str, usize)>,
}

/// `deploy[api]@web1.internal` as an identifier both formats accept:
/// `deploy_item_api_at_web1_dot_internal` (Mermaid reads `[` as the start of a label).
fn node_key(id: &str) -> String {
    id.replace('@', "_at_")
        .replace('.', "_dot_")
        .replace('[', "_item_")
        .replace(']', "")
}

/// Nodes and `needs` edges (as node keys) when some step runs on hosts: one node per
/// instance; an edge from a step with instances reaches each of them.
fn instance_graph(plan: &Plan) -> (Vec<Node<'_>>, Vec<(String, String)>) {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut nodes_of_step: std::collections::HashMap<&str, Vec<String>> =
        std::collections::HashMap::new();
    let group_of_step = |step: &str| {
        plan.rollouts
            .iter()
            .find(|rollout| rollout.steps.iter().any(|id| id.as_str() == step))
            .map(|rollout| rollout.group.as_str())
    };
    for step in &plan.steps {
        match &step.instances {
            Some(instances) => {
                let group = group_of_step(step.id.as_str());
                for instance in instances {
                    nodes.push(Node {
                        key: node_key(&instance.id),
                        // A name rendered for the host says which host it is.
                        label: match &instance.name {
                            Some(name) => name.clone(),
                            None => format!("{}@{}", step.name, instance.host),
                        },
                        approve: false,
                        compensated: step.rollback.is_some(),
                        batch: group.zip(instance.batch),
                    });
                    for need in &instance.needs {
                        edges.push((node_key(need), node_key(&instance.id)));
                    }
                }
                nodes_of_step.insert(
                    step.id.as_str(),
                    instances
                        .iter()
                        .map(|instance| node_key(&instance.id))
                        .collect(),
                );
            }
            None => {
                nodes.push(Node {
                    key: node_key(&step.id),
                    label: step.name.to_string(),
                    approve: step.kind == StepKind::Approve,
                    compensated: step.rollback.is_some(),
                    batch: None,
                });
                nodes_of_step.insert(step.id.as_str(), vec![node_key(&step.id)]);
            }
        }
    }
    for step in plan.steps.iter().filter(|step| step.instances.is_none()) {
        for need in &step.needs {
            for from in nodes_of_step.get(need.as_str()).into_iter().flatten() {
                edges.push((from.clone(), node_key(&step.id)));
            }
        }
    }
    (nodes, edges)
}

/// Undo edges between instances: both ends compensated.
fn instance_undo_edges<'a>(
    nodes: &[Node<'_>],
    edges: &'a [(String, String)],
) -> Vec<(&'a str, &'a str)> {
    let compensated: std::collections::HashSet<&str> = nodes
        .iter()
        .filter(|node| node.compensated)
        .map(|node| node.key.as_str())
        .collect();
    edges
        .iter()
        .filter(|(from, to)| {
            compensated.contains(from.as_str()) && compensated.contains(to.as_str())
        })
        .map(|(from, to)| (to.as_str(), from.as_str()))
        .collect()
}

/// The batches of the drawing's rolled-out instances, in order: `(group, batch)`.
fn batches_of<'a>(nodes: &[Node<'a>]) -> Vec<(&'a str, usize)> {
    let mut batches: Vec<(&str, usize)> = nodes.iter().filter_map(|node| node.batch).collect();
    batches.sort_unstable();
    batches.dedup();
    batches
}

/// Mermaid with one node per instance, each rollout batch a subgraph.
fn instances_to_mermaid(plan: &Plan) -> String {
    let (nodes, edges) = instance_graph(plan);
    let mut out = String::from("flowchart TD\n");
    let shape = |node: &Node<'_>| {
        if node.approve {
            format!("{{\"{}\"}}", label(&node.label))
        } else {
            format!("[\"{}\"]", label(&node.label))
        }
    };
    for node in nodes.iter().filter(|node| node.batch.is_none()) {
        let _ = writeln!(out, "  {}{}", node.key, shape(node));
    }
    for (group, batch) in batches_of(&nodes) {
        let _ = writeln!(
            out,
            "  subgraph {}_batch_{batch}[\"{} batch {batch}\"]",
            node_key(group),
            label(group)
        );
        for node in nodes
            .iter()
            .filter(|node| node.batch == Some((group, batch)))
        {
            let _ = writeln!(out, "    {}{}", node.key, shape(node));
        }
        out.push_str("  end\n");
    }
    for (from, to) in &edges {
        let _ = writeln!(out, "  {from} --> {to}");
    }
    for (from, to) in instance_undo_edges(&nodes, &edges) {
        let _ = writeln!(out, "  {from} -. undo .-> {to}");
    }
    for node in nodes.iter().filter(|node| node.compensated) {
        let _ = writeln!(out, "  class {} compensated", node.key);
    }
    out.push_str("  classDef compensated stroke-dasharray: 4 2\n");
    out
}

/// DOT with one node per instance, each rollout batch a cluster.
fn instances_to_dot(plan: &Plan) -> String {
    let (nodes, edges) = instance_graph(plan);
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        label(&plan.runbook.name)
    );
    let write_node = |out: &mut String, indent: &str, node: &Node<'_>| {
        let shape = if node.approve { ", shape=diamond" } else { "" };
        let style = if node.compensated {
            ", peripheries=2"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{indent}\"{}\" [label=\"{}\"{shape}{style}];",
            node.key,
            label(&node.label)
        );
    };
    for node in nodes.iter().filter(|node| node.batch.is_none()) {
        write_node(&mut out, "  ", node);
    }
    for (group, batch) in batches_of(&nodes) {
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{}_batch_{batch}\" {{\n    label=\"{} batch {batch}\";",
            node_key(group),
            label(group)
        );
        for node in nodes
            .iter()
            .filter(|node| node.batch == Some((group, batch)))
        {
            write_node(&mut out, "    ", node);
        }
        out.push_str("  }\n");
    }
    for (from, to) in &edges {
        let _ = writeln!(out, "  \"{from}\" -> \"{to}\";");
    }
    for (from, to) in instance_undo_edges(&nodes, &edges) {
        let _ = writeln!(
            out,
            "  \"{from}\" -> \"{to}\" [style=dashed, color=red, constraint=false, label=\"undo\"];"
        );
    }
    out.push_str("}\n");
    out
}

fn has_instances(plan: &Plan) -> bool {
    plan.steps.iter().any(|step| step.instances.is_some())
}

/// Mermaid `flowchart`: solid arrows for `needs`, dashed `undo` arrows for the order of
/// compensations (a dependent's undo runs before its need's). Steps on hosts are drawn as
/// their instances, each rollout batch a subgraph.
pub fn to_mermaid(plan: &Plan) -> String {
    if has_instances(plan) {
        return instances_to_mermaid(plan);
    }
    let mut out = String::from("flowchart TD\n");
    for step in &plan.steps {
        let shape = match step.kind {
            StepKind::Approve => format!("{{\"{}\"}}", label(&step.name)),
            _ => format!("[\"{}\"]", label(&step.name)),
        };
        let _ = writeln!(out, "  {}{shape}", node_key(&step.id));
    }
    for step in &plan.steps {
        for need in &step.needs {
            let _ = writeln!(out, "  {} --> {}", node_key(need), node_key(&step.id));
        }
    }
    for (step, need) in undo_edges(plan) {
        let _ = writeln!(out, "  {} -. undo .-> {}", node_key(step), node_key(need));
    }
    for step in plan.steps.iter().filter(|step| step.rollback.is_some()) {
        let _ = writeln!(out, "  class {} compensated", node_key(&step.id));
    }
    out.push_str("  classDef compensated stroke-dasharray: 4 2\n");
    out
}

/// Graphviz DOT: `needs` edges solid, rollback edges dashed red and not used for layout.
/// Steps on hosts are drawn as their instances, each rollout batch a cluster.
pub fn to_dot(plan: &Plan) -> String {
    if has_instances(plan) {
        return instances_to_dot(plan);
    }
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        label(&plan.runbook.name)
    );
    for step in &plan.steps {
        let shape = if step.kind == StepKind::Approve {
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
