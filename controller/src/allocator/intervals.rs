//! A set of `u128` values stored as disjoint inclusive intervals.
//!
//! This is the free list of one address family of one pool. It costs one map node per maximal
//! run of free values, so a fresh /64 is a single node, exactly like a fresh /24, and every
//! operation is O(log n) in the number of runs.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent inclusive intervals `start -> end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    runs: BTreeMap<u128, u128>,
    /// Number of values in the set, saturating at `u128::MAX` (only `::/0` gets there).
    len: u128,
}

impl IntervalSet {
    /// Builds a set from sorted, disjoint, non-adjacent `(start, end)` runs.
    pub(crate) fn from_sorted_runs(runs: &[(u128, u128)]) -> Self {
        let mut set = IntervalSet::default();
        for &(start, end) in runs {
            set.runs.insert(start, end);
            set.len = set.len.saturating_add((end - start).saturating_add(1));
        }
        set
    }

    /// The lowest value in the set.
    pub(crate) fn first(&self) -> Option<u128> {
        self.runs.first_key_value().map(|(&start, _)| start)
    }

    pub(crate) fn contains(&self, value: u128) -> bool {
        self.run_containing(value).is_some()
    }

    /// Removes `value`; returns false when it was not in the set.
    pub(crate) fn remove(&mut self, value: u128) -> bool {
        let Some((start, end)) = self.run_containing(value) else {
            return false;
        };
        self.runs.remove(&start);
        if start < value {
            self.runs.insert(start, value - 1);
        }
        if value < end {
            self.runs.insert(value + 1, end);
        }
        self.len -= 1;
        true
    }

    /// Adds `value`, merging it with its neighbours; returns false when it was already there.
    pub(crate) fn insert(&mut self, value: u128) -> bool {
        if self.contains(value) {
            return false;
        }
        let mut start = value;
        let mut end = value;
        if let Some(before) = value.checked_sub(1)
            && let Some((&left_start, &left_end)) = self.runs.range(..value).next_back()
            && left_end == before
        {
            self.runs.remove(&left_start);
            start = left_start;
        }
        if let Some(after) = value.checked_add(1)
            && let Some(right_end) = self.runs.remove(&after)
        {
            end = right_end;
        }
        self.runs.insert(start, end);
        self.len = self.len.saturating_add(1);
        true
    }

    /// Number of values in the set (saturating at `u128::MAX`).
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// Number of stored runs: the memory cost of the set.
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
    }

    fn run_containing(&self, value: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=value)
            .next_back()
            .filter(|&(_, &end)| value <= end)
            .map(|(&start, &end)| (start, end))
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> Vec<(u128, u128)> {
        self.runs.iter().map(|(&s, &e)| (s, e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn remove_splits_and_insert_merges() {
        let mut set = IntervalSet::from_sorted_runs(&[(10, 20)]);
        assert_eq!(set.len(), 11);
        assert!(set.remove(15));
        assert_eq!(set.runs(), vec![(10, 14), (16, 20)]);
        assert!(!set.remove(15), "already gone");
        assert!(set.remove(10));
        assert!(set.remove(20));
        assert_eq!(set.runs(), vec![(11, 14), (16, 19)]);
        assert_eq!(set.len(), 8);
        assert!(set.insert(15));
        assert_eq!(set.runs(), vec![(11, 19)]);
        assert!(!set.insert(15), "already present");
        assert!(set.insert(10) && set.insert(20));
        assert_eq!(set.runs(), vec![(10, 20)]);
        assert_eq!(set.len(), 11);
    }

    #[test]
    fn first_is_the_lowest_value() {
        let mut set = IntervalSet::from_sorted_runs(&[(5, 6), (9, 9)]);
        assert_eq!(set.first(), Some(5));
        set.remove(5);
        set.remove(6);
        assert_eq!(set.first(), Some(9));
        set.remove(9);
        assert_eq!(set.first(), None);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut set = IntervalSet::from_sorted_runs(&[(0, u128::MAX)]);
        assert_eq!(set.len(), u128::MAX, "the whole space saturates");
        assert!(set.remove(0));
        assert!(set.remove(u128::MAX));
        assert_eq!(set.runs(), vec![(1, u128::MAX - 1)]);
        assert!(set.insert(u128::MAX));
        assert!(set.insert(0));
        assert_eq!(set.runs(), vec![(0, u128::MAX)]);
    }

    #[test]
    fn a_huge_run_is_one_node() {
        let mut set = IntervalSet::from_sorted_runs(&[(1 << 64, (1 << 65) - 1)]);
        for _ in 0..1000 {
            let first = set.first().unwrap();
            set.remove(first);
        }
        assert_eq!(set.run_count(), 1);
        assert_eq!(set.first(), Some((1 << 64) + 1000));
    }

    proptest! {
        /// The set behaves exactly like a plain set of values, and stays in canonical form.
        #[test]
        fn matches_a_plain_set(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut set = IntervalSet::from_sorted_runs(&[(8, 40)]);
            let mut model: BTreeSet<u128> = (8..=40).collect();
            for (insert, value) in ops {
                if insert {
                    prop_assert_eq!(set.insert(value), model.insert(value));
                } else {
                    prop_assert_eq!(set.remove(value), model.remove(&value));
                }
                prop_assert_eq!(set.len(), model.len() as u128);
                prop_assert_eq!(set.first(), model.first().copied());
                let runs = set.runs();
                for pair in runs.windows(2) {
                    // Disjoint and never adjacent: adjacent runs would have been merged.
                    prop_assert!(pair[0].1 + 1 < pair[1].0);
                }
                let expanded: BTreeSet<u128> = runs.iter().flat_map(|&(s, e)| s..=e).collect();
                prop_assert_eq!(&expanded, &model);
            }
            for value in 0..64 {
                prop_assert_eq!(set.contains(value), model.contains(&value));
            }
        }
    }
}
