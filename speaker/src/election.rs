//! Which node announces an external IP: a pure function every speaker computes on its own.
//!
//! For one IP, start from the alive members and remove every node that
//! - no matching L2Advertisement selects (its `nodeSelectors`; an advertisement without
//!   selectors selects every node),
//! - carries the `node.kubernetes.io/exclude-from-external-load-balancers` label (any value),
//! - has the condition `NetworkUnavailable=True`,
//! - is unhealthy for the IP's service (the caller decides what that means: a ready local
//!   endpoint for `externalTrafficPolicy: Local`, kube-proxy's healthz for `Cluster`).
//!
//! The rest are ranked by `sha256(node + "#" + ip)` (rendezvous hashing), highest first. The IP
//! is written in its canonical text form (RFC 5952 for IPv6). Because each node's score
//! depends only on its own name and the IP, a node that leaves moves only the IPs it held, and
//! a node that joins takes only the IPs it now ranks first for.
//!
//! The runtime fills the [`Candidate`]s from the Node objects, membership and health checks;
//! nothing here talks to the API.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ironlb_crds::selector::{Selector, any_matches};
use sha2::{Digest, Sha256};

/// Nodes with this label (whatever its value) never announce, as for cloud load balancers.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// One node as the election sees it, for one service.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// The node's `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// Membership currently sees this node's speaker.
    pub alive: bool,
    /// The node can serve the IP's service (see the module docs).
    pub healthy: bool,
}

/// Why one node may not announce an IP. Filters apply in this order and a node is reported
/// under the first one it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exclusion {
    NotAlive,
    NotSelected,
    ExcludedByLabel,
    NetworkUnavailable,
    Unhealthy,
}

/// The nodes removed by each filter, for an explanation when nobody is left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tally {
    pub alive: usize,
    pub not_selected: usize,
    pub excluded_by_label: usize,
    pub network_unavailable: usize,
    pub unhealthy: usize,
}

impl Tally {
    fn count(&mut self, exclusion: Exclusion) {
        match exclusion {
            Exclusion::NotAlive => {}
            Exclusion::NotSelected => self.not_selected += 1,
            Exclusion::ExcludedByLabel => self.excluded_by_label += 1,
            Exclusion::NetworkUnavailable => self.network_unavailable += 1,
            Exclusion::Unhealthy => self.unhealthy += 1,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} alive", self.alive)?;
        let parts = [
            (self.not_selected, "not selected by any L2Advertisement"),
            (
                self.excluded_by_label,
                "labelled exclude-from-external-load-balancers",
            ),
            (self.network_unavailable, "with NetworkUnavailable"),
            (self.unhealthy, "unhealthy for this service"),
        ];
        let mut separator = ": ";
        for (count, what) in parts {
            if count > 0 {
                write!(f, "{separator}{count} {what}")?;
                separator = ", ";
            }
        }
        Ok(())
    }
}

/// Why an IP has no announcing node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NoWinner {
    #[error("no L2Advertisement matches this IP")]
    NoAdvertisement,
    #[error("no speaker is alive")]
    NoAliveMember,
    #[error("no eligible node among {0}")]
    AllRemoved(Tally),
}

/// A node's rank for an IP; higher wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Score([u8; 32]);

/// `sha256(node + "#" + ip)`.
pub fn score(node: &str, ip: IpAddr) -> Score {
    score_text(node, &ip.to_string())
}

/// [`score`] with the IP already in text form, so that an election formats it once.
fn score_text(node: &str, ip: &str) -> Score {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(b"#");
    hasher.update(ip.as_bytes());
    Score(hasher.finalize().into())
}

/// Why `candidate` may not announce, or `None` when it may. `advertisements` holds the
/// `nodeSelectors` of each L2Advertisement that matches the IP; a node must be selected by at
/// least one of them.
pub fn exclusion(candidate: &Candidate<'_>, advertisements: &[&[Selector]]) -> Option<Exclusion> {
    if !candidate.alive {
        Some(Exclusion::NotAlive)
    } else if !advertisements
        .iter()
        .any(|selectors| any_matches(selectors, candidate.labels))
    {
        Some(Exclusion::NotSelected)
    } else if candidate.labels.contains_key(EXCLUDE_LABEL) {
        Some(Exclusion::ExcludedByLabel)
    } else if candidate.network_unavailable {
        Some(Exclusion::NetworkUnavailable)
    } else if !candidate.healthy {
        Some(Exclusion::Unhealthy)
    } else {
        None
    }
}

/// The eligible nodes for `ip`, best first.
pub fn rank<'a>(
    ip: IpAddr,
    advertisements: &[&[Selector]],
    candidates: &[Candidate<'a>],
) -> Vec<&'a str> {
    let ip = ip.to_string();
    let mut ranked: Vec<(Score, &'a str)> = candidates
        .iter()
        .filter(|c| exclusion(c, advertisements).is_none())
        .map(|c| (score_text(c.name, &ip), c.name))
        .collect();
    // Names break ties only for duplicate entries of one node, which share a score.
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup_by_key(|(_, name)| *name);
    ranked.into_iter().map(|(_, name)| name).collect()
}

/// The node that announces `ip`, or why there is none.
pub fn elect<'a>(
    ip: IpAddr,
    advertisements: &[&[Selector]],
    candidates: &[Candidate<'a>],
) -> Result<&'a str, NoWinner> {
    if advertisements.is_empty() {
        return Err(NoWinner::NoAdvertisement);
    }
    let ip = ip.to_string();
    let mut tally = Tally::default();
    let mut best: Option<(Score, &'a str)> = None;
    for candidate in candidates {
        if candidate.alive {
            tally.alive += 1;
        }
        match exclusion(candidate, advertisements) {
            Some(why) => tally.count(why),
            None => {
                let entry = (score_text(candidate.name, &ip), candidate.name);
                if best.is_none_or(|b| entry > b) {
                    best = Some(entry);
                }
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name),
        None if tally.alive == 0 => Err(NoWinner::NoAliveMember),
        None => Err(NoWinner::AllRemoved(tally)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Owned node data that tests borrow [`Candidate`]s from.
    #[derive(Clone, Debug)]
    struct Node {
        name: String,
        labels: BTreeMap<String, String>,
        network_unavailable: bool,
        alive: bool,
        healthy: bool,
    }

    fn mk_node(name: &str) -> Node {
        Node {
            name: name.to_string(),
            labels: BTreeMap::from([("kubernetes.io/hostname".to_string(), name.to_string())]),
            network_unavailable: false,
            alive: true,
            healthy: true,
        }
    }

    fn mk_nodes(count: usize) -> Vec<Node> {
        (1..=count).map(|i| mk_node(&format!("node{i}"))).collect()
    }

    fn candidates(nodes: &[Node]) -> Vec<Candidate<'_>> {
        nodes
            .iter()
            .map(|n| Candidate {
                name: &n.name,
                labels: &n.labels,
                network_unavailable: n.network_unavailable,
                alive: n.alive,
                healthy: n.healthy,
            })
            .collect()
    }

    fn mk_selector(key: &str, value: &str) -> Selector {
        Selector::from_label_selector(&LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
            match_expressions: None,
        })
        .unwrap()
    }

    const EVERY_NODE: &[&[Selector]] = &[&[]];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn score_is_sha256_of_node_hash_ip() {
        // Reference digests computed with Python's hashlib.
        let cases = [
            (
                "node1",
                "198.51.100.10",
                "ea2d0ecde80c446e3d12aa2a2306c95b912c063256ff42fa61c6f5dcda1192d7",
            ),
            (
                "node1",
                "2001:db8::10",
                "039565c79d3912be7329488022cd751d5ff26f0013d0fd439461db33e07435a0",
            ),
        ];
        for (node, addr, digest) in cases {
            let hex: String = score(node, ip(addr))
                .0
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(hex, digest, "{node}#{addr}");
        }
    }

    #[test]
    fn highest_score_wins() {
        // From the reference digests: node1 ea.., node2 bd.., node3 7f.. for 198.51.100.10.
        let nodes = mk_nodes(3);
        let all = candidates(&nodes);
        let vip = ip("198.51.100.10");
        assert_eq!(elect(vip, EVERY_NODE, &all), Ok("node1"));
        assert_eq!(rank(vip, EVERY_NODE, &all), ["node1", "node2", "node3"]);
    }

    #[test]
    fn each_filter_removes_a_node() {
        let vip = ip("198.51.100.10");
        let base = mk_nodes(3);
        let zone_a_selectors = [mk_selector("zone", "a")];
        let zone_a: &[&[Selector]] = &[&zone_a_selectors];
        let mut in_zone = base.clone();
        for n in &mut in_zone[1..] {
            n.labels.insert("zone".into(), "a".into());
        }
        // (what, nodes where node1 fails the filter, advertisements, expected exclusion)
        type Case<'a> = (&'a str, Vec<Node>, &'a [&'a [Selector]], Exclusion);
        let filters: Vec<Case<'_>> = vec![
            (
                "not alive",
                {
                    let mut n = base.clone();
                    n[0].alive = false;
                    n
                },
                EVERY_NODE,
                Exclusion::NotAlive,
            ),
            ("not selected", in_zone, zone_a, Exclusion::NotSelected),
            (
                "exclusion label, empty value",
                {
                    let mut n = base.clone();
                    n[0].labels.insert(EXCLUDE_LABEL.into(), String::new());
                    n
                },
                EVERY_NODE,
                Exclusion::ExcludedByLabel,
            ),
            (
                "network unavailable",
                {
                    let mut n = base.clone();
                    n[0].network_unavailable = true;
                    n
                },
                EVERY_NODE,
                Exclusion::NetworkUnavailable,
            ),
            (
                "unhealthy",
                {
                    let mut n = base.clone();
                    n[0].healthy = false;
                    n
                },
                EVERY_NODE,
                Exclusion::Unhealthy,
            ),
        ];
        for (name, nodes, ads, expected) in filters {
            let all = candidates(&nodes);
            assert_eq!(exclusion(&all[0], ads), Some(expected), "{name}");
            assert_eq!(exclusion(&all[1], ads), None, "{name}");
            // node1 would have won; without it node2 does.
            assert_eq!(elect(vip, ads, &all), Ok("node2"), "{name}");
            assert_eq!(rank(vip, ads, &all), ["node2", "node3"], "{name}");
        }
    }

    #[test]
    fn any_matching_advertisement_selects() {
        let mut nodes = mk_nodes(2);
        nodes[0].labels.insert("zone".into(), "a".into());
        nodes[1].labels.insert("zone".into(), "b".into());
        let all = candidates(&nodes);
        let a: &[Selector] = &[mk_selector("zone", "a")];
        let b: &[Selector] = &[mk_selector("zone", "b")];
        let either: &[Selector] = &[mk_selector("zone", "a"), mk_selector("zone", "b")];
        assert_eq!(exclusion(&all[1], &[a]), Some(Exclusion::NotSelected));
        assert_eq!(exclusion(&all[1], &[a, b]), None);
        assert_eq!(exclusion(&all[1], &[either]), None);
        assert_eq!(exclusion(&all[1], &[a, &[]]), None);
    }

    #[test]
    fn reasons_when_nobody_wins() {
        let vip = ip("198.51.100.10");
        let mut nodes = mk_nodes(4);
        let all = candidates(&nodes);
        assert_eq!(elect(vip, &[], &all), Err(NoWinner::NoAdvertisement));
        assert_eq!(elect(vip, EVERY_NODE, &[]), Err(NoWinner::NoAliveMember));

        for n in &mut nodes {
            n.alive = false;
        }
        assert_eq!(
            elect(vip, EVERY_NODE, &candidates(&nodes)),
            Err(NoWinner::NoAliveMember)
        );

        for n in &mut nodes {
            n.alive = true;
        }
        nodes[0].labels.insert(EXCLUDE_LABEL.into(), "true".into());
        nodes[1].network_unavailable = true;
        nodes[2].healthy = false;
        nodes[3].healthy = false;
        // An unalive node is not counted among the alive ones.
        let mut with_dead = nodes.clone();
        with_dead.push(Node {
            alive: false,
            ..mk_node("node5")
        });
        let result = elect(vip, EVERY_NODE, &candidates(&with_dead));
        let expected = Tally {
            alive: 4,
            not_selected: 0,
            excluded_by_label: 1,
            network_unavailable: 1,
            unhealthy: 2,
        };
        assert_eq!(result, Err(NoWinner::AllRemoved(expected)));
        assert_eq!(
            result.unwrap_err().to_string(),
            "no eligible node among 4 alive: 1 labelled exclude-from-external-load-balancers, \
             1 with NetworkUnavailable, 2 unhealthy for this service"
        );

        let zone: &[Selector] = &[mk_selector("zone", "nowhere")];
        assert_eq!(
            elect(vip, &[zone], &candidates(&mk_nodes(2))),
            Err(NoWinner::AllRemoved(Tally {
                alive: 2,
                not_selected: 2,
                ..Tally::default()
            }))
        );
    }

    #[test]
    fn duplicate_entries_do_not_duplicate_the_ranking() {
        let nodes = [mk_node("node1"), mk_node("node1"), mk_node("node2")];
        let all = candidates(&nodes);
        assert_eq!(
            rank(ip("198.51.100.10"), EVERY_NODE, &all),
            ["node1", "node2"]
        );
    }

    #[test]
    fn ips_spread_evenly_over_nodes() {
        const NODES: usize = 5;
        const IPS: u32 = 10_000;
        let nodes = mk_nodes(NODES);
        let all = candidates(&nodes);
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        for i in 0..IPS {
            // Half IPv4 from 198.51.100.0/24 onwards, half IPv6 from 2001:db8::/64.
            let vip = if i % 2 == 0 {
                IpAddr::from(Ipv4Addr::from(
                    u32::from_be_bytes([198, 51, 100, 0]) + i / 2,
                ))
            } else {
                IpAddr::from(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i / 2)))
            };
            *per_node
                .entry(elect(vip, EVERY_NODE, &all).unwrap())
                .or_default() += 1;
        }
        let mean = f64::from(IPS) / NODES as f64;
        println!("{IPS} IPs over {NODES} nodes (mean {mean}):");
        for (node, count) in &per_node {
            println!(
                "  {node}: {count} ({:+.1}%)",
                (f64::from(*count) / mean - 1.0) * 100.0
            );
        }
        assert_eq!(per_node.len(), NODES);
        // A fair split has a standard deviation of 40 here; 10% is five of them.
        for (node, count) in per_node {
            assert!(
                (f64::from(count) - mean).abs() < mean * 0.10,
                "{node} got {count} of {IPS}"
            );
        }
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Distinct node names, each with its alive and healthy state.
    fn cluster() -> impl Strategy<Value = Vec<(String, bool, bool)>> {
        prop::collection::btree_set("[a-z][a-z0-9-]{0,12}", 1..12).prop_flat_map(|names| {
            let n = names.len();
            (
                Just(names.into_iter().collect::<Vec<_>>()),
                prop::collection::vec(prop::bool::weighted(0.85), n),
                prop::collection::vec(prop::bool::weighted(0.85), n),
            )
                .prop_map(|(names, alive, healthy)| {
                    names
                        .into_iter()
                        .zip(alive)
                        .zip(healthy)
                        .map(|((name, alive), healthy)| (name, alive, healthy))
                        .collect()
                })
        })
    }

    fn as_candidates<'a>(
        nodes: &'a [(String, bool, bool)],
        labels: &'a BTreeMap<String, String>,
    ) -> Vec<Candidate<'a>> {
        nodes
            .iter()
            .map(|(name, alive, healthy)| Candidate {
                name,
                labels,
                network_unavailable: false,
                alive: *alive,
                healthy: *healthy,
            })
            .collect()
    }

    fn vip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    const EVERY_NODE: &[&[Selector]] = &[&[]];

    proptest! {
        #[test]
        fn input_order_does_not_matter(
            (nodes, shuffled) in cluster().prop_flat_map(|n| (Just(n.clone()), Just(n).prop_shuffle())),
            ip in vip(),
        ) {
            let labels = labels();
            let a = as_candidates(&nodes, &labels);
            let b = as_candidates(&shuffled, &labels);
            prop_assert_eq!(elect(ip, EVERY_NODE, &a), elect(ip, EVERY_NODE, &b));
            prop_assert_eq!(rank(ip, EVERY_NODE, &a), rank(ip, EVERY_NODE, &b));
        }

        #[test]
        fn winner_is_the_head_of_the_ranking(nodes in cluster(), ip in vip()) {
            let labels = labels();
            let all = as_candidates(&nodes, &labels);
            let ranking = rank(ip, EVERY_NODE, &all);
            prop_assert_eq!(elect(ip, EVERY_NODE, &all).ok(), ranking.first().copied());
            for name in &ranking {
                let c = all.iter().find(|c| c.name == *name).unwrap();
                prop_assert!(c.alive && c.healthy);
            }
        }

        #[test]
        fn removing_a_non_winner_never_moves_the_ip(
            nodes in cluster(),
            ip in vip(),
            which in any::<prop::sample::Index>(),
        ) {
            let labels = labels();
            let all = as_candidates(&nodes, &labels);
            let winner = elect(ip, EVERY_NODE, &all);
            let removed = which.index(nodes.len());
            prop_assume!(winner.ok() != Some(nodes[removed].0.as_str()));
            let mut rest = all.clone();
            rest.remove(removed);
            let after = elect(ip, EVERY_NODE, &rest);
            match winner {
                Ok(w) => prop_assert_eq!(after, Ok(w)),
                Err(_) => prop_assert!(after.is_err()),
            }
        }

        #[test]
        fn removing_the_winner_moves_the_ip_to_the_runner_up(nodes in cluster(), ip in vip()) {
            let labels = labels();
            let all = as_candidates(&nodes, &labels);
            let ranking = rank(ip, EVERY_NODE, &all);
            prop_assume!(!ranking.is_empty());
            let rest: Vec<Candidate<'_>> =
                all.iter().filter(|c| c.name != ranking[0]).copied().collect();
            prop_assert_eq!(elect(ip, EVERY_NODE, &rest).ok(), ranking.get(1).copied());
            // The winner failing its health check has the same effect as leaving.
            let unhealthy: Vec<Candidate<'_>> = all
                .iter()
                .map(|c| Candidate { healthy: c.healthy && c.name != ranking[0], ..*c })
                .collect();
            prop_assert_eq!(elect(ip, EVERY_NODE, &unhealthy).ok(), ranking.get(1).copied());
        }

        #[test]
        fn a_joining_node_takes_the_ip_only_if_it_ranks_first(
            nodes in cluster(),
            newcomer in "[a-z][a-z0-9-]{0,12}",
            ip in vip(),
        ) {
            prop_assume!(!nodes.iter().any(|(n, _, _)| *n == newcomer));
            let labels = labels();
            let all = as_candidates(&nodes, &labels);
            let before = elect(ip, EVERY_NODE, &all);
            let mut grown = all.clone();
            grown.push(Candidate { name: &newcomer, labels: &labels, network_unavailable: false, alive: true, healthy: true });
            let after = elect(ip, EVERY_NODE, &grown).unwrap();
            if after != newcomer {
                prop_assert_eq!(before, Ok(after));
            }
        }
    }
}
