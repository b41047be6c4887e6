//! The invariant behind "never two MACs answering": fed the same objects and the same
//! membership view, the speakers of a cluster never both own an IP, and some node owns it
//! exactly when an eligible node exists.

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
struct NodeSetup {
    alive: bool,
    excluded: bool,
    network_unavailable: bool,
    selected: bool,
    ready_endpoint: bool,
}

fn node_setup() -> impl Strategy<Value = NodeSetup> {
    (
        proptest::bool::weighted(0.8),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.8),
        any::<bool>(),
    )
        .prop_map(
            |(alive, excluded, network_unavailable, selected, ready_endpoint)| NodeSetup {
                alive,
                excluded,
                network_unavailable,
                selected,
                ready_endpoint,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn at_most_one_owner_per_ip(
        nodes in proptest::collection::vec(node_setup(), 1..6),
        local in any::<bool>(),
        ip_suffixes in proptest::collection::btree_set(1u8..255, 1..6),
    ) {
        let names: Vec<String> = (1..=nodes.len()).map(|i| format!("node{i}")).collect();
        let alive_set: BTreeSet<String> = names
            .iter()
            .zip(&nodes)
            .filter(|(_, n)| n.alive)
            .map(|(name, _)| name.clone())
            .collect();
        let vips: Vec<String> = ip_suffixes.iter().map(|s| format!("198.51.100.{s}")).collect();
        let vip_refs: Vec<&str> = vips.iter().map(String::as_str).collect();
        let policy = if local { "Local" } else { "Cluster" };
        let service = mk_service("web", &vip_refs, json!({"externalTrafficPolicy": policy}));
        let endpoints: Vec<(&str, Option<bool>)> = names
            .iter()
            .zip(&nodes)
            .map(|(name, n)| (name.as_str(), Some(n.ready_endpoint)))
            .collect();
        let slice = mk_slice("web-1", "web", &endpoints);

        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut winners: BTreeMap<String, Option<String>> = BTreeMap::new();
        for me in &names {
            let mut state = State::new(config(me));
            for (i, (name, n)) in names.iter().zip(&nodes).enumerate() {
                let mut labels = vec![];
                if n.excluded {
                    labels.push(("node.kubernetes.io/exclude-from-external-load-balancers", ""));
                }
                if n.selected {
                    labels.push(("l2", "on"));
                }
                let address = format!("192.0.2.{}", 11 + i);
                let mut node = mk_node(name, &[&address], &labels);
                if n.network_unavailable {
                    node = with_condition(node, "NetworkUnavailable", "True");
                }
                state.apply_node(&node);
            }
            state.apply_pool(&mk_pool("main", &["198.51.100.0/24"], "2024-01-01T00:00:00Z"));
            state.apply_advertisement(&mk_ad(
                "main",
                json!({"nodeSelectors": [{"matchLabels": {"l2": "on"}}]}),
            ));
            state.apply_slice(&slice);
            state.apply_service(&service);
            state.set_default_interfaces(BTreeMap::from([(Family::V4, "eth0".to_string())]));
            state.set_synced();
            // A node that is not alive is not running a member, so it owns nothing.
            let phase = if alive_set.contains(me) { Phase::Member } else { Phase::Joining };
            state.set_phase(phase);
            state.set_membership(alive_set.clone(), true);
            state.plan();
            for vip in &vips {
                let decision = state.decision(ip(vip)).unwrap();
                if decision.mine {
                    owners.entry(vip.clone()).or_default().push(me.clone());
                }
                let winner = decision.winner.clone().ok();
                let agreed = winners.entry(vip.clone()).or_insert_with(|| winner.clone());
                prop_assert_eq!(&*agreed, &winner, "all nodes agree on the winner");
            }
        }
        for vip in &vips {
            let eligible: Vec<&str> = names
                .iter()
                .zip(&nodes)
                .filter(|(_, n)| {
                    n.alive && n.selected && !n.excluded && !n.network_unavailable
                        && (!local || n.ready_endpoint)
                })
                .map(|(name, _)| name.as_str())
                .collect();
            let got = owners.get(vip).cloned().unwrap_or_default();
            prop_assert!(got.len() <= 1, "{vip} owned by {got:?}");
            if eligible.is_empty() {
                prop_assert!(got.is_empty());
            } else {
                prop_assert_eq!(got, vec![expected_winner(vip, &eligible)]);
            }
        }
    }
}
