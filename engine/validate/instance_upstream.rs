//! Whether one host's instance of a step is upstream of another host's instance of a step
//! that reads it (`steps.<id>.hosts.<host>.outputs.<key>` inside a step with `on`, SPEC §12),
//! under every `--limit`: the dependency rule (steps on the same hosts: each host's instance
//! needs only the same host's; otherwise every instance of the step named) applied to the
//! hosts a limit keeping only the two hosts leaves, the fewest edges any limit gives.

use crate::model::StepGraph;

/// The steps' placements, as the validator knows them: whether each has `on`, and its hosts.
pub(super) struct Placements<'a> {
    pub graph: &'a StepGraph,
    pub steps_on: &'a [bool],
    pub step_hosts: &'a [Vec<String>],
}

impl Placements<'_> {
    /// Whether `target@target_host` has ended before `reader@reader_host` starts, whatever
    /// hosts `--limit` selects (among those keeping both).
    pub fn is_upstream(
        &self,
        target: usize,
        target_host: &str,
        reader: usize,
        reader_host: &str,
    ) -> bool {
        if !self.graph.is_upstream(target, reader) {
            return false;
        }
        let kept = [reader_host, target_host];
        // Each step's hosts under that limit; `None` for a step without `on`.
        let hosts = |step: usize| -> Option<Vec<&str>> {
            self.steps_on.get(step).copied().unwrap_or(false).then(|| {
                self.step_hosts
                    .get(step)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(String::as_str)
                    .filter(|host| kept.contains(host))
                    .collect()
            })
        };
        let mut seen: Vec<(usize, Option<&str>)> = vec![(reader, Some(reader_host))];
        let mut next = 0;
        while let Some(&(step, host)) = seen.get(next) {
            next += 1;
            if step == target && host == Some(target_host) {
                return true;
            }
            let mine = hosts(step);
            for &need in self.graph.needs(step) {
                // Only steps on the way to `target` matter.
                if need != target && !self.graph.is_upstream(target, need) {
                    continue;
                }
                let theirs = hosts(need);
                let reached: Vec<Option<&str>> = match (&mine, &theirs) {
                    (Some(mine), Some(theirs)) if mine == theirs => vec![host],
                    (_, Some(theirs)) => theirs.iter().map(|&host| Some(host)).collect(),
                    (_, None) => vec![None],
                };
                for host in reached {
                    if !seen.contains(&(need, host)) {
                        seen.push((need, host));
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(lists: &[&[&str]]) -> Vec<Vec<String>> {
        lists
            .iter()
            .map(|list| list.iter().map(|host| (*host).to_string()).collect())
            .collect()
    }

    #[test]
    fn a_limit_that_makes_the_hosts_the_same_is_taken_into_account() {
        // `release` on web1, web2; `check` on web1..web3 needs it.
        let graph = StepGraph::new(vec![vec![], vec![0]]);
        let step_hosts = hosts(&[&["web1", "web2"], &["web1", "web2", "web3"]]);
        let placements = Placements {
            graph: &graph,
            steps_on: &[true, true],
            step_hosts: &step_hosts,
        };
        // web3 is not a host of `release`: the hosts always differ, every instance waits.
        assert!(placements.is_upstream(0, "web1", 1, "web3"));
        assert!(placements.is_upstream(0, "web1", 1, "web1"));
        // `--limit web1,web2` makes them the same: check@web2 waits for release@web2 only.
        assert!(!placements.is_upstream(0, "web1", 1, "web2"));
    }

    #[test]
    fn a_step_on_the_engines_machine_between_makes_every_instance_wait() {
        let graph = StepGraph::new(vec![vec![], vec![0], vec![1]]);
        let step_hosts = hosts(&[&["web1", "web2"], &[], &["web1", "web2"]]);
        let placements = Placements {
            graph: &graph,
            steps_on: &[true, false, true],
            step_hosts: &step_hosts,
        };
        assert!(placements.is_upstream(0, "web2", 2, "web1"));
        let direct = StepGraph::new(vec![vec![], vec![], vec![0]]);
        let placements = Placements {
            graph: &direct,
            ..placements
        };
        assert!(!placements.is_upstream(0, "web2", 2, "web1"));
        assert!(placements.is_upstream(0, "web1", 2, "web1"));
    }
}
