//! Forwarding entries of the owned IPs: ipMode, ports, NodePorts, source ranges, node IP
//! family, conflicts.

use super::*;
use crate::forwarding::{L4Protocol, SourceRange};

const VIP: &str = "198.51.100.10";
const VIP6: &str = "2001:db8:0:100::10";

/// A state for `node1` in which node1 is the only member, so it owns everything.
fn sole_owner() -> State {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.plan();
    state
}

fn entries_of(changes: &Changes) -> Vec<(IpAddr, L4Protocol, u16, IpAddr, u16)> {
    changes
        .forwarding
        .as_ref()
        .expect("forwarding changed")
        .iter()
        .map(|e| (e.vip(), e.protocol(), e.port(), e.node_ip(), e.node_port()))
        .collect()
}

#[test]
fn every_port_is_forwarded_to_this_nodes_address_of_the_vips_family() {
    let mut state = sole_owner();
    state.apply_service(&mk_service(
        "web",
        &[VIP, VIP6],
        json!({"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            {"name": "sig", "port": 2905, "protocol": "SCTP", "nodePort": 32905}
        ]}),
    ));
    let changes = state.plan();
    let v4 = ip(&node_ip("node1"));
    let v6 = ip(&node_ip6("node1"));
    assert_eq!(
        entries_of(&changes),
        vec![
            (ip(VIP), L4Protocol::Tcp, 80, v4, 30080),
            (ip(VIP), L4Protocol::Udp, 53, v4, 30053),
            (ip(VIP), L4Protocol::Sctp, 2905, v4, 32905),
            (ip(VIP6), L4Protocol::Tcp, 80, v6, 30080),
            (ip(VIP6), L4Protocol::Udp, 53, v6, 30053),
            (ip(VIP6), L4Protocol::Sctp, 2905, v6, 32905),
        ]
    );
    assert_eq!(state.forwarding().len(), 6);
    // Nothing changed: no new entries are handed out.
    assert_eq!(state.plan().forwarding, None);
}

#[test]
fn source_ranges_are_carried_and_malformed_ones_forward_nothing() {
    let mut state = sole_owner();
    state.apply_service(&mk_service(
        "web",
        &[VIP],
        json!({"loadBalancerSourceRanges": ["192.0.2.100/32", " 203.0.113.0/24 "]}),
    ));
    let changes = state.plan();
    let entries = changes.forwarding.unwrap();
    assert_eq!(
        entries[0].source_ranges(),
        &[
            "192.0.2.100/32".parse::<SourceRange>().unwrap(),
            "203.0.113.0/24".parse().unwrap()
        ]
    );

    state.apply_service(&mk_service(
        "web",
        &[VIP],
        json!({"loadBalancerSourceRanges": ["192.0.2.100/32", "everyone"]}),
    ));
    let changes = state.plan();
    assert_eq!(changes.forwarding, Some(vec![]), "fail closed");
    assert!(
        changes.problems.iter().any(
            |p| p.contains("loadBalancerSourceRanges[1]") && p.contains("nothing is forwarded")
        ),
        "{:?}",
        changes.problems
    );
    // The IP is still announced: only forwarding is withheld.
    assert!(state.decision(ip(VIP)).unwrap().mine);
}

#[test]
fn vip_mode_and_missing_node_ports_forward_nothing() {
    let mut state = sole_owner();
    let vip_mode = with_ingress(
        mk_service("web", &[VIP], json!({})),
        json!([{"ip": VIP, "ipMode": "VIP"}]),
    );
    state.apply_service(&vip_mode);
    let changes = state.plan();
    assert_eq!(changes.forwarding, None, "nothing to forward, as before");
    assert!(state.decision(ip(VIP)).unwrap().mine);

    let no_node_port = mk_service(
        "web",
        &[VIP],
        json!({"ports": [{"port": 80, "protocol": "TCP"}]}),
    );
    state.apply_service(&no_node_port);
    assert_eq!(state.plan().forwarding, None);
}

#[test]
fn ip_mode_without_status_follows_the_controllers_rule() {
    let bare = |spec: Value, annotations: Option<(&str, &str)>| {
        let mut svc = with_ingress(mk_service("web", &[VIP], spec), json!([{"ip": VIP}]));
        if let Some((k, v)) = annotations {
            svc.metadata.annotations = Some(BTreeMap::from([(k.into(), v.into())]));
        }
        svc
    };
    let cases = [
        (bare(json!({}), None), IpMode::Proxy, 1),
        (
            bare(json!({}), Some(("ironlb.io/ip-mode", "VIP"))),
            IpMode::Proxy,
            0,
        ),
        (
            bare(json!({"allocateLoadBalancerNodePorts": false}), None),
            IpMode::Proxy,
            0,
        ),
        (bare(json!({}), None), IpMode::Vip, 0),
        (
            bare(json!({}), Some(("ironlb.io/ip-mode", "Proxy"))),
            IpMode::Vip,
            1,
        ),
    ];
    for (i, (service, default, want)) in cases.into_iter().enumerate() {
        let mut state = State::new(StateConfig {
            default_ip_mode: default,
            ..config("node1")
        });
        state.apply_node(&mk_node("node1", &[&node_ip("node1")], &[]));
        state.apply_pool(&mk_pool(
            "main",
            &["198.51.100.0/24"],
            "2024-01-01T00:00:00Z",
        ));
        state.apply_advertisement(&mk_ad("main", json!({})));
        state.set_synced();
        state.set_phase(Phase::Member);
        state.set_membership(alive(&["node1"]), true);
        state.apply_service(&service);
        state.plan();
        assert_eq!(state.forwarding().len(), want, "case {i}");
    }
}

#[test]
fn losing_the_ip_removes_its_entries() {
    let mut state = sole_owner();
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    assert_eq!(state.plan().forwarding.map(|e| e.len()), Some(1));
    state.set_membership(alive(&[]), true);
    let changes = state.plan();
    assert_eq!(changes.forwarding, Some(vec![]));
    assert_eq!(changes.losses, [ip(VIP)]);
}

#[test]
fn a_new_node_ip_rewrites_the_entries() {
    let mut state = sole_owner();
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.plan();
    state.apply_node(&mk_node("node1", &["192.0.2.99"], &[]));
    let changes = state.plan();
    assert_eq!(
        entries_of(&changes),
        vec![(ip(VIP), L4Protocol::Tcp, 80, ip("192.0.2.99"), 30080)]
    );
}

#[test]
fn shared_ips_forward_each_services_ports_and_conflicts_warn_once() {
    let mut state = sole_owner();
    let a = mk_service("a", &[VIP], json!({}));
    let b = mk_service(
        "b",
        &[VIP],
        json!({"ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    );
    state.apply_service(&a);
    state.apply_service(&b);
    let changes = state.plan();
    assert_eq!(changes.forwarding.map(|e| e.len()), Some(2));
    assert!(changes.events.is_empty());

    // c claims port 80 on the same IP with another NodePort: it is the one left out (the
    // entry that sorts first wins) and its owner hears about it once.
    let c = mk_service(
        "c",
        &[VIP],
        json!({"ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}),
    );
    state.apply_service(&c);
    let changes = state.plan();
    let warned: Vec<&str> = changes
        .events
        .iter()
        .map(|e| e.service.key.name.as_str())
        .collect();
    assert_eq!(warned, ["a", "c"], "both Services use the port");
    assert!(changes.events.iter().all(|e| e.kind == EventKind::Warning
        && e.reason == "ForwardConflict"
        && e.note.contains("198.51.100.10:80/tcp is not forwarded")));
    // A later unrelated change does not repeat the warning.
    state.apply_service(&mk_service(
        "d",
        &["198.51.100.11"],
        json!({"ports": [{"port": 8080, "protocol": "TCP", "nodePort": 31001}]}),
    ));
    let changes = state.plan();
    assert!(changes.forwarding.is_some());
    assert!(changes.events.is_empty());
}
