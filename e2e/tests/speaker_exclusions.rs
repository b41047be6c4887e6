//! Issue 4, acceptance 6: the `node.kubernetes.io/exclude-from-external-load-balancers` label,
//! the `NetworkUnavailable` condition and an L2Advertisement's `nodeSelectors` each keep a
//! node from being elected.
//!
//! For each mechanism every node but one is excluded, and the survivor is chosen to differ
//! from the node the hash prefers, so a speaker that ignored the mechanism would keep the IP
//! where it was and fail. Lifting the exclusion brings the IP back to the preferred node.

mod speaker_common;

use std::net::IpAddr;

use e2e::harness::Cluster;
use speaker_common::*;

const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const UNAVAILABLE_ANNOTATION: &str = "lab.ironlb.io/network-unavailable";

/// The IP is announced by `node` alone: the ServiceL2Status, the client's neighbour entry
/// and the ARP replies all say so, and curl goes through it.
fn assert_announced_by(cluster: &Cluster, vip: IpAddr, node: &str, why: &str) {
    let owner = wait_owner_where(cluster, "web", vip, |n| n == node);
    assert_eq!(owner, node, "{why}");
    let mac = mac_of(cluster, node);
    let answers = arp_answers(cluster, vip);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&mac],
        "{why}: only {node} answers ARP: {answers:?}"
    );
    assert_eq!(curl_vip(cluster, vip, "")["node"], node, "{why}");
    assert_eq!(
        client_neighbour_mac(cluster, vip).as_deref(),
        Some(mac.as_str()),
        "{why}"
    );
}

/// `kubectl KIND VERB` on each node of `nodes`.
fn on_nodes(cluster: &Cluster, verb: &str, nodes: &[&String], change: &str) {
    for node in nodes {
        let mut args = vec![verb, "node", node.as_str(), change];
        if verb == "annotate" {
            args.insert(1, "--overwrite");
        }
        cluster.kubectl(&args).unwrap();
    }
}

fn advertisement(node_selector: Option<&str>) -> String {
    let selectors = node_selector
        .map(|node| {
            format!("  nodeSelectors:\n  - matchLabels:\n      kubernetes.io/hostname: {node}\n")
        })
        .unwrap_or_default();
    format!(
        "apiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: scenario\n  namespace: {IRONLB_NS}\nspec:\n  ipAddressPools: [scenario]\n{selectors}"
    )
}

#[test]
fn exclude_label_network_unavailable_and_node_selectors_keep_nodes_out() {
    let Some((cluster, vip)) = lab_with_web() else {
        return;
    };
    let preferred = wait_owner(&cluster, "web", vip);
    assert_announced_by(&cluster, vip, &preferred, "no exclusions");
    let nodes = worker_nodes(&cluster);
    let others: Vec<&String> = nodes.iter().filter(|n| **n != preferred).collect();
    let all_but = |keep: &str| -> Vec<&String> { nodes.iter().filter(|n| *n != keep).collect() };

    // The exclude label on all but the first other node.
    let survivor = others[0].as_str();
    on_nodes(
        &cluster,
        "label",
        &all_but(survivor),
        &format!("{EXCLUDE_LABEL}="),
    );
    assert_announced_by(&cluster, vip, survivor, "exclude label");
    on_nodes(
        &cluster,
        "label",
        &all_but(survivor),
        &format!("{EXCLUDE_LABEL}-"),
    );
    assert_announced_by(&cluster, vip, &preferred, "exclude label removed");

    // NetworkUnavailable on all but the second other node.
    let survivor = others[1].as_str();
    on_nodes(
        &cluster,
        "annotate",
        &all_but(survivor),
        &format!("{UNAVAILABLE_ANNOTATION}=true"),
    );
    let condition = cluster
        .kubectl(&[
            "get",
            "node",
            &preferred,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="NetworkUnavailable")].status}"#,
        ])
        .unwrap();
    assert_eq!(condition.trim(), "True", "the node agent set the condition");
    assert_announced_by(&cluster, vip, survivor, "NetworkUnavailable");
    on_nodes(
        &cluster,
        "annotate",
        &all_but(survivor),
        &format!("{UNAVAILABLE_ANNOTATION}=false"),
    );
    assert_announced_by(&cluster, vip, &preferred, "NetworkUnavailable cleared");

    // The advertisement selects only the first other node.
    let survivor = others[0].as_str();
    cluster.apply(&advertisement(Some(survivor))).unwrap();
    assert_announced_by(&cluster, vip, survivor, "nodeSelectors");
    // A selector no node matches: nobody announces.
    cluster.apply(&advertisement(Some("no-such-node"))).unwrap();
    wait_owner_gone(&cluster, vip);
    cluster.apply(&advertisement(None)).unwrap();
    assert_announced_by(&cluster, vip, &preferred, "nodeSelectors removed");
    cluster.down().unwrap();
}

fn wait_owner_gone(cluster: &Cluster, vip: IpAddr) {
    e2e::harness::wait_for("no node to announce the IP", SETTLE, || {
        let nodes = status_nodes(cluster, "web", vip);
        if nodes.is_empty() {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    })
    .unwrap();
    let answers = arp_answers(cluster, vip);
    assert!(answers.is_empty(), "nobody answers ARP: {answers:?}");
}
