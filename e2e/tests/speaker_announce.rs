//! Issue 4, acceptance 1: a Cluster-policy Service is reachable through its VIP from the
//! client, through the node the speakers elected, and only that node answers ARP for it.
//!
//! The user's path: apply a pool, `kubectl create deployment`, `kubectl expose
//! --type=LoadBalancer`, `curl http://VIP/` from another host on the segment. The elected node
//! is read the three ways a user can see it (the ServiceL2Status, the `nodeAssigned` Event,
//! `ip neigh` on the client) and on the wire (who replies to ARP), and they must all agree.

mod speaker_common;

use std::net::IpAddr;

use speaker_common::*;

#[test]
fn cluster_policy_vip_is_answered_through_the_one_elected_node() {
    let Some((cluster, vip)) = lab_with_web() else {
        return;
    };
    assert!(
        matches!(vip, IpAddr::V4(v4) if v4.octets()[..3] == [198, 51, 100]),
        "the VIP comes from the pool: {vip}"
    );

    // curl from the client is answered, and the answer went through the elected node: for
    // Cluster policy the speaker DNATs to its own node's NodePort, so the kube-proxy stand-in
    // that answers is the owner's.
    let reply = curl_vip(&cluster, vip, "");
    let owner = wait_owner(&cluster, "web", vip);
    assert_eq!(
        reply["node"], owner,
        "answered through the owner: {reply:?}"
    );
    assert_eq!(reply["service"], "default/web", "{reply:?}");
    assert!(
        reply["client"].starts_with(&format!("{CLIENT_IP}:")),
        "{reply:?}"
    );
    let body = cluster.curl_from_client(&url(vip, 80, "hostname")).unwrap();
    assert!(body.starts_with("web-"), "a web pod answers: {body}");

    // The Event names the same node, and the IP.
    let events = node_assigned_messages(&cluster, "web");
    assert!(
        events
            .last()
            .is_some_and(|m| m.contains(&format!("node {owner} ")) && m.contains(&vip.to_string())),
        "the nodeAssigned Event names {owner} and {vip}: {events:?}"
    );

    // The client sends to the owner's MAC (as topology.json records it).
    let owner_mac = mac_of(&cluster, &owner);
    assert_eq!(
        client_neighbour_mac(&cluster, vip).as_deref(),
        Some(owner_mac.as_str()),
        "the client's neighbour entry for {vip}"
    );

    // On the wire: every ARP reply for the VIP comes from the owner's MAC, and it answers
    // each request.
    let answers = arp_answers(&cluster, vip);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&owner_mac],
        "exactly one MAC answers ARP for {vip}: {answers:?}"
    );
    assert!(
        answers[&owner_mac] >= 4,
        "each request answered: {answers:?}"
    );

    // The owner's metrics agree with the API; no other speaker claims the VIP.
    for node in worker_nodes(&cluster) {
        let announced = speaker_metric(
            &cluster,
            &node,
            "ironlb_speaker_announced",
            &[("ip", &vip.to_string())],
        );
        let expected = if node == owner { 1.0 } else { 0.0 };
        assert_eq!(announced, expected, "ironlb_speaker_announced on {node}");
    }
    cluster.down().unwrap();
}
