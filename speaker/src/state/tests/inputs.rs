//! What the state accepts: the class rule, malformed fields, unchanged updates, interfaces,
//! peers.

use super::*;

const VIP: &str = "198.51.100.10";

#[test]
fn only_our_load_balancer_services_count() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    let foreign = mk_service(
        "foreign",
        &[VIP],
        json!({"loadBalancerClass": "example.com/lb"}),
    );
    let node_port = mk_service("np", &["198.51.100.11"], json!({"type": "NodePort"}));
    state.apply_service(&foreign);
    state.apply_service(&node_port);
    state.plan();
    assert!(state.decisions().is_empty());

    let ours = mk_service(
        "ours",
        &[VIP],
        json!({"loadBalancerClass": "ironlb.io/ironlb"}),
    );
    state.apply_service(&ours);
    assert_eq!(state.plan().takeovers, [ip(VIP)]);

    // Turning it into another class withdraws the IP.
    state.apply_service(&mk_service(
        "ours",
        &[VIP],
        json!({"loadBalancerClass": "example.com/lb"}),
    ));
    assert_eq!(state.plan().losses, [ip(VIP)]);
    assert!(state.decisions().is_empty());

    let mut strict = State::new(StateConfig {
        class: ClassFilter::new("ironlb.io/ironlb", true).unwrap(),
        ..config("node1")
    });
    strict.apply_service(&mk_service("unclassed", &[VIP], json!({})));
    assert_eq!(strict.service_keys().count(), 0, "--ignore-unclassed");
}

#[test]
fn services_without_an_ingress_ip_are_not_kept() {
    let mut state = mk_world("node1");
    state.apply_service(&mk_service("pending", &[], json!({})));
    let hostname_only = with_ingress(
        mk_service("named", &[], json!({})),
        json!([{"hostname": "lb.example.com"}]),
    );
    state.apply_service(&hostname_only);
    assert_eq!(state.service_keys().count(), 0);
}

#[test]
fn malformed_service_fields_are_named_and_the_rest_is_used() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    let service = with_ingress(
        mk_service(
            "web",
            &[],
            json!({"ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30080},
                {"port": 81, "protocol": "ICMP", "nodePort": 30081},
                {"port": 70000, "protocol": "TCP", "nodePort": 30082},
                {"port": 82, "protocol": "TCP", "nodePort": 0}
            ]}),
        ),
        json!([
            {"ip": "not-an-ip"},
            {"ip": VIP, "ipMode": "Teleport"},
            {"ip": "198.51.100.11", "ipMode": "Proxy"},
            {"ip": "198.51.100.11", "ipMode": "Proxy"}
        ]),
    );
    state.apply_service(&service);
    let changes = state.plan();
    let problems = changes.problems.join("\n");
    for needle in [
        "ingress[0].ip \"not-an-ip\" is not an IP address",
        "ingress[1].ipMode",
        "spec.ports[1]",
        "spec.ports[2].port 70000",
        "spec.ports[3].nodePort 0",
    ] {
        assert!(
            problems.contains(needle),
            "{needle:?} missing in:\n{problems}"
        );
    }
    // Both valid IPs are announced; the unknown ipMode is not forwarded, the other is, on the
    // one well-formed port (the duplicate ingress entry is counted once).
    assert_eq!(changes.takeovers.len(), 2);
    let entries = changes.forwarding.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].vip(), ip("198.51.100.11"));
    assert_eq!(entries[0].port(), 80);
}

#[test]
fn malformed_pools_and_nodes_do_not_stop_the_rest() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    let bad_pool = mk_pool(
        "bad",
        &["198.51.100.9-198.51.100.1"],
        "2020-01-01T00:00:00Z",
    );
    state.apply_pool(&bad_pool);
    let mut weird_node = mk_node("node9", &["not-an-ip", "192.0.2.99", "192.0.2.98"], &[]);
    weird_node.status.as_mut().unwrap().conditions = None;
    state.apply_node(&weird_node);
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    let changes = state.plan();
    assert!(
        changes
            .problems
            .iter()
            .any(|p| p.starts_with("IPAddressPool bad is invalid")),
        "{:?}",
        changes.problems
    );
    assert_eq!(changes.takeovers, [ip(VIP)], "the valid pool still works");
    assert_eq!(
        state.node("node9").unwrap().internal_ips,
        [ip("192.0.2.99")],
        "first address per family"
    );
}

#[test]
fn unchanged_updates_cost_nothing() {
    let mut state = mk_world("node1");
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.plan();
    // A kubelet heartbeat: new condition timestamps, same view.
    let mut beat = mk_node("node2", &[&node_ip("node2"), &node_ip6("node2")], &[]);
    beat.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_heartbeat_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2025-06-01T00:00:00Z".parse().unwrap(),
        ));
    state.apply_node(&beat);
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.apply_pool(&mk_pool(
        "main",
        &["198.51.100.0/24", "2001:db8:0:100::/64"],
        "2024-01-01T00:00:00Z",
    ));
    state.apply_advertisement(&mk_ad("main", json!({})));
    state.set_membership(all_alive(), true);
    assert!(state.plan().is_empty());
}

#[test]
fn interfaces_come_from_the_advertisements_that_select_this_node() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.apply_advertisement(&mk_ad("main", json!({"interfaces": ["eth1", "eth2"]})));
    state.apply_advertisement(&mk_ad("default-iface", json!({})));
    state.apply_advertisement(&mk_ad(
        "elsewhere",
        json!({"interfaces": ["eth7"], "nodeSelectors": [{"matchLabels": {"rack": "b"}}]}),
    ));
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    let changes = state.plan();
    let gained: Vec<String> = changes.gained.iter().map(|(_, i)| i.clone()).collect();
    assert_eq!(gained, ["eth0", "eth1", "eth2"]);

    // Interfaces move: the old pair is lost, the new gained, the IP stays owned.
    state.delete_advertisement("default-iface");
    let changes = state.plan();
    assert_eq!(
        changes.lost,
        BTreeSet::from([(ip(VIP), "eth0".to_string())])
    );
    assert!(changes.gained.is_empty() && changes.takeovers.is_empty());
    assert_eq!(
        state.owned_by_interface().keys().collect::<Vec<_>>(),
        ["eth1", "eth2"]
    );
}

#[test]
fn ipv6_vips_use_the_ipv6_interface_or_fall_back_to_the_ipv4_one() {
    let vip6 = "2001:db8:0:100::10";
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.set_default_interfaces(BTreeMap::from([
        (Family::V4, "eth0".to_string()),
        (Family::V6, "eth6".to_string()),
    ]));
    state.apply_service(&mk_service("web", &[VIP, vip6], json!({})));
    let changes = state.plan();
    assert_eq!(
        changes.gained,
        BTreeSet::from([(ip(VIP), "eth0".into()), (ip(vip6), "eth6".into())])
    );
    state.set_default_interfaces(BTreeMap::from([(Family::V4, "eth0".to_string())]));
    let changes = state.plan();
    assert_eq!(changes.gained, BTreeSet::from([(ip(vip6), "eth0".into())]));
}

#[test]
fn peers_are_nodes_with_an_address_of_the_family() {
    let mut state = mk_world("node1");
    state.apply_node(&mk_node("v4only", &["192.0.2.40"], &[]));
    let v6: Vec<String> = state
        .peers(Family::V6)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(v6, ["node1", "node2", "node3"]);
    assert!(
        state
            .peers(Family::V4)
            .contains(&("v4only".to_string(), ip("192.0.2.40")))
    );
    state.delete_node("v4only");
    assert_eq!(state.peers(Family::V4).len(), 3);
}

#[test]
fn deleting_everything_releases_everything() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.plan();
    state.delete_service(&key("web"));
    let changes = state.plan();
    assert_eq!(changes.losses, [ip(VIP)]);
    assert_eq!(changes.forwarding, Some(vec![]));
    assert_eq!(changes.announced, Some(BTreeSet::new()));
    assert!(state.decisions().is_empty());
}
