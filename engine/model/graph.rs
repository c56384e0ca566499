//! The step DAG: cycle detection with full paths, topological waves, and who is upstream of
//! whom (template references and rollback order both need it).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Steps and their `needs` as a graph. Built only once the graph is known to be acyclic.
#[derive(Debug, Clone)]
pub struct StepGraph {
    needs: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    /// Wave of each step: 0 for steps with no needs, else one more than its deepest need.
    waves: Vec<usize>,
    /// Steps in an order where every step comes after its needs (file order among equals).
    order: Vec<usize>,
    /// Transitive needs of each step as a bitset over step indices (`words` words a step,
    /// one buffer), computed the first time a question needs them: n² bits (12.5 MB for
    /// 10,000 steps), which `plan` of a runbook that reads no other step's outputs and has no
    /// compensations never asks for.
    ancestors: std::sync::OnceLock<Vec<u64>>,
}

/// Every cycle among the steps, each as a path of step indices that starts and ends at the
/// same step (`a -> b -> c -> a`).
pub fn find_cycles(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut graph = DiGraph::<usize, ()>::with_capacity(needs.len(), 0);
    let nodes: Vec<NodeIndex> = (0..needs.len())
        .map(|index| graph.add_node(index))
        .collect();
    for (step, step_needs) in needs.iter().enumerate() {
        for &need in step_needs {
            graph.add_edge(nodes[need], nodes[step], ());
        }
    }
    let mut cycles = Vec::new();
    for component in tarjan_scc(&graph) {
        let members: Vec<usize> = component.iter().map(|node| graph[*node]).collect();
        let self_loop = members.len() == 1 && needs[members[0]].contains(&members[0]);
        if members.len() > 1 || self_loop {
            cycles.push(cycle_path(needs, &members));
        }
    }
    cycles.sort();
    cycles
}

/// A closed walk through the strongly connected `members`, starting at the first in file
/// order and following dependents, so the path reads in execution order.
fn cycle_path(needs: &[Vec<usize>], members: &[usize]) -> Vec<usize> {
    let start = *members.iter().min().unwrap_or(&0);
    let dependents_of = |step: usize| -> Vec<usize> {
        members
            .iter()
            .copied()
            .filter(|&other| needs[other].contains(&step))
            .collect()
    };
    let mut path = vec![start];
    let mut visited = vec![start];
    let mut frontier = vec![dependents_of(start)];
    while let Some(candidates) = frontier.last_mut() {
        let Some(next) = candidates.pop() else {
            frontier.pop();
            path.pop();
            continue;
        };
        if next == start {
            path.push(start);
            return path;
        }
        if !visited.contains(&next) {
            visited.push(next);
            path.push(next);
            frontier.push(dependents_of(next));
        }
    }
    let mut fallback = members.to_vec();
    fallback.push(start);
    fallback
}

impl StepGraph {
    /// Builds the graph of an acyclic set of `needs` (check `find_cycles` first).
    pub fn new(needs: Vec<Vec<usize>>) -> StepGraph {
        let count = needs.len();
        let mut dependents = vec![Vec::new(); count];
        for (step, step_needs) in needs.iter().enumerate() {
            for &need in step_needs {
                dependents[need].push(step);
            }
        }
        let mut waves = vec![0; count];
        let mut done = vec![false; count];
        let mut order = Vec::with_capacity(count);
        // Kahn's algorithm, taking the lowest index among ready steps to keep file order.
        let mut remaining: Vec<usize> = needs.iter().map(Vec::len).collect();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..count).filter(|&step| remaining[step] == 0).collect();
        while let Some(step) = ready.pop_first() {
            done[step] = true;
            order.push(step);
            for &dependent in &dependents[step] {
                waves[dependent] = waves[dependent].max(waves[step] + 1);
                remaining[dependent] -= 1;
                if remaining[dependent] == 0 {
                    ready.insert(dependent);
                }
            }
        }
        debug_assert!(
            done.iter().all(|&finished| finished),
            "StepGraph::new needs an acyclic graph"
        );
        StepGraph {
            needs,
            dependents,
            waves,
            order,
            ancestors: std::sync::OnceLock::new(),
        }
    }

    /// Words of the ancestor bitset of one step.
    fn words(&self) -> usize {
        self.needs.len().div_ceil(64)
    }

    /// The ancestor bitset of `step`, computing every step's the first time.
    fn ancestors(&self, step: usize) -> &[u64] {
        let words = self.words();
        let all = self.ancestors.get_or_init(|| {
            let mut all = vec![0u64; words * self.needs.len()];
            let mut bits = vec![0u64; words];
            // Topological order: a step's needs have their final bits before it.
            for &step in &self.order {
                bits.fill(0);
                for &need in &self.needs[step] {
                    bits[need / 64] |= 1 << (need % 64);
                    let need_bits = &all[need * words..(need + 1) * words];
                    for (word, ancestor_word) in bits.iter_mut().zip(need_bits) {
                        *word |= ancestor_word;
                    }
                }
                all[step * words..(step + 1) * words].copy_from_slice(&bits);
            }
            all
        });
        &all[step * words..(step + 1) * words]
    }

    pub fn len(&self) -> usize {
        self.needs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.needs.is_empty()
    }

    pub fn needs(&self, step: usize) -> &[usize] {
        &self.needs[step]
    }

    pub fn dependents(&self, step: usize) -> &[usize] {
        &self.dependents[step]
    }

    pub fn wave(&self, step: usize) -> usize {
        self.waves[step]
    }

    /// Every step after all of its needs; file order among steps that are ready together.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// Steps grouped by wave: each wave can run in parallel once the previous ones finished.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let count = self.waves.iter().max().map_or(0, |deepest| deepest + 1);
        let mut waves = vec![Vec::new(); count];
        for (step, &wave) in self.waves.iter().enumerate() {
            waves[wave].push(step);
        }
        waves
    }

    /// Whether `ancestor` is among the transitive needs of `step`.
    pub fn is_upstream(&self, ancestor: usize, step: usize) -> bool {
        self.ancestors(step)[ancestor / 64] & (1 << (ancestor % 64)) != 0
    }

    /// The transitive needs of `step`, in index order.
    pub fn upstream(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.ancestors(step)
            .iter()
            .enumerate()
            .flat_map(|(word_index, &word)| {
                (0..64)
                    .filter(move |bit| word & (1 << bit) != 0)
                    .map(move |bit| word_index * 64 + bit)
            })
    }

    pub fn upstream_count(&self, step: usize) -> usize {
        self.ancestors(step)
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_as_a_closed_path() {
        // 0 is independent; 1 needs 3, 2 needs 1, 3 needs 2.
        let needs = vec![vec![], vec![3], vec![1], vec![2]];
        assert_eq!(find_cycles(&needs), vec![vec![1, 2, 3, 1]]);
    }

    #[test]
    fn finds_a_self_dependency() {
        assert_eq!(find_cycles(&[vec![0]]), vec![vec![0, 0]]);
    }

    #[test]
    fn waves_order_and_upstream_of_a_diamond() {
        let graph = StepGraph::new(vec![vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(graph.waves(), vec![vec![0], vec![1, 2], vec![3]]);
        assert_eq!(graph.topological_order(), &[0, 1, 2, 3]);
        assert!(graph.is_upstream(0, 3));
        assert!(!graph.is_upstream(1, 2));
        assert_eq!(graph.upstream(3).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn upstream_follows_needs_written_below_a_step_and_past_one_word() {
        // 0 needs 1 (written below it), 2 needs 0; then a chain of 70 steps from 2, so the
        // bitsets span two words.
        let mut needs = vec![vec![1], vec![], vec![0]];
        needs.extend((3..73).map(|step| vec![step - 1]));
        let graph = StepGraph::new(needs);
        assert_eq!(graph.upstream(2).collect::<Vec<_>>(), vec![0, 1]);
        assert!(graph.is_upstream(1, 72));
        assert!(graph.is_upstream(70, 72));
        assert!(!graph.is_upstream(72, 70));
        assert_eq!(graph.upstream_count(72), 72);
        assert_eq!(graph.upstream_count(1), 0);
    }
}
