//! Who owns an IP: the election inputs, gating on sync and membership, exclusions, Local
//! policy health and transitions.

use super::*;
use crate::election::{Exclusion, NoWinner, Tally};

const VIP: &str = "198.51.100.10";

fn with_web(cluster: &mut Cluster) {
    cluster.each(|s| s.apply_service(&mk_service("web", &[VIP], json!({}))));
}

#[test]
fn exactly_the_rendezvous_winner_owns_the_ip() {
    let mut cluster = Cluster::new();
    with_web(&mut cluster);
    let winner = expected_winner(VIP, &NODES);
    assert_eq!(cluster.owners(VIP), [winner.as_str()]);
    for state in cluster.states.values() {
        let decision = state.decision(ip(VIP)).unwrap();
        assert_eq!(decision.winner, Ok(winner.clone()), "every node agrees");
    }
    let owner = &cluster.states[&winner];
    assert_eq!(
        owner.owned_by_interface(),
        BTreeMap::from([("eth0".to_string(), BTreeSet::from([ip(VIP)]))])
    );
}

#[test]
fn takeover_is_reported_with_interfaces_to_answer_on() {
    let mut state = mk_world("node1");
    let winner = expected_winner(VIP, &NODES);
    // Make node1 the only alive member so it must win.
    state.set_membership(alive(&["node1"]), true);
    state.plan();
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    let changes = state.plan();
    assert_eq!(changes.takeovers, [ip(VIP)]);
    assert_eq!(
        changes.gained,
        BTreeSet::from([(ip(VIP), "eth0".to_string())])
    );
    assert!(changes.lost.is_empty());

    // The others come back: node1 keeps the IP only if it ranks first.
    state.set_membership(all_alive(), true);
    let changes = state.plan();
    if winner == "node1" {
        assert!(changes.losses.is_empty());
    } else {
        assert_eq!(changes.losses, [ip(VIP)]);
        assert_eq!(
            changes.lost,
            BTreeSet::from([(ip(VIP), "eth0".to_string())])
        );
        assert!(!state.decision(ip(VIP)).unwrap().mine);
    }
}

#[test]
fn a_dead_owner_is_replaced_by_the_next_in_rank() {
    let mut cluster = Cluster::new();
    with_web(&mut cluster);
    let first = expected_winner(VIP, &NODES);
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != first).collect();
    let second = expected_winner(VIP, &rest);
    let changes = cluster.each(|s| s.set_membership(alive(&rest), true));
    assert_eq!(cluster.owners(VIP), [second.as_str()]);
    assert_eq!(changes[&second].takeovers, [ip(VIP)]);
    // The dead node's own state is not consulted by anyone, but it would give the IP up too
    // if it saw itself out of membership.
    assert_eq!(changes[&first].losses.len(), 1);
}

#[test]
fn nothing_is_owned_before_sync_settlement_or_membership() {
    let service = mk_service("web", &[VIP], json!({}));
    let winner = expected_winner(VIP, &NODES);

    let mut state = State::new(config(&winner));
    for n in NODES {
        state.apply_node(&mk_node(n, &[&node_ip(n)], &[]));
    }
    state.apply_pool(&mk_pool(
        "main",
        &["198.51.100.0/24"],
        "2024-01-01T00:00:00Z",
    ));
    state.apply_advertisement(&mk_ad("main", json!({})));
    state.apply_service(&service);
    state.set_phase(Phase::Member);
    state.set_membership(all_alive(), true);
    let changes = state.plan();
    assert!(changes.takeovers.is_empty(), "not synced");
    assert_eq!(
        state.decision(ip(VIP)).unwrap().winner,
        Err(Unannounced::NotSynced)
    );

    state.set_synced();
    state.set_membership(all_alive(), false);
    assert!(state.plan().takeovers.is_empty(), "not settled");
    assert!(!state.decision(ip(VIP)).unwrap().mine);

    state.set_membership(all_alive(), true);
    assert_eq!(state.plan().takeovers, [ip(VIP)], "synced and settled");

    state.set_phase(Phase::Withdrawn);
    let changes = state.plan();
    assert_eq!(changes.losses, [ip(VIP)], "withdrawing gives everything up");
    assert!(state.owned_by_interface().is_empty());
    state.set_phase(Phase::Member);
    assert!(
        state.plan().takeovers.is_empty(),
        "back as a member, it waits for a settled view again"
    );
}

#[test]
fn exclusions_keep_a_node_from_being_elected() {
    let winner = expected_winner(VIP, &NODES);
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != winner).collect();
    let runner_up = expected_winner(VIP, &others);
    let winner_ip = node_ip(&winner);
    let cases: Vec<(&str, Node)> = vec![
        (
            "exclude label",
            mk_node(
                &winner,
                &[&winner_ip],
                &[(
                    "node.kubernetes.io/exclude-from-external-load-balancers",
                    "",
                )],
            ),
        ),
        (
            "NetworkUnavailable",
            with_condition(
                mk_node(&winner, &[&winner_ip], &[]),
                "NetworkUnavailable",
                "True",
            ),
        ),
    ];
    for (what, node) in cases {
        let mut cluster = Cluster::new();
        with_web(&mut cluster);
        cluster.each(|s| s.apply_node(&node));
        assert_eq!(cluster.owners(VIP), [runner_up.as_str()], "{what}");
    }

    // NetworkUnavailable=False is no exclusion.
    let mut cluster = Cluster::new();
    with_web(&mut cluster);
    let fine = with_condition(
        mk_node(&winner, &[&winner_ip], &[]),
        "NetworkUnavailable",
        "False",
    );
    cluster.each(|s| s.apply_node(&fine));
    assert_eq!(cluster.owners(VIP), [winner.as_str()]);
}

#[test]
fn node_selectors_of_the_advertisement_decide_candidates() {
    let mut cluster = Cluster::new();
    with_web(&mut cluster);
    let chosen = "node3";
    cluster.each(|s| {
        for n in NODES {
            let labels: &[(&str, &str)] = if n == chosen { &[("l2", "yes")] } else { &[] };
            s.apply_node(&mk_node(n, &[&node_ip(n)], labels));
        }
        s.apply_advertisement(&mk_ad(
            "main",
            json!({"nodeSelectors": [{"matchLabels": {"l2": "yes"}}]}),
        ));
    });
    assert_eq!(cluster.owners(VIP), [chosen]);
    let d = cluster.states["node1"].decision(ip(VIP)).unwrap().clone();
    assert_eq!(d.winner, Ok(chosen.to_string()));

    // A second advertisement without selectors admits every node again.
    cluster.each(|s| s.apply_advertisement(&mk_ad("all", json!({}))));
    assert_eq!(cluster.owners(VIP), [expected_winner(VIP, &NODES)]);
}

#[test]
fn nobody_announces_without_pool_or_advertisement() {
    let mut state = mk_world("node1");
    state.apply_service(&mk_service("elsewhere", &["203.0.113.50"], json!({})));
    state.plan();
    assert_eq!(
        state.decision(ip("203.0.113.50")).unwrap().winner,
        Err(Unannounced::NoPool)
    );

    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.apply_advertisement(&mk_ad("main", json!({"ipAddressPools": ["other"]})));
    state.plan();
    assert_eq!(
        state.decision(ip(VIP)).unwrap().winner,
        Err(Unannounced::Election(NoWinner::NoAdvertisement))
    );

    // A service selector that does not match the Service: no advertisement either.
    state.apply_advertisement(&mk_ad(
        "main",
        json!({"serviceSelectors": [{"matchLabels": {"tier": "edge"}}]}),
    ));
    state.plan();
    assert!(state.decision(ip(VIP)).unwrap().winner.is_err());
    let labelled = mk_service("web", &[VIP], json!({}));
    let mut labelled = labelled;
    labelled.metadata.labels = Some(BTreeMap::from([("tier".into(), "edge".into())]));
    state.apply_service(&labelled);
    state.plan();
    assert!(state.decision(ip(VIP)).unwrap().winner.is_ok());
}

#[test]
fn pool_selectors_and_invalid_advertisements() {
    let mut state = mk_world("node1");
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    let mut pool = mk_pool("main", &["198.51.100.0/24"], "2024-01-01T00:00:00Z");
    pool.metadata.labels = Some(BTreeMap::from([("zone".into(), "a".into())]));
    state.apply_pool(&pool);
    state.apply_advertisement(&mk_ad(
        "main",
        json!({"ipAddressPoolSelectors": [{"matchLabels": {"zone": "a"}}]}),
    ));
    state.plan();
    assert!(state.decision(ip(VIP)).unwrap().winner.is_ok());

    // An advertisement that does not compile is ignored, and said so.
    state.apply_advertisement(&mk_ad("main", json!({"interfaces": ["not an interface!"]})));
    let changes = state.plan();
    assert!(
        changes
            .problems
            .iter()
            .any(|p| p.contains("L2Advertisement main is invalid")),
        "{:?}",
        changes.problems
    );
    assert_eq!(
        state.decision(ip(VIP)).unwrap().winner,
        Err(Unannounced::Election(NoWinner::NoAdvertisement))
    );
}

#[test]
fn overlapping_pools_resolve_to_the_older_one() {
    let mut state = mk_world("node1");
    state.apply_pool(&mk_pool(
        "young",
        &["198.51.100.0/28"],
        "2025-01-01T00:00:00Z",
    ));
    state.apply_advertisement(&mk_ad("main", json!({"ipAddressPools": ["young"]})));
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.plan();
    assert_eq!(
        state.decision(ip(VIP)).unwrap().winner,
        Err(Unannounced::Election(NoWinner::NoAdvertisement)),
        "the IP belongs to the older pool `main`, which no advertisement names"
    );
    state.delete_pool("main");
    state.plan();
    assert!(state.decision(ip(VIP)).unwrap().winner.is_ok());
}

#[test]
fn local_policy_elects_only_nodes_with_ready_endpoints() {
    let mut cluster = Cluster::new();
    let local = mk_service("web", &[VIP], json!({"externalTrafficPolicy": "Local"}));
    cluster.each(|s| s.apply_service(&local));
    assert!(cluster.owners(VIP).is_empty(), "no endpoints anywhere");
    let d = cluster.states["node1"].decision(ip(VIP)).unwrap().clone();
    assert_eq!(
        d.winner,
        Err(Unannounced::Election(NoWinner::AllRemoved(Tally {
            alive: 3,
            unhealthy: 3,
            ..Tally::default()
        })))
    );

    // Ready endpoints on two nodes: the better ranked of those two wins.
    let slice = mk_slice(
        "web-abc",
        "web",
        &[
            ("node1", Some(true)),
            ("node2", None),
            ("node3", Some(false)),
        ],
    );
    cluster.each(|s| s.apply_slice(&slice));
    let expected = expected_winner(VIP, &["node1", "node2"]);
    assert_eq!(cluster.owners(VIP), [expected.as_str()]);

    // The owner's last endpoint goes unready: the IP moves to the other endpoint node.
    let other = if expected == "node1" {
        "node2"
    } else {
        "node1"
    };
    let endpoints: Vec<(&str, Option<bool>)> = vec![
        (expected.as_str(), Some(false)),
        (other, Some(true)),
        ("node3", Some(false)),
    ];
    let moved = mk_slice("web-abc", "web", &endpoints);
    let changes = cluster.each(|s| s.apply_slice(&moved));
    assert_eq!(cluster.owners(VIP), [other.to_string()]);
    assert_eq!(changes[&expected].losses, [ip(VIP)]);
    assert_eq!(changes[other].takeovers, [ip(VIP)]);

    // A second slice of the same Service adds its endpoints; deleting it removes them.
    let extra = mk_slice("web-def", "web", &[("node3", Some(true))]);
    cluster.each(|s| s.apply_slice(&extra));
    assert_eq!(
        cluster.owners(VIP),
        [expected_winner(VIP, &[other, "node3"])]
    );
    cluster.each(|s| {
        s.delete_slice(&SliceKey {
            namespace: "default".into(),
            name: "web-def".into(),
        })
    });
    assert_eq!(cluster.owners(VIP), [other.to_string()]);
}

#[test]
fn cluster_policy_ignores_endpoints() {
    let mut cluster = Cluster::new();
    with_web(&mut cluster);
    let slice = mk_slice("web-abc", "web", &[("node1", Some(false))]);
    cluster.each(|s| s.apply_slice(&slice));
    assert_eq!(cluster.owners(VIP), [expected_winner(VIP, &NODES)]);
}

#[test]
fn proxy_mode_needs_a_node_address_of_the_family() {
    let vip6 = "2001:db8:0:100::10";
    let mut cluster = Cluster::new();
    // node1 and node2 lose their IPv6 InternalIP.
    cluster.each(|s| {
        s.apply_node(&mk_node("node1", &[&node_ip("node1")], &[]));
        s.apply_node(&mk_node("node2", &[&node_ip("node2")], &[]));
        s.apply_service(&mk_service("web6", &[vip6], json!({})));
    });
    assert_eq!(cluster.owners(vip6), ["node3"]);

    // In VIP mode nothing is forwarded, so any node may announce.
    let vip_mode = with_ingress(
        mk_service("web6", &[vip6], json!({})),
        json!([{"ip": vip6, "ipMode": "VIP"}]),
    );
    cluster.each(|s| s.apply_service(&vip_mode));
    assert_eq!(cluster.owners(vip6), [expected_winner(vip6, &NODES)]);
}

#[test]
fn dual_stack_ips_are_elected_independently() {
    let vip6 = "2001:db8:0:100::10";
    let mut cluster = Cluster::new();
    cluster.each(|s| s.apply_service(&mk_service("web", &[VIP, vip6], json!({}))));
    assert_eq!(cluster.owners(VIP), [expected_winner(VIP, &NODES)]);
    assert_eq!(cluster.owners(vip6), [expected_winner(vip6, &NODES)]);
}

#[test]
fn shared_ips_have_one_owner_and_require_health_for_every_service() {
    let mut cluster = Cluster::new();
    let a = mk_service("a", &[VIP], json!({"externalTrafficPolicy": "Local"}));
    let b = mk_service(
        "b",
        &[VIP],
        json!({"externalTrafficPolicy": "Local",
               "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    );
    cluster.each(|s| {
        s.apply_service(&a);
        s.apply_service(&b);
        s.apply_slice(&mk_slice("a-1", "a", &[("node1", None), ("node2", None)]));
        s.apply_slice(&mk_slice("b-1", "b", &[("node2", None), ("node3", None)]));
    });
    assert_eq!(cluster.owners(VIP), ["node2"], "only node2 serves both");
}

#[test]
fn the_tally_explains_an_empty_candidate_list() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.apply_node(&mk_node(
        "node1",
        &[&node_ip("node1")],
        &[(
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "true",
        )],
    ));
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.plan();
    let Err(Unannounced::Election(why)) = state.decision(ip(VIP)).unwrap().winner.clone() else {
        panic!("expected no winner");
    };
    assert_eq!(
        why.to_string(),
        "no eligible node among 1 alive: 1 labelled exclude-from-external-load-balancers"
    );
    // The election module's own classification agrees.
    let labels = state.node("node1").unwrap().labels.clone();
    let candidate = crate::election::Candidate {
        name: "node1",
        labels: &labels,
        network_unavailable: false,
        alive: true,
        healthy: true,
    };
    let every_node: &[ironlb_crds::selector::Selector] = &[];
    assert_eq!(
        crate::election::exclusion(&candidate, &[every_node]),
        Some(Exclusion::ExcludedByLabel)
    );
}
