//! Kernel tests of Proxy-mode forwarding in front of a NAT-based kube-proxy.
//!
//! The node namespace gets, next to ironlb's table, an nftables table that does what
//! kube-proxy's iptables and nftables modes do for a NodePort whose endpoint is a local pod:
//! DNAT `nodeIP:nodePort → podIP:podPort` at `dstnat`, and, for `externalTrafficPolicy:
//! Cluster`, mark the connection with 0x4000 and masquerade marked packets at `srcnat`. The
//! backend is a real server in a pod namespace behind the node, so the traffic is forwarded
//! as it would be to a pod. Real TCP and UDP go from the client namespace to the VIP.
//!
//! Needs root, iproute2 and the `nft` binary (the simulated kube-proxy is nft text, as
//! kube-proxy's nftables mode is); without them the tests print why and check nothing.

mod forwarding_lab;

use forwarding_lab::*;
use ironlb_speaker::forwarding::render::{REWRITE_CHAIN, vip_chain_name};
use ironlb_speaker::forwarding::ruleset::{BaseChain, Chain, ChainType, Expr, Hook, Policy, Rule};
use ironlb_speaker::forwarding::{
    ForwardEntry, L4Protocol, MarkBit, NftBackend, Ruleset, TABLE_NAME, render,
};

const TCP_NODE_PORT: u16 = 30080;
const UDP_NODE_PORT: u16 = 30053;
const POD_TCP_PORT: u16 = 8080;
const POD_UDP_PORT: u16 = 8053;
const KUBE_PROXY_TABLE: &str = "kube-proxy-sim";

macro_rules! require_kube_proxy_lab {
    () => {
        require_kernel!();
        if !nft_available() {
            eprintln!(
                "SKIP {}: the nft binary is needed to play kube-proxy",
                module_path!()
            );
            return;
        }
    };
}

/// How the simulated kube-proxy treats NodePort traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TrafficPolicy {
    /// `externalTrafficPolicy: Local`: DNAT only; the pod sees the client.
    Local,
    /// `externalTrafficPolicy: Cluster`: mark 0x4000 (KUBE-MARK-MASQ), DNAT, and masquerade
    /// marked packets, clearing the bit first (KUBE-POSTROUTING); the pod sees the node.
    Cluster,
}

/// kube-proxy's NodePort NAT for the TCP and UDP NodePorts of both families, each served by
/// the pod. `extra_prerouting` goes first in the dstnat chain.
fn kube_proxy_rules(policy: TrafficPolicy, extra_prerouting: &str) -> String {
    let masq_mark = match policy {
        TrafficPolicy::Local => "",
        TrafficPolicy::Cluster => "meta mark set meta mark | 0x00004000 ",
    };
    let mut dnat = String::new();
    for (family, node, pod) in [
        ("ip", NODE_V4, POD_V4.to_string()),
        ("ip6", NODE_V6, format!("[{POD_V6}]")),
    ] {
        for (proto, node_port, pod_port) in [
            ("tcp", TCP_NODE_PORT, POD_TCP_PORT),
            ("udp", UDP_NODE_PORT, POD_UDP_PORT),
        ] {
            dnat.push_str(&format!(
                "\t\t{family} daddr {node} {proto} dport {node_port} {masq_mark}dnat {family} to {pod}:{pod_port}\n"
            ));
        }
    }
    format!(
        "table inet {KUBE_PROXY_TABLE} {{
\tchain nat-prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
{extra_prerouting}{dnat}\t}}
\tchain nat-postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & 0x00004000 == 0 return
\t\tmeta mark set meta mark ^ 0x00004000
\t\tmasquerade
\t}}
}}
"
    )
}

/// ironlb's entries for the VIPs of the family of `vip`.
fn entries_for(vip: &str, node: &str, ranges: &[&str]) -> Vec<ForwardEntry> {
    vec![
        entry(vip, L4Protocol::Tcp, 80, node, TCP_NODE_PORT, ranges),
        entry(vip, L4Protocol::Udp, 53, node, UDP_NODE_PORT, ranges),
    ]
}

/// A lab with a pod serving both ports and kube-proxy in front of it.
struct KubeProxyLab {
    lab: Lab,
    _servers: Vec<PeerEchoServer>,
}

impl KubeProxyLab {
    fn start(policy: TrafficPolicy, extra_prerouting: &str) -> KubeProxyLab {
        let lab = Lab::with_pod();
        lab.nft_load(&lab.node, &kube_proxy_rules(policy, extra_prerouting));
        let mut servers = Vec::new();
        for pod in [POD_V4, POD_V6] {
            servers.push(PeerEchoServer::start(
                lab.pod(),
                L4Protocol::Tcp,
                sa(pod, POD_TCP_PORT),
            ));
            servers.push(PeerEchoServer::start(
                lab.pod(),
                L4Protocol::Udp,
                sa(pod, POD_UDP_PORT),
            ));
        }
        KubeProxyLab {
            lab,
            _servers: servers,
        }
    }

    fn apply(&self, ruleset: &Ruleset) {
        self.lab
            .nft()
            .replace(ruleset)
            .expect("apply ironlb's table");
    }

    /// TCP and UDP through the VIP answer from the VIP, and straight to the NodePort answer
    /// from the NodePort; the pod sees `peer` both ways.
    #[track_caller]
    fn expect_both_paths(&self, client: &str, vip: &str, node: &str, peer: &str) {
        for (proto, port, node_port) in [
            (L4Protocol::Tcp, 80, TCP_NODE_PORT),
            (L4Protocol::Udp, 53, UDP_NODE_PORT),
        ] {
            expect_answer(
                probe(&self.lab.client, proto, ip(client), sa(vip, port)),
                sa(vip, port),
                peer,
            );
            expect_answer(
                probe(&self.lab.client, proto, ip(client), sa(node, node_port)),
                sa(node, node_port),
                peer,
            );
        }
    }
}

#[test]
fn kube_proxy_nat_ipv4_pod_sees_the_client_and_replies_come_from_the_vip() {
    require_kube_proxy_lab!();
    let kp = KubeProxyLab::start(TrafficPolicy::Local, "");
    kp.apply(&render(
        &entries_for(VIP_V4, NODE_V4, &[]),
        MarkBit::DEFAULT,
    ));
    kp.expect_both_paths(CLIENT_V4, VIP_V4, NODE_V4, CLIENT_V4);
    // Nothing else on the VIP is forwarded.
    assert!(
        probe(
            &kp.lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4),
            sa(VIP_V4, 81)
        )
        .is_err()
    );
    // Connections went through the rewrite and back, and the direct ones did not.
    let ironlb = counters(&kp.lab.node, TABLE_NAME);
    let vip_tcp = entry(VIP_V4, L4Protocol::Tcp, 80, NODE_V4, TCP_NODE_PORT, &[]);
    assert!(
        ironlb
            .iter()
            .any(|(chain, packets)| *chain == vip_chain_name(&vip_tcp) && *packets >= 3),
        "{ironlb:?}"
    );
}

#[test]
fn kube_proxy_masquerade_ipv4_pod_sees_the_node() {
    require_kube_proxy_lab!();
    let kp = KubeProxyLab::start(TrafficPolicy::Cluster, "");
    kp.apply(&render(
        &entries_for(VIP_V4, NODE_V4, &[]),
        MarkBit::DEFAULT,
    ));
    kp.expect_both_paths(CLIENT_V4, VIP_V4, NODE_V4, NODE_POD_V4);
}

#[test]
fn kube_proxy_nat_ipv6_with_and_without_masquerade() {
    require_kube_proxy_lab!();
    // A non-default mark bit, to show the bit is a parameter end to end.
    let bit = MarkBit::new(0x0100_0000).unwrap();
    for (policy, peer) in [
        (TrafficPolicy::Local, CLIENT_V6),
        (TrafficPolicy::Cluster, NODE_POD_V6),
    ] {
        let kp = KubeProxyLab::start(policy, "");
        kp.apply(&render(&entries_for(VIP_V6, NODE_V6, &[]), bit));
        kp.expect_both_paths(CLIENT_V6, VIP_V6, NODE_V6, peer);
    }
}

#[test]
fn kube_proxy_source_ranges_still_drop_unlisted_sources() {
    require_kube_proxy_lab!();
    let kp = KubeProxyLab::start(TrafficPolicy::Local, "");
    let mut entries = entries_for(VIP_V4, NODE_V4, &["192.0.2.3/32"]);
    // 2001:db8::2/127 holds ::2 and ::3, not ::4.
    entries.extend(entries_for(VIP_V6, NODE_V6, &["2001:db8::2/127"]));
    kp.apply(&render(&entries, MarkBit::DEFAULT));
    for (proto, port) in [(L4Protocol::Tcp, 80), (L4Protocol::Udp, 53)] {
        expect_answer(
            probe(&kp.lab.client, proto, ip(CLIENT_V4_B), sa(VIP_V4, port)),
            sa(VIP_V4, port),
            CLIENT_V4_B,
        );
        for unlisted in [CLIENT_V4, CLIENT_V4_C] {
            let blocked = probe(&kp.lab.client, proto, ip(unlisted), sa(VIP_V4, port));
            assert!(blocked.is_err(), "{unlisted} got through: {blocked:?}");
        }
        expect_answer(
            probe(&kp.lab.client, proto, ip(CLIENT_V6), sa(VIP_V6, port)),
            sa(VIP_V6, port),
            CLIENT_V6,
        );
        let blocked = probe(&kp.lab.client, proto, ip(CLIENT_V6_B), sa(VIP_V6, port));
        assert!(blocked.is_err(), "{CLIENT_V6_B} got through: {blocked:?}");
    }
    // The NodePort is kube-proxy's business: ironlb does not filter it.
    expect_answer(
        probe(
            &kp.lab.client,
            L4Protocol::Tcp,
            ip(CLIENT_V4),
            sa(NODE_V4, TCP_NODE_PORT),
        ),
        sa(NODE_V4, TCP_NODE_PORT),
        CLIENT_V4,
    );
}

/// The ruleset ironlb used to render: a DNAT to the NodePort in a nat chain at dstnat.
fn old_dnat_ruleset() -> Ruleset {
    let rule = |proto, port, node_port| Rule {
        exprs: vec![
            Expr::DestAddr(ip(VIP_V4)),
            Expr::L4Proto(proto),
            Expr::DestPort(port),
            Expr::Counter,
            Expr::Dnat {
                addr: ip(NODE_V4),
                port: node_port,
            },
        ],
    };
    Ruleset {
        table: TABLE_NAME.to_string(),
        maps: vec![],
        chains: vec![Chain {
            name: "to_nodeports".into(),
            base: Some(BaseChain {
                chain_type: ChainType::Nat,
                hook: Hook::Prerouting,
                priority: -100,
                policy: Policy::Accept,
            }),
            rules: vec![
                rule(L4Protocol::Tcp, 80, TCP_NODE_PORT),
                rule(L4Protocol::Udp, 53, UDP_NODE_PORT),
            ],
        }],
    }
}

#[test]
fn kube_proxy_never_sees_connections_a_dnat_already_bound() {
    require_kube_proxy_lab!();
    let kp = KubeProxyLab::start(TrafficPolicy::Local, "");
    // netfilter runs nat chains only until one binds the connection, so kube-proxy's DNAT is
    // skipped and the connection lands on nodeIP:nodePort, where nothing listens.
    kp.apply(&old_dnat_ruleset());
    let refused = probe(
        &kp.lab.client,
        L4Protocol::Tcp,
        ip(CLIENT_V4),
        sa(VIP_V4, 80),
    );
    let error = refused.expect_err("the old DNAT cannot reach kube-proxy's backend");
    assert!(error.contains("refused"), "{error}");
    assert!(
        probe(
            &kp.lab.client,
            L4Protocol::Udp,
            ip(CLIENT_V4),
            sa(VIP_V4, 53)
        )
        .is_err()
    );
    // The same lab with the rewrite works.
    kp.apply(&render(
        &entries_for(VIP_V4, NODE_V4, &[]),
        MarkBit::DEFAULT,
    ));
    kp.expect_both_paths(CLIENT_V4, VIP_V4, NODE_V4, CLIENT_V4);
}

#[test]
fn kube_proxy_marks_on_other_bits_survive() {
    require_kube_proxy_lab!();
    // Software before ironlb sets 0x8000 on every packet. kube-proxy requires that bit and
    // the absence of ironlb's bit when it DNATs, adds 0x4000 (masquerade) and ct mark 0x1;
    // a forward filter drops any packet that lost one of those or still shows ironlb's bit.
    let lab_extra = "\t\tmeta mark & 0x00002000 == 0x00002000 counter drop\n\
                     \t\tmeta mark & 0x00008000 == 0 counter drop\n\
                     \t\tct mark set ct mark | 0x00000001\n";
    let kp = KubeProxyLab::start(TrafficPolicy::Cluster, lab_extra);
    kp.lab.nft_load(
        &kp.lab.node,
        "table inet other-software {
\tchain early {
\t\ttype filter hook prerouting priority -350; policy accept;
\t\tmeta mark set meta mark | 0x00008000
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tmeta mark & 0x00008000 == 0 counter drop
\t\tmeta mark & 0x00002000 == 0x00002000 counter drop
\t\tct mark & 0x00000001 == 0 counter drop
\t\tct mark & 0x00002001 == 0x00002001 counter accept
\t}
}
",
    );
    kp.apply(&render(
        &entries_for(VIP_V4, NODE_V4, &[]),
        MarkBit::DEFAULT,
    ));
    kp.expect_both_paths(CLIENT_V4, VIP_V4, NODE_V4, NODE_POD_V4);

    // None of the guards fired, and ironlb's connections carried both ct mark bits.
    let kube_proxy = counters(&kp.lab.node, KUBE_PROXY_TABLE);
    assert_eq!(
        kube_proxy[..2],
        [
            ("nat-prerouting".to_string(), 0),
            ("nat-prerouting".to_string(), 0)
        ]
    );
    let other = counters(&kp.lab.node, "other-software");
    assert_eq!(
        other.iter().map(|(_, p)| *p).collect::<Vec<_>>()[..3],
        [0, 0, 0],
        "{other:?}"
    );
    assert!(
        other[3].1 >= 6,
        "VIP connections kept ct mark 0x1 and gained 0x2000: {other:?}"
    );
}

#[test]
fn kube_proxy_udp_without_checksum_keeps_it_zero() {
    require_kube_proxy_lab!();
    let lab = Lab::with_pod();
    lab.nft_load(&lab.node, &kube_proxy_rules(TrafficPolicy::Local, ""));
    let _server = ZeroChecksumEchoServer::start(lab.pod(), sa(POD_V4, POD_UDP_PORT));
    let entries = entries_for(VIP_V4, NODE_V4, &[]);
    let ruleset = render(&entries, MarkBit::DEFAULT);
    lab.nft().replace(&ruleset).expect("apply");

    // Both directions carry no checksum: the client's datagram and the pod's answer.
    let answer = probe_udp_without_checksum(&lab.client, sa(CLIENT_V4, 40053), sa(VIP_V4, 53))
        .expect("a datagram without checksum gets through and back");
    assert_eq!(answer.from, sa(VIP_V4, 53));
    assert_eq!(answer.peer(), sa(CLIENT_V4, 40053));
    // Checksummed datagrams take the other rule.
    let answer = probe(&lab.client, L4Protocol::Udp, ip(CLIENT_V4), sa(VIP_V4, 53)).unwrap();
    assert_eq!(answer.from, sa(VIP_V4, 53));

    // Why the separate rule: nft's usual `udp dport set` updates the checksum field even when
    // it is 0, which turns "no checksum" into a wrong one, and the datagram is dropped.
    let mut naive = ruleset.clone();
    let vip_chain = vip_chain_name(&entries[1]);
    let chain = naive
        .chains
        .iter_mut()
        .find(|c| c.name == vip_chain)
        .unwrap();
    chain.rules.remove(0);
    chain.rules[0]
        .exprs
        .retain(|e| !matches!(e, Expr::UdpChecksumZero(_)));
    assert!(naive.chain(REWRITE_CHAIN).is_some());
    lab.nft().replace(&naive).expect("apply the naive rewrite");
    let lost = probe_udp_without_checksum(&lab.client, sa(CLIENT_V4, 40054), sa(VIP_V4, 53));
    assert!(lost.is_err(), "{lost:?}");
    assert!(probe(&lab.client, L4Protocol::Udp, ip(CLIENT_V4), sa(VIP_V4, 53)).is_ok());
}
