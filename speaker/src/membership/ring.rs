//! Who monitors whom: the members that are alive are placed on a ring by the hash of their name,
//! and each member probes the next `monitors` members after itself.
//!
//! Every member is therefore probed by `monitors` members in every probe interval, whatever the
//! cluster size: the per-member load and the time to the first failed probe stay flat as the
//! cluster grows, and the detection time has a hard bound rather than SWIM's expected value under
//! random target selection. Hashing the names keeps nodes with neighbouring names (often the same
//! rack) from monitoring only each other.

use sha2::{Digest, Sha256};

/// The position of `name` on the ring.
pub fn ring_position(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The members `me` monitors: the first `monitors` of `live` that follow `me` on the ring.
/// `live` may or may not contain `me`; it must not contain duplicates.
pub fn monitor_targets<'a>(
    me: &str,
    live: impl IntoIterator<Item = &'a str>,
    monitors: usize,
) -> Vec<&'a str> {
    monitor_targets_placed(
        (ring_position(me), me),
        live.into_iter().map(|n| (ring_position(n), n)),
        monitors,
    )
}

/// [`monitor_targets`] with ring positions already computed (the protocol caches them).
pub fn monitor_targets_placed<'a>(
    me: (u64, &str),
    live: impl IntoIterator<Item = (u64, &'a str)>,
    monitors: usize,
) -> Vec<&'a str> {
    let mine = me;
    let mut others: Vec<(u64, &str)> = live.into_iter().filter(|(_, n)| *n != me.1).collect();
    others.sort_unstable();
    // Members after me in ring order, then wrap around to the ones before me.
    let split = others.partition_point(|p| *p < mine);
    others[split..]
        .iter()
        .chain(&others[..split])
        .take(monitors)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn small_clusters_monitor_everyone_else() {
        let all = names(3);
        let t = monitor_targets("node-0", all.iter().map(String::as_str), 3);
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&"node-0"));
        assert!(monitor_targets("node-0", ["node-0"], 3).is_empty());
    }

    #[test]
    fn targets_follow_ring_order() {
        let all = names(10);
        let mut ring: Vec<&str> = all.iter().map(String::as_str).collect();
        ring.sort_by_key(|n| (ring_position(n), *n));
        for (i, me) in ring.iter().enumerate() {
            let want: Vec<&str> = (1..=3).map(|k| ring[(i + k) % ring.len()]).collect();
            assert_eq!(monitor_targets(me, ring.iter().copied(), 3), want);
        }
    }

    #[test]
    fn a_member_that_is_not_live_still_gets_targets() {
        // A member that others consider dead keeps probing its would-be successors.
        let all = names(5);
        let t = monitor_targets("outsider", all.iter().map(String::as_str), 2);
        assert_eq!(t.len(), 2);
    }

    proptest! {
        /// With identical views, every member is monitored by exactly `k` others.
        #[test]
        fn everyone_is_monitored_k_times(n in 2usize..60, k in 1usize..5) {
            let all = names(n);
            let mut watchers: HashMap<&str, usize> = HashMap::new();
            for me in &all {
                for t in monitor_targets(me, all.iter().map(String::as_str), k) {
                    *watchers.entry(t).or_default() += 1;
                }
            }
            let want = k.min(n - 1);
            for name in &all {
                prop_assert_eq!(watchers.get(name.as_str()).copied().unwrap_or(0), want);
            }
        }
    }
}
