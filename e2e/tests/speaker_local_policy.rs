//! Issue 4, acceptance 3: for `externalTrafficPolicy: Local` only nodes with a ready local
//! endpoint are elected; when the last local endpoint on the owner goes unready the IP moves
//! to a node that still has one; and the backend sees the client's real address.
//!
//! The steps are arranged so that a speaker ignoring the policy fails whatever its hash
//! prefers: first the only endpoint is on node3, so node3 must own the IP; later the owner's
//! endpoint goes unready, so the IP must leave whichever node held it.

mod speaker_common;

use std::net::IpAddr;
use std::time::Duration;

use e2e::harness::{Capability, Cluster, wait_for};
use speaker_common::*;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: local
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: local}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#;

/// curl through the VIP until the reply comes from `node`; checks what the backend saw.
fn wait_served_by(cluster: &Cluster, vip: IpAddr, node: &str) {
    let reply = wait_for(
        &format!("{vip} to be answered through {node}"),
        SETTLE,
        || {
            let f = fields(&curl_once(cluster, &url(vip, 80, ""), "1")?);
            if f.get("node").map(String::as_str) == Some(node) {
                Ok(f)
            } else {
                Err(format!("{f:?}"))
            }
        },
    )
    .unwrap();
    assert_eq!(reply["service"], "default/local");
    assert!(
        reply["client"].starts_with(&format!("{CLIENT_IP}:")),
        "the backend sees the client's own address, not a node's: {reply:?}"
    );
    // The stand-in's /clientip, as agnhost netexec answers it.
    let seen = curl_once(cluster, &url(vip, 80, "clientip"), "2").unwrap();
    assert!(
        seen.starts_with(&format!("{CLIENT_IP}:")),
        "/clientip: {seen}"
    );
    assert_eq!(
        client_neighbour_mac(cluster, vip).as_deref(),
        Some(mac_of(cluster, node).as_str())
    );
}

fn set_ready(cluster: &Cluster, pod: &str, ready: bool) {
    cluster
        .kubectl(&[
            "annotate",
            "--overwrite",
            "pod",
            pod,
            &format!("lab.ironlb.io/ready={ready}"),
        ])
        .unwrap();
}

#[test]
fn only_nodes_with_ready_local_endpoints_announce() {
    let cluster = Cluster::start().expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return;
    }
    cluster.apply(&default_pool()).unwrap();
    cluster
        .apply(&pinned_pod("local-3", "local", "node3"))
        .unwrap();
    cluster.apply(SERVICE).unwrap();
    let vip = wait_external_ip(&cluster, "local");

    // The only endpoint is on node3: node3 announces, whatever the hash prefers.
    assert_eq!(wait_owner(&cluster, "local", vip), "node3");
    wait_served_by(&cluster, vip, "node3");

    // A second endpoint on node1: either may own the IP, never node2.
    cluster
        .apply(&pinned_pod("local-1", "local", "node1"))
        .unwrap();
    wait_for(
        "node1's health check to report its endpoint",
        SETTLE,
        || {
            let out = cluster
                .exec(
                    "node1",
                    &[
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "1",
                        &health_url(&cluster),
                    ],
                )
                .map_err(|e| e.to_string())?;
            match String::from_utf8_lossy(&out.stdout).trim() {
                "200" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .unwrap();
    // Give the speakers a moment to see it, then read who owns the IP now.
    std::thread::sleep(Duration::from_millis(500));
    let owner = wait_owner_where(&cluster, "local", vip, |n| n == "node1" || n == "node3");
    let other = if owner == "node1" { "node3" } else { "node1" };

    // The owner's last local endpoint goes unready: the IP moves to the other endpoint node.
    set_ready(&cluster, &format!("local-{}", &owner[4..]), false);
    assert_eq!(
        wait_owner_where(&cluster, "local", vip, |n| n == other),
        other
    );
    wait_served_by(&cluster, vip, other);
    let answers = arp_answers(&cluster, vip);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&mac_of(&cluster, other)],
        "only {other} answers ARP: {answers:?}"
    );

    // No ready endpoint anywhere: nobody announces the IP.
    set_ready(&cluster, &format!("local-{}", &other[4..]), false);
    wait_for("the IP to be withdrawn", SETTLE, || {
        let nodes = status_nodes(&cluster, "local", vip);
        if nodes.is_empty() {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    })
    .unwrap();
    let answers = arp_answers(&cluster, vip);
    assert!(answers.is_empty(), "nobody answers ARP: {answers:?}");

    // The endpoint comes back: its node announces again.
    set_ready(&cluster, &format!("local-{}", &owner[4..]), true);
    assert_eq!(wait_owner(&cluster, "local", vip), owner);
    wait_served_by(&cluster, vip, &owner);
    cluster.down().unwrap();
}

/// node1's `healthCheckNodePort` URL, from inside node1.
fn health_url(cluster: &Cluster) -> String {
    let port = cluster
        .kubectl(&[
            "get",
            "svc",
            "local",
            "-o",
            "jsonpath={.spec.healthCheckNodePort}",
        ])
        .unwrap();
    format!("http://192.0.2.11:{}/", port.trim())
}
