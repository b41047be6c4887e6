//! Kernel tests of the forwarding module against a NodePort served by a local socket (the lab's
//! kube-proxy stand-in, or kube-proxy's IPVS mode): real nftables over netlink, real
//! TCP/UDP/SCTP, in throwaway namespaces (see `forwarding_lab`). The NAT-based kube-proxy
//! cases are in `forwarding_kube_proxy.rs`.
//!
//! `nft` is used only to inspect what the kernel holds; without it those checks are skipped.

mod forwarding_lab;

use std::time::Instant;

use forwarding_lab::*;
use ironlb_speaker::forwarding::render::{REWRITE_CHAIN, vip_chain_name};
use ironlb_speaker::forwarding::ruleset::{BaseChain, Chain, ChainType, Expr, Hook, Policy, Rule};
use ironlb_speaker::forwarding::{
    ForwardEntry, Forwarder, L4Protocol, MarkBit, NftBackend, NftError, SyncOutcome, TABLE_NAME,
    render,
};

fn rendered(entries: &[ForwardEntry]) -> ironlb_speaker::forwarding::Ruleset {
    render(entries, MarkBit::DEFAULT)
}

#[test]
fn forwarding_ipv4_tcp_udp_reach_a_nodeport_socket_and_match_nft() {
    require_kernel!();
    let lab = Lab::new();
    let entries = vec![
        entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[]),
        entry(VIP_V4, L4Protocol::Udp, 53, NODE_V4, 30053, &[]),
    ];
    let ruleset = rendered(&entries);
    let mut nft = lab.nft();
    nft.replace(&ruleset).expect("apply");

    if nft_available() {
        let kernel = nft_listing(&lab.node).expect("table exists");
        assert_eq!(
            kernel,
            listing_of_text(&ruleset),
            "kernel holds what nft makes of our text"
        );
        let text = serde_json::to_string(&kernel).unwrap();
        assert!(
            text.contains("\"prio\":-300") && !text.contains("\"type\":\"nat\""),
            "{text}"
        );
    } else {
        eprintln!("nft not installed: skipping the listing comparison");
    }

    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    let _udp = PeerEchoServer::start(&lab.node, L4Protocol::Udp, sa(NODE_V4, 30053));
    for (proto, port) in [(L4Protocol::Tcp, 80), (L4Protocol::Udp, 53)] {
        expect_answer(
            probe(&lab.client, proto, ip(CLIENT_V4), sa(VIP_V4, port)),
            sa(VIP_V4, port),
            CLIENT_V4,
        );
    }
    // The NodePort itself still answers as itself.
    expect_answer(
        probe(
            &lab.client,
            L4Protocol::Udp,
            ip(CLIENT_V4),
            sa(NODE_V4, 30053),
        ),
        sa(NODE_V4, 30053),
        CLIENT_V4,
    );
    // A port that is not forwarded does not reach the node's listener.
    assert!(probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 81)).is_err());
}

#[test]
fn forwarding_ipv6_tcp_udp() {
    require_kernel!();
    let lab = Lab::new();
    let ruleset = rendered(&[
        entry(VIP_V6, L4Protocol::Tcp, 443, NODE_V6, 30443, &[]),
        entry(VIP_V6, L4Protocol::Udp, 53, NODE_V6, 30053, &[]),
    ]);
    lab.nft().replace(&ruleset).expect("apply");
    if nft_available() {
        assert_eq!(nft_listing(&lab.node).unwrap(), listing_of_text(&ruleset));
    }
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V6, 30443));
    let _udp = PeerEchoServer::start(&lab.node, L4Protocol::Udp, sa(NODE_V6, 30053));
    for (proto, port) in [(L4Protocol::Tcp, 443), (L4Protocol::Udp, 53)] {
        expect_answer(
            probe(&lab.client, proto, ip(CLIENT_V6), sa(VIP_V6, port)),
            sa(VIP_V6, port),
            CLIENT_V6,
        );
    }
}

#[test]
fn forwarding_sctp() {
    require_kernel!();
    let lab = Lab::new();
    if let Err(reason) = sctp_supported(&lab.node) {
        eprintln!("SKIP forwarding_sctp: {reason}");
        return;
    }
    lab.nft()
        .replace(&rendered(&[entry(
            VIP_V4,
            L4Protocol::Sctp,
            9,
            NODE_V4,
            30009,
            &[],
        )]))
        .expect("apply");
    let _server = PeerEchoServer::start(&lab.node, L4Protocol::Sctp, sa(NODE_V4, 30009));
    // The association only comes up if the rewritten packets carry a valid CRC32c.
    expect_answer(
        probe(&lab.client, L4Protocol::Sctp, ip(CLIENT_V4), sa(VIP_V4, 9)),
        sa(VIP_V4, 9),
        CLIENT_V4,
    );
}

#[test]
fn sctp_helpers_compute_the_standard_crc32c() {
    // The check value of CRC-32C.
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    let packet = sctp_packet(1, 2, 3, &sctp_init_chunk(false, 4));
    assert!(sctp_checksum_ok(&packet));
    let mut corrupted = packet.clone();
    corrupted[20] ^= 1;
    assert!(!sctp_checksum_ok(&corrupted));
}

/// SCTP's CRC32c covers the ports, so the rewrite must recompute it. Raw sockets show the
/// packets as they arrive on both sides (they need no SCTP module, which the test machine's
/// kernel may lack): the client's INIT reaches the node at nodeIP:nodePort with a valid CRC,
/// and the node's INIT ACK reaches the client from VIP:port with a valid CRC.
#[test]
fn forwarding_sctp_rewrites_keep_the_crc32c_valid() {
    require_kernel!();
    let lab = Lab::new();
    lab.nft()
        .replace(&rendered(&[entry(
            VIP_V4,
            L4Protocol::Sctp,
            9,
            NODE_V4,
            30009,
            &[],
        )]))
        .expect("apply");
    let node = raw_sctp_socket(&lab.node, NODE_V4);
    let client = raw_sctp_socket(&lab.client, CLIENT_V4);
    let tag = 0x1122_3344;

    let init = sctp_packet(40009, 9, 0, &sctp_init_chunk(false, tag));
    client
        .send_to(&init, &sa(VIP_V4, 0).into())
        .expect("send INIT");
    let (_, to, arrived) = recv_sctp_from(&node, ip(CLIENT_V4)).expect("the INIT reaches the node");
    assert_eq!(to, ip(NODE_V4));
    assert_eq!(
        arrived[..4],
        [40009u16.to_be_bytes(), 30009u16.to_be_bytes()].concat()[..]
    );
    assert!(
        sctp_checksum_ok(&arrived),
        "CRC32c recomputed after dport := nodePort"
    );
    assert_eq!(arrived[12..], init[12..], "the chunks are untouched");

    // The answer, in the reply direction of the connection conntrack just created.
    let init_ack = sctp_packet(30009, 40009, tag, &sctp_init_chunk(true, 0x5566_7788));
    node.send_to(&init_ack, &sa(CLIENT_V4, 0).into())
        .expect("send INIT ACK");
    let (from, _, answer) =
        recv_sctp_from(&client, ip(VIP_V4)).expect("the INIT ACK comes from the VIP");
    assert_eq!(from, ip(VIP_V4));
    assert_eq!(
        answer[..4],
        [9u16.to_be_bytes(), 40009u16.to_be_bytes()].concat()[..]
    );
    assert!(
        sctp_checksum_ok(&answer),
        "CRC32c recomputed after sport := port"
    );
}

#[test]
fn forwarding_source_ranges_drop_unlisted_sources() {
    require_kernel!();
    let lab = Lab::new();
    let ruleset = rendered(&[
        // Only 192.0.2.3 may use port 80; the IPv6 range does not apply to an IPv4 VIP.
        entry(
            VIP_V4,
            L4Protocol::Tcp,
            80,
            NODE_V4,
            30080,
            &["192.0.2.3/32", "2001:db8::/32"],
        ),
        entry(
            VIP_V4,
            L4Protocol::Udp,
            53,
            NODE_V4,
            30053,
            &["192.0.2.0/30"],
        ),
        entry(
            VIP_V6,
            L4Protocol::Tcp,
            80,
            NODE_V6,
            30080,
            &["2001:db8::2/128"],
        ),
        // Ranges of the other family only: nobody.
        entry(
            VIP_V4,
            L4Protocol::Tcp,
            8080,
            NODE_V4,
            30081,
            &["2001:db8::/32"],
        ),
        // A /0 allows the whole family.
        entry(
            VIP_V4,
            L4Protocol::Tcp,
            8443,
            NODE_V4,
            30443,
            &["0.0.0.0/0"],
        ),
    ]);
    lab.nft().replace(&ruleset).expect("apply");
    let _tcp4 = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    let _tcp4b = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30081));
    let _tcp4c = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30443));
    let _udp4 = PeerEchoServer::start(&lab.node, L4Protocol::Udp, sa(NODE_V4, 30053));
    let _tcp6 = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V6, 30080));

    expect_answer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4_B),
            sa(VIP_V4, 80),
        ),
        sa(VIP_V4, 80),
        CLIENT_V4_B,
    );
    let blocked = probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80));
    assert!(blocked.is_err(), "192.0.2.2 is not listed, got {blocked:?}");

    expect_answer(
        probe(&lab.client, L4Protocol::Udp, ip(CLIENT_V4), sa(VIP_V4, 53)),
        sa(VIP_V4, 53),
        CLIENT_V4,
    );
    // A /30 is not byte-aligned: the kernel masks the source before comparing.
    expect_answer(
        probe(
            &lab.client,
            L4Protocol::Udp,
            ip(CLIENT_V4_B),
            sa(VIP_V4, 53),
        ),
        sa(VIP_V4, 53),
        CLIENT_V4_B,
    );
    let blocked = probe(
        &lab.client,
        L4Protocol::Udp,
        ip(CLIENT_V4_C),
        sa(VIP_V4, 53),
    );
    assert!(
        blocked.is_err(),
        "192.0.2.4 is outside 192.0.2.0/30, got {blocked:?}"
    );

    expect_answer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V6), sa(VIP_V6, 80)),
        sa(VIP_V6, 80),
        CLIENT_V6,
    );

    for source in [CLIENT_V4, CLIENT_V4_B] {
        let blocked = probe(&lab.client, L4Protocol::Tcp, ip(source), sa(VIP_V4, 8080));
        assert!(
            blocked.is_err(),
            "{source} got through an IPv6-only allow list: {blocked:?}"
        );
    }
    expect_answer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4_C),
            sa(VIP_V4, 8443),
        ),
        sa(VIP_V4, 8443),
        CLIENT_V4_C,
    );
    // The node's own address is not filtered: the ranges apply to the VIP only.
    expect_answer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4),
            sa(NODE_V4, 30080),
        ),
        sa(NODE_V4, 30080),
        CLIENT_V4,
    );
    if nft_available() {
        // The drops were counted in the allow chains.
        let dropped: u64 = counters(&lab.node, TABLE_NAME)
            .iter()
            .filter(|(chain, _)| chain.starts_with("allow_"))
            .map(|(_, packets)| packets)
            .sum();
        assert!(dropped > 0);
    }
}

#[test]
fn forwarding_failed_replace_leaves_the_old_table() {
    require_kernel!();
    let lab = Lab::new();
    let good = rendered(&[entry(
        VIP_V4,
        L4Protocol::Tcp,
        80,
        NODE_V4,
        30080,
        &["192.0.2.2/32"],
    )]);
    let mut nft = lab.nft();
    nft.replace(&good).expect("apply");
    let before = nft_available().then(|| nft_listing(&lab.node).unwrap());

    // The next ruleset adds a port, then carries a DNAT in a filter chain, which the kernel
    // refuses (NAT is only valid in nat chains). The first messages of the batch are valid.
    let mut bad = rendered(&[
        entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[]),
        entry(VIP_V4, L4Protocol::Tcp, 81, NODE_V4, 30081, &[]),
    ]);
    bad.chains.push(Chain {
        name: "bad".into(),
        base: Some(BaseChain {
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: -110,
            policy: Policy::Accept,
        }),
        rules: vec![Rule {
            exprs: vec![
                Expr::DestAddr(ip(VIP_V4)),
                Expr::L4Proto(L4Protocol::Tcp),
                Expr::DestPort(82),
                Expr::Dnat {
                    addr: ip(NODE_V4),
                    port: 30080,
                },
            ],
        }],
    });
    let err = nft
        .replace(&bad)
        .expect_err("the kernel refuses a DNAT in a filter chain");
    let NftError::Rejected { failures } = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(!err.is_outcome_unknown());
    assert!(
        failures
            .iter()
            .any(|f| f.what.starts_with("rule 1 of chain bad: ")),
        "the error names the refused rule: {err}"
    );

    if let Some(before) = before {
        assert_eq!(
            nft_listing(&lab.node).unwrap(),
            before,
            "the old table is intact"
        );
    }
    // And it still behaves as before: port 81 is not forwarded, port 80 only for 192.0.2.2.
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    let _tcp81 = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30081));
    assert!(probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 81)).is_err());
    assert!(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4_B),
            sa(VIP_V4, 80)
        )
        .is_err()
    );
    expect_answer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)),
        sa(VIP_V4, 80),
        CLIENT_V4,
    );

    // An impossible value fails the same way: a nat chain before conntrack.
    let mut impossible = good.clone();
    let rewrite = impossible
        .chains
        .iter_mut()
        .find(|c| c.name == REWRITE_CHAIN)
        .unwrap();
    rewrite.base.as_mut().unwrap().chain_type = ChainType::Nat;
    let err = nft
        .replace(&impossible)
        .expect_err("nat below conntrack priority");
    assert!(err.to_string().contains("add chain to_nodeports"), "{err}");
    if let Some(after) = nft_available().then(|| nft_listing(&lab.node).unwrap()) {
        let entry = entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[]);
        assert!(
            serde_json::to_string(&after)
                .unwrap()
                .contains(&vip_chain_name(&entry))
        );
    }
}

#[test]
fn forwarding_remove_leaves_no_table() {
    require_kernel!();
    let lab = Lab::new();
    let mut forwarder = Forwarder::new(lab.nft(), MarkBit::DEFAULT);
    let entries = [entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, 30080, &[])];
    assert_eq!(
        forwarder.sync(&entries).unwrap(),
        SyncOutcome::Applied {
            rules: rendered(&entries).rule_count()
        }
    );
    assert_eq!(forwarder.sync(&entries).unwrap(), SyncOutcome::Unchanged);
    if nft_available() {
        assert!(nft_listing(&lab.node).is_some());
    }
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 30080));
    expect_answer(
        probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)),
        sa(VIP_V4, 80),
        CLIENT_V4,
    );

    // Owning nothing removes the table; traffic to the VIP stops.
    assert_eq!(forwarder.sync(&[]).unwrap(), SyncOutcome::Removed);
    if nft_available() {
        assert!(nft_listing(&lab.node).is_none(), "table gone");
    }
    assert!(probe(&lab.client, L4Protocol::Tcp, ip(CLIENT_V4), sa(VIP_V4, 80)).is_err());

    // Shutdown removal is idempotent.
    forwarder
        .remove()
        .expect("removing an absent table succeeds");
    forwarder
        .backend_mut()
        .remove(TABLE_NAME)
        .expect("and again");
}

#[test]
fn forwarding_large_ruleset_applies_in_one_batch() {
    require_kernel!();
    let lab = Lab::new();
    // 2,000 ports with a source range each: 6,000 chains, 10,000 rules and 4,000 map
    // elements, a batch of several MiB, far beyond the default socket buffers.
    let entries: Vec<ForwardEntry> = (1..=2000u16)
        .map(|port| {
            entry(
                VIP_V4,
                L4Protocol::Tcp,
                port,
                NODE_V4,
                30000 + (port % 2000),
                &["192.0.2.2/32"],
            )
        })
        .collect();
    let ruleset = rendered(&entries);
    assert_eq!(ruleset.chains.len(), 6003);
    assert_eq!(ruleset.element_count(), 4000);
    let mut nft = lab.nft();
    let started = Instant::now();
    nft.replace(&ruleset).expect("apply 2,000 entries");
    eprintln!(
        "applied {} chains, {} rules and {} map elements in {:?}",
        ruleset.chains.len(),
        ruleset.rule_count(),
        ruleset.element_count(),
        started.elapsed()
    );
    let _tcp = PeerEchoServer::start(&lab.node, L4Protocol::Tcp, sa(NODE_V4, 31999));
    expect_answer(
        probe(
            &lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4),
            sa(VIP_V4, 1999),
        ),
        sa(VIP_V4, 1999),
        CLIENT_V4,
    );
    // Replacing it again (the speaker's steady state on a change) also works.
    let started = Instant::now();
    nft.replace(&ruleset).expect("replace 2,000 entries");
    eprintln!("replaced it in {:?}", started.elapsed());
}
