//! Issue 4, acceptance 7 (safety), on the wire of a running lab:
//!
//! - a speaker never answers ARP for an IP it does not own: only the owner answers for the
//!   VIP, nobody answers for a pool address no Service holds, and every speaker counts the
//!   requests it saw and left alone (so the silence is a decision, not a lost frame). A
//!   speaker opens its packet sockets when it first has something to announce, so every node
//!   is first given an address of its own (a Local Service whose only endpoint is there);
//! - malformed ARP frames (truncated, wrong hardware or protocol type, lying lengths) sent
//!   from the client are dropped and counted by every speaker, get no reply, and crash none;
//! - membership datagrams signed with the wrong key are ignored: while the owner is dead, a
//!   stream of forged "the owner is alive" messages to the other speakers does not keep it
//!   elected, and they count the forgeries as authentication failures.

mod speaker_common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::harness::l2::{self, ArpCapture};
use e2e::harness::{Cluster, wait_for};
use ironlb_speaker::membership::wire::{Body, DecodeError, Message};
use ironlb_speaker::membership::{Key, MemberState, Status, Update};
use speaker_common::*;

const DROPPED: &str = "ironlb_l2_requests_dropped_total";
const REJECTED: &str = "ironlb_speaker_membership_rejected_total";
const MEMBERSHIP_PORT: u16 = 7946;
/// Longest the forger runs, whatever happens to the test.
const FORGE_LIMIT: Duration = Duration::from_secs(20);

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => panic!("an IPv4 address"),
    }
}

/// A Local Service whose only endpoint is on `node`, so that `node` announces its IP.
fn pinned_service(node: &str) -> String {
    format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: pin-{node}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {{app: pin-{node}}}\n  ports:\n  - {{port: 80, targetPort: 8080}}\n",
        pinned_pod(&format!("pin-{node}"), &format!("pin-{node}"), node)
    )
}

fn dropped(cluster: &Cluster, node: &str, reason: &str) -> f64 {
    speaker_metric(cluster, node, DROPPED, &[("reason", reason)])
}

fn per_node(cluster: &Cluster, f: impl Fn(&str) -> f64) -> BTreeMap<String, f64> {
    worker_nodes(cluster)
        .into_iter()
        .map(|n| {
            let v = f(&n);
            (n, v)
        })
        .collect()
}

/// ARP frames that must be dropped as malformed, each asking for `vip` so that a lenient
/// parser would answer them.
fn malformed_frames(
    client_mac: e2e::lab::plan::Mac,
    client_ip: Ipv4Addr,
    vip: Ipv4Addr,
) -> Vec<(&'static str, Vec<u8>)> {
    let good = l2::arp_request(client_mac, client_ip, vip);
    let edit = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        f
    };
    vec![
        // The lab's bridge does not forward frames under 22 bytes, so the shortest cut here
        // ends right after the fixed ARP header (the codec tests cut at every length).
        ("truncated after the fixed header", good[..14 + 8].to_vec()),
        ("truncated inside the addresses", good[..14 + 20].to_vec()),
        ("hardware type 6 (IEEE 802)", edit(14, &[0, 6])),
        ("protocol type IPv6", edit(16, &[0x86, 0xdd])),
        ("hardware length 8", edit(18, &[8])),
        ("protocol length 16", edit(19, &[16])),
        ("lying lengths 255/255", edit(18, &[255, 255])),
        ("operation 9", edit(20, &[0, 9])),
    ]
}

/// Forged "`dead` is alive" datagrams for `recipient`, signed with `key`.
fn forgeries(dead: &str, recipient: &str, key: &Key, seq: &mut u64) -> Vec<Vec<u8>> {
    let alive = Update {
        member: dead.to_string(),
        status: Status::new(MemberState::Alive, u64::MAX / 2),
    };
    [
        Body::Gossip,
        Body::Ack {
            nonce: *seq,
            incarnation: u64::MAX / 2,
        },
        Body::Ping { nonce: *seq },
    ]
    .into_iter()
    .map(|body| {
        *seq += 1;
        Message {
            sender: dead.to_string(),
            recipient: recipient.to_string(),
            epoch: 0x1b1b_1b1b,
            seq: *seq,
            your_status: Status::new(MemberState::Alive, 0),
            body,
            updates: vec![alive.clone()],
        }
        .encode(key)
        .expect("a well-formed message")
    })
    .collect()
}

#[test]
fn speakers_answer_only_for_what_they_own_and_ignore_forgeries_and_malformed_frames() {
    let Some((cluster, vip)) = lab_with_web() else {
        return;
    };
    let owner = wait_owner(&cluster, "web", vip);
    curl_vip(&cluster, vip, "");
    let mut taken = vec![vip];
    for node in worker_nodes(&cluster) {
        let service = format!("pin-{node}");
        cluster.apply(&pinned_service(&node)).unwrap();
        let ip = wait_external_ip(&cluster, &service);
        assert_eq!(wait_owner(&cluster, &service, ip), node);
        taken.push(ip);
    }
    let owner_mac = mac_of(&cluster, &owner);
    let client_netns = netns_of(&cluster, "client");

    // Only the owner answers for the VIP; nobody for a pool address no Service holds.
    let unassigned: IpAddr = "198.51.100.250".parse().unwrap();
    assert!(!taken.contains(&unassigned), "{taken:?}");
    let not_owned_before = per_node(&cluster, |n| dropped(&cluster, n, "not_owned"));
    let answers = arp_answers(&cluster, vip);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        [&owner_mac],
        "{answers:?}"
    );
    let answers = arp_answers(&cluster, unassigned);
    assert!(answers.is_empty(), "nobody owns {unassigned}: {answers:?}");
    for (node, before) in &not_owned_before {
        // Four requests for the unassigned address, four more for the VIP on non-owners.
        let expected = if *node == owner { 4.0 } else { 8.0 };
        let after = dropped(&cluster, node, "not_owned");
        assert!(
            after - before >= expected,
            "{node} saw the requests and left them unanswered: {before} -> {after}"
        );
    }

    // Malformed frames: no reply, each counted by every speaker, nobody crashes.
    let (client_mac, client_ip) = l2::interface_addresses(&client_netns, "eth0").unwrap();
    let frames = malformed_frames(client_mac, client_ip.expect("client IPv4"), v4(vip));
    let malformed_before = per_node(&cluster, |n| dropped(&cluster, n, "malformed"));
    let capture = ArpCapture::start(&client_netns, "eth0", v4(vip)).unwrap();
    let sent: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.clone()).collect();
    l2::send_frames(&client_netns, "eth0", sent).unwrap();
    let expected = frames.len() as f64;
    for (node, before) in &malformed_before {
        wait_for(
            &format!("{node} to count {expected} malformed frames"),
            Duration::from_secs(5),
            || {
                let after = dropped(&cluster, node, "malformed");
                if after - before >= expected {
                    Ok(())
                } else {
                    let all: Vec<String> = speaker_metrics(&cluster, node)
                        .into_iter()
                        .filter(|s| s.name == DROPPED || s.name.starts_with("ironlb_l2_"))
                        .map(|s| format!("{}{:?} {}", s.name, s.labels, s.value))
                        .collect();
                    Err(format!("{before} -> {after}; {all:?}"))
                }
            },
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let heard = { capture }.finish().unwrap();
    assert!(
        heard.is_empty(),
        "no reply to malformed requests: {heard:?}"
    );
    for node in worker_nodes(&cluster) {
        let health = cluster
            .exec(
                &node,
                &[
                    "curl",
                    "-sS",
                    "--fail",
                    "--max-time",
                    "2",
                    "http://127.0.0.1:7473/healthz",
                ],
            )
            .unwrap();
        assert!(health.status.success(), "the speaker on {node} is healthy");
    }
    assert_eq!(
        arp_answers(&cluster, vip).keys().collect::<Vec<_>>(),
        [&owner_mac],
        "the owner still answers well-formed requests"
    );

    // Forged membership: the owner dies while the client tells the other speakers, over and
    // over, that it is alive, signed with a key that is not the cluster's.
    let lab_key = std::fs::read(cluster.lab_dir().unwrap().join("memberlist.key")).unwrap();
    let lab_key = Key::from_file_contents(&lab_key).unwrap();
    let wrong_key = Key::from_file_contents(b"forged-key-that-is-not-the-cluster-one").unwrap();
    let survivors: Vec<String> = worker_nodes(&cluster)
        .into_iter()
        .filter(|n| *n != owner)
        .collect();
    let mut seq = 1;
    let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    for node in &survivors {
        let ip = cluster.topology().unwrap().plan.host(node).unwrap().ipv4;
        for d in forgeries(&owner, node, &wrong_key, &mut seq) {
            // Well-formed: only the key is wrong.
            assert!(Message::decode(&d, &wrong_key).is_ok());
            assert_eq!(Message::decode(&d, &lab_key), Err(DecodeError::BadTag));
            datagrams.push((SocketAddr::new(IpAddr::V4(ip), MEMBERSHIP_PORT), d));
        }
    }
    let rejected_before = per_node(&cluster, |n| {
        speaker_metric(&cluster, n, REJECTED, &[("reason", "auth_failure")])
    });
    let socket = l2::in_netns(&client_netns, || {
        UdpSocket::bind("0.0.0.0:0").map_err(|e| l2::L2Error::Socket {
            interface: "udp".into(),
            source: e,
        })
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let forger = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < FORGE_LIMIT {
                for (to, d) in &datagrams {
                    let _ = socket.send_to(d, to);
                }
                rounds += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            rounds
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    cluster.fail(&owner).unwrap();
    let new_owner = wait_owner_where(&cluster, "web", vip, |n| n != owner);
    let reply = curl_vip(&cluster, vip, "");
    assert_eq!(reply["node"], new_owner);
    // Still forging: the dead owner stays out of membership and the IP stays put.
    for node in &survivors {
        wait_for(
            &format!("{node} to count 2 members"),
            Duration::from_secs(5),
            || match speaker_metric(&cluster, node, "ironlb_speaker_members", &[]) {
                2.0 => Ok(()),
                other => Err(other.to_string()),
            },
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        status_nodes(&cluster, "web", vip),
        std::slice::from_ref(&new_owner)
    );
    assert_eq!(
        client_neighbour_mac(&cluster, vip),
        Some(mac_of(&cluster, &new_owner))
    );
    stop.store(true, Ordering::Relaxed);
    let rounds = forger.join().unwrap();
    assert!(rounds >= 50, "the forger ran ({rounds} rounds)");
    // Each survivor received three forgeries a round and rejected them for their tag (the
    // counter is read out every two seconds).
    for node in &survivors {
        let before = rejected_before[node];
        wait_for(
            &format!("{node} to count the forgeries as auth failures"),
            Duration::from_secs(5),
            || {
                let after = speaker_metric(&cluster, node, REJECTED, &[("reason", "auth_failure")]);
                if after - before >= (rounds * 3) as f64 * 0.9 {
                    Ok(())
                } else {
                    Err(format!("{before} -> {after} of {} sent", rounds * 3))
                }
            },
        )
        .unwrap();
    }
    cluster.down().unwrap();
}
