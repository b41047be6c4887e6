//! Issue 4, acceptance 5: in a dual-stack lab an IPv6 VIP from a /64 pool is reachable from
//! the client with `curl -g http://[VIP]/`, resolved by NDP to the owner's MAC, and only the
//! owner answers Neighbor Solicitations for it; a dual-stack Service is reachable on both of
//! its addresses.

mod speaker_common;

use std::net::IpAddr;
use std::time::Duration;

use e2e::harness::l2;
use e2e::harness::{Capability, Cluster, LabOptions, wait_for};
use speaker_common::*;

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web6
spec:
  type: LoadBalancer
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata:
  name: dual
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv6, IPv4]
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#;

/// The VIP is answered through `owner`, whose MAC the client's NDP resolved.
fn assert_reachable_through_owner(cluster: &Cluster, service: &str, vip: IpAddr) -> String {
    let owner = wait_owner(cluster, service, vip);
    let target = url(vip, 80, "");
    let reply = wait_for(&format!("curl -g {target}"), SETTLE, || {
        curl_once(cluster, &target, "1").map(|b| fields(&b))
    })
    .unwrap();
    assert_eq!(reply["node"], owner, "{service} {vip}: {reply:?}");
    assert_eq!(reply["service"], format!("default/{service}"));
    let client = match vip {
        IpAddr::V6(_) => "[2001:db8::100]:",
        IpAddr::V4(_) => "192.0.2.100:",
    };
    assert!(
        reply["client"].starts_with(client),
        "the backend sees the client's own address: {reply:?}"
    );
    let neighbour = client_neighbour(cluster, vip).expect("a neighbour entry");
    assert_eq!(
        neighbour.mac.map(|m| m.to_string()),
        Some(mac_of(cluster, &owner)),
        "{vip} resolves to {owner}'s MAC: {neighbour:?}"
    );
    // On the wire, exactly one MAC answers: NDP solicitations for the IPv6 VIP, ARP for IPv4.
    let answers = match vip {
        IpAddr::V6(v6) => l2::ndp_responders(
            &netns_of(cluster, "client"),
            "eth0",
            v6,
            4,
            Duration::from_secs(1),
        )
        .unwrap(),
        IpAddr::V4(_) => arp_answers(cluster, vip),
    };
    let owner_mac = mac_of(cluster, &owner);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&owner_mac],
        "only {owner} answers for {vip}: {answers:?}"
    );
    assert!(
        answers[&owner_mac] >= 4,
        "each request answered: {answers:?}"
    );
    owner
}

#[test]
fn ipv6_vips_are_reachable_through_ndp() {
    let cluster = Cluster::start_with(LabOptions {
        ipv6: true,
        ..LabOptions::default()
    })
    .expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return;
    }
    cluster
        .apply(&pool(
            "scenario",
            &["198.51.100.240-198.51.100.250", "2001:db8:0:100::/64"],
        ))
        .unwrap();
    create_web(&cluster, "web", 2);
    cluster.apply(SERVICES).unwrap();

    let v6 = wait_external_ip(&cluster, "web6");
    assert!(
        matches!(v6, IpAddr::V6(a) if a.segments()[..4] == [0x2001, 0xdb8, 0, 0x100]),
        "an address of the /64: {v6}"
    );
    assert_reachable_through_owner(&cluster, "web6", v6);

    // Dual stack: one address per family, each announced (by ARP or NDP) and reachable.
    let ips = wait_for("dual to get both addresses", SETTLE, || {
        let ips = ingress_ips(&cluster, "dual");
        if ips.len() == 2 {
            Ok(ips)
        } else {
            Err(format!("{ips:?}"))
        }
    })
    .unwrap();
    assert!(
        ips[0].is_ipv6() && ips[1].is_ipv4(),
        "ipFamilies order: {ips:?}"
    );
    for ip in ips {
        assert_reachable_through_owner(&cluster, "dual", ip);
    }
    cluster.down().unwrap();
}
