//! Batch arithmetic of a rollout (SPEC §12): sizes are host counts or shares of the group,
//! a share rounded up, every batch at least one host, the last size repeating until the
//! group is done.

use std::ops::Range;

use crate::model::HostCount;

/// The batches of a group of `group_size` hosts, as ranges of positions in the group (its
/// hosts in inventory order). `sizes` empty means one host at a time.
pub fn batches(group_size: usize, sizes: &[HostCount]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut next = 0;
    while start < group_size {
        let size = sizes
            .get(next.min(sizes.len().saturating_sub(1)))
            .map_or(1, |size| size.of(group_size))
            .max(1);
        next += 1;
        let end = start.saturating_add(size).min(group_size);
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// How many hosts of a group of `group_size` may fail: a share rounded down, so that
/// `"10%"` of 5 hosts tolerates none rather than one in two.
pub fn failure_budget(group_size: usize, budget: HostCount) -> usize {
    match budget {
        HostCount::Hosts(count) => count,
        HostCount::Percent(percent) => group_size * percent as usize / 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(group_size: usize, sizes: &[HostCount]) -> Vec<usize> {
        batches(group_size, sizes)
            .into_iter()
            .map(|range| range.len())
            .collect()
    }

    #[test]
    fn one_host_is_one_batch() {
        assert_eq!(sizes(1, &[HostCount::Percent(50)]), vec![1]);
        assert_eq!(sizes(1, &[HostCount::Hosts(3)]), vec![1]);
        assert_eq!(sizes(1, &[]), vec![1]);
    }

    #[test]
    fn shares_round_up() {
        assert_eq!(sizes(3, &[HostCount::Percent(50)]), vec![2, 1]);
        assert_eq!(sizes(4, &[HostCount::Percent(50)]), vec![2, 2]);
        assert_eq!(sizes(3, &[HostCount::Percent(1)]), vec![1, 1, 1]);
        assert_eq!(sizes(3, &[HostCount::Percent(100)]), vec![3]);
    }

    #[test]
    fn the_last_size_repeats() {
        let canary = [HostCount::Hosts(1), HostCount::Percent(25)];
        assert_eq!(sizes(10, &canary), vec![1, 3, 3, 3]);
        assert_eq!(
            sizes(4, &[HostCount::Hosts(1), HostCount::Percent(50)]),
            vec![1, 2, 1]
        );
        assert_eq!(sizes(5, &[HostCount::Hosts(2)]), vec![2, 2, 1]);
    }

    #[test]
    fn batches_cover_the_group_in_order() {
        let ranges = batches(
            7,
            &[
                HostCount::Hosts(1),
                HostCount::Hosts(2),
                HostCount::Percent(40),
            ],
        );
        assert_eq!(ranges, vec![0..1, 1..3, 3..6, 6..7]);
        assert!(batches(0, &[HostCount::Hosts(1)]).is_empty());
    }

    #[test]
    fn failure_budgets_round_down() {
        assert_eq!(failure_budget(5, HostCount::Percent(10)), 0);
        assert_eq!(failure_budget(10, HostCount::Percent(25)), 2);
        assert_eq!(failure_budget(10, HostCount::Hosts(1)), 1);
    }
}
