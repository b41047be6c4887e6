//! Issue 4, acceptance 4: the owner's kernel forwards every port of the VIP to the Service's
//! NodePorts (two TCP ports of one Service, a UDP Service), and `loadBalancerSourceRanges`
//! drops clients that are not listed while the IP stays announced.

mod speaker_common;

use std::net::IpAddr;

use e2e::harness::{Capability, Cluster, wait_for};
use speaker_common::*;

const SERVICES: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: app-1
  labels: {app: app}
spec:
  nodeName: node2
  containers:
  - {name: app, image: registry.k8s.io/e2e-test-images/agnhost:2.53}
---
apiVersion: v1
kind: Service
metadata:
  name: multi
spec:
  type: LoadBalancer
  selector: {app: app}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: alt, port: 8081, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata:
  name: dns
spec:
  type: LoadBalancer
  selector: {app: app}
  ports:
  - {name: dns, port: 53, targetPort: 8080, protocol: UDP}
"#;

/// A Service whose `loadBalancerSourceRanges` is `ranges`.
fn ranged(ranges: &[&str]) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ranged\nspec:\n  type: LoadBalancer\n  loadBalancerSourceRanges: [{}]\n  selector: {{app: app}}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n",
        ranges.join(", ")
    )
}

/// `curl` through the VIP on `port` until the stand-in answers; its fields.
fn curl_port(
    cluster: &Cluster,
    vip: IpAddr,
    port: u16,
) -> std::collections::BTreeMap<String, String> {
    let url = url(vip, port, "");
    wait_for(&format!("{url} to answer"), SETTLE, || {
        curl_once(cluster, &url, "1").map(|b| fields(&b))
    })
    .unwrap()
}

#[test]
fn multi_port_udp_and_source_ranges_through_the_vip() {
    let cluster = Cluster::start().expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return;
    }
    cluster.apply(&default_pool()).unwrap();
    cluster.apply(SERVICES).unwrap();

    // Two TCP ports of one Service: each reaches its own NodePort through the owner.
    let vip = wait_external_ip(&cluster, "multi");
    let owner = wait_owner(&cluster, "multi", vip);
    for (port, name) in [(80, "http"), (8081, "alt")] {
        let reply = curl_port(&cluster, vip, port);
        assert_eq!(reply["node"], owner, "port {port}: {reply:?}");
        assert_eq!(
            reply["port"], name,
            "port {port} is the Service's {name}: {reply:?}"
        );
        assert_eq!(reply["pod"], "default/app-1");
        assert!(reply["client"].starts_with(&format!("{CLIENT_IP}:")));
    }
    // A port the Service does not have is not forwarded anywhere.
    assert!(
        curl_once(&cluster, &url(vip, 8082, ""), "1").is_err(),
        "only the Service's ports are forwarded"
    );

    // UDP: every datagram is answered through the VIP, from the client's own address.
    let udp_vip = wait_external_ip(&cluster, "dns");
    assert_ne!(udp_vip, vip);
    let udp_owner = wait_owner(&cluster, "dns", udp_vip);
    let target = format!("{udp_vip}:53");
    let hostname = wait_for(&format!("UDP {target} to answer"), SETTLE, || {
        cluster
            .udp_from_client(&target, "hostname")
            .map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(hostname.trim(), "app-1");
    let client = cluster.udp_from_client(&target, "clientip").unwrap();
    assert!(
        client.trim().starts_with(&format!("{CLIENT_IP}:")),
        "UDP keeps the client's address: {client}"
    );
    assert_eq!(
        cluster
            .udp_from_client(&target, "echo through the vip")
            .unwrap()
            .trim(),
        "through the vip"
    );
    assert_eq!(
        client_neighbour_mac(&cluster, udp_vip).as_deref(),
        Some(mac_of(&cluster, &udp_owner).as_str())
    );

    // Source ranges: listed, the client gets through.
    cluster.apply(&ranged(&["192.0.2.96/28"])).unwrap();
    let ranged_vip = wait_external_ip(&cluster, "ranged");
    let ranged_owner = wait_owner(&cluster, "ranged", ranged_vip);
    assert_eq!(curl_port(&cluster, ranged_vip, 80)["node"], ranged_owner);

    // Not listed: dropped, while the IP is still announced by the same node (so it is the
    // filter that stops the client, not a withdrawal).
    cluster
        .apply(&ranged(&["203.0.113.0/24", "2001:db8:ffff::/48"]))
        .unwrap();
    let ranged_url = url(ranged_vip, 80, "");
    wait_for("the client to be blocked", SETTLE, || {
        match curl_once(&cluster, &ranged_url, "1") {
            Ok(body) => Err(format!("still answered: {body}")),
            Err(_) => Ok(()),
        }
    })
    .unwrap();
    for _ in 0..3 {
        let err = curl_once(&cluster, &ranged_url, "1").expect_err("blocked");
        assert!(
            err.contains("timed out") || err.contains("Timeout"),
            "dropped silently (not refused): {err}"
        );
    }
    assert_eq!(
        status_nodes(&cluster, "ranged", ranged_vip),
        std::slice::from_ref(&ranged_owner)
    );
    let answers = arp_answers(&cluster, ranged_vip);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&mac_of(&cluster, &ranged_owner)],
        "still announced while blocked: {answers:?}"
    );
    // The other Services are unaffected.
    assert_eq!(curl_port(&cluster, vip, 80)["node"], owner);

    // Listed again: allowed.
    cluster.apply(&ranged(&["192.0.2.0/24"])).unwrap();
    assert_eq!(curl_port(&cluster, ranged_vip, 80)["node"], ranged_owner);

    // No ranges at all: everyone is allowed.
    cluster
        .kubectl(&[
            "patch",
            "svc",
            "ranged",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/loadBalancerSourceRanges"}]"#,
        ])
        .unwrap();
    assert_eq!(curl_port(&cluster, ranged_vip, 80)["node"], ranged_owner);
    cluster.down().unwrap();
}
