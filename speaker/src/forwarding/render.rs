//! [`render`]: the pure function from the entries a node forwards to the [`Ruleset`] that
//! forwards them.
//!
//! # Why a stateless rewrite and not a DNAT
//! netfilter runs nat chains for a connection only until one of them sets up its NAT binding.
//! A DNAT `VIP:port → nodeIP:nodePort` at prerouting would therefore hide the connection from
//! kube-proxy's own NodePort DNAT (iptables and nftables modes), and nothing listens on
//! `nodeIP:nodePort` there. Instead the destination is rewritten *before conntrack*, so that
//! conntrack, kube-proxy and everything else see an ordinary connection to the NodePort, and
//! the replies are rewritten back on their way out:
//!
//! 1. `to_nodeports` (filter, prerouting, priority -300 = raw: after defragmentation at -400,
//!    before conntrack at -200): `daddr . l4proto . dport` is looked up in the
//!    `to_nodeports_v4`/`_v6` verdict map, which jumps to the entry's `vip_…` chain. That chain
//!    first enforces `loadBalancerSourceRanges` (`jump allow_…`, whose rules `return` for
//!    listed prefixes and whose last rule drops), then sets the mark bit and rewrites
//!    `daddr := nodeIP`, `dport := nodePort`, updating the IPv4 header checksum, the L4
//!    pseudo-header checksum and the port's checksum (SCTP: CRC32c recomputed).
//! 2. `mark_connections` (filter, prerouting, priority -160: after conntrack, before the mangle
//!    table at -150 whose whole-mark writes could erase the bit): copies the bit into the
//!    connection's ct mark and clears it from the packet mark, so kube-proxy's own marks
//!    (0x4000, 0x8000) and every other bit are left as they were.
//! 3. `from_nodeports` (filter, postrouting, priority 300: after source NAT at 100, when
//!    kube-proxy's DNAT has been undone and the reply's source is `nodeIP:nodePort` again):
//!    reply-direction packets of connections whose ct mark has the bit are looked up by
//!    `saddr . l4proto . sport` in `from_nodeports_v4`/`_v6` and their `reply_…` chain
//!    rewrites `saddr := VIP`, `sport := port`. Direct connections to the NodePort carry no
//!    bit and are never touched.
//!
//! Nothing is NATed by ironlb: the client's source address reaches kube-proxy unchanged.
//! UDP datagrams without a checksum (0, legal in IPv4) get a rule of their own that rewrites
//! the port with no checksum update, since an incremental update would turn the 0 into a wrong
//! checksum and the receiver would drop the datagram.
//!
//! The maps make the per-packet cost one hash lookup per hook, whatever the number of entries;
//! rules in a linear chain would be walked by every packet the node receives.
//!
//! # Entries that cannot both be kept
//! Entries are rendered in `(VIP, protocol, port)` order. An entry is skipped, and reported by
//! [`conflicts`], when an earlier one has the same `VIP:port/protocol` (both would claim the
//! same packets) or the same `nodeIP:nodePort/protocol` (their replies could not be told
//! apart). Kubernetes gives every Service port its own NodePort, so the second only happens
//! when the caller hands in inconsistent entries.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ironlb_crds::address::Family;

use super::entry::{ForwardEntry, L4Protocol, SourcePolicy};
use super::mark::MarkBit;
use super::ruleset::{
    BaseChain, Chain, ChainType, Endpoint, Expr, Hook, MapElement, Policy, PortHeader, Rule,
    Ruleset, TABLE_NAME, VerdictMap,
};

/// The base chain that rewrites packets to VIPs.
pub const REWRITE_CHAIN: &str = "to_nodeports";
/// The base chain that moves the mark bit into the connection.
pub const MARK_CHAIN: &str = "mark_connections";
/// The base chain that rewrites replies back to the VIP.
pub const RESTORE_CHAIN: &str = "from_nodeports";
/// `raw`: after defragmentation (-400), before conntrack (-200).
pub const REWRITE_PRIORITY: i32 = -300;
/// After conntrack (-200), before the `mangle` table (-150).
pub const MARK_PRIORITY: i32 = -160;
/// After source NAT (100).
pub const RESTORE_PRIORITY: i32 = 300;

/// The map of VIPs for a family.
pub fn rewrite_map_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "to_nodeports_v4",
        Family::V6 => "to_nodeports_v6",
    }
}

/// The map of NodePorts for a family.
pub fn restore_map_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "from_nodeports_v4",
        Family::V6 => "from_nodeports_v6",
    }
}

/// `198.51.100.10_tcp_80`, `2001_db8__10_udp_53`: unique per address, protocol and port, and
/// a valid nft identifier (dots are allowed; colons are not, so they become underscores, which
/// keeps the name unique because an address never contains an underscore).
fn chain_suffix(addr: IpAddr, protocol: L4Protocol, port: u16) -> String {
    format!("{}_{protocol}_{port}", addr.to_string().replace(':', "_"))
}

/// The chain a VIP's packets go to.
pub fn vip_chain_name(entry: &ForwardEntry) -> String {
    format!(
        "vip_{}",
        chain_suffix(entry.vip(), entry.protocol(), entry.port())
    )
}

/// The chain that enforces a VIP's source ranges.
pub fn allow_chain_name(entry: &ForwardEntry) -> String {
    format!(
        "allow_{}",
        chain_suffix(entry.vip(), entry.protocol(), entry.port())
    )
}

/// The chain a NodePort's replies go to.
pub fn reply_chain_name(entry: &ForwardEntry) -> String {
    format!(
        "reply_{}",
        chain_suffix(entry.node_ip(), entry.protocol(), entry.node_port())
    )
}

/// Why an entry was not rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// An earlier entry has the same `VIP:port/protocol`.
    SameVipPort,
    /// An earlier entry forwards to the same `nodeIP:nodePort/protocol`.
    SameNodePort,
}

/// `dropped` was not rendered because of `kept`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryConflict {
    pub kept: ForwardEntry,
    pub dropped: ForwardEntry,
    pub kind: ConflictKind,
}

/// Sorts entries into their rendering order and splits off those that conflict with an
/// earlier one. The tie-break is deterministic (the entry that sorts first wins) so that every
/// speaker and every re-render agree.
fn arrange(entries: &[ForwardEntry]) -> (Vec<&ForwardEntry>, Vec<EntryConflict>) {
    let mut sorted: Vec<&ForwardEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        a.key()
            .cmp(&b.key())
            .then_with(|| a.node_ip().cmp(&b.node_ip()))
            .then_with(|| a.node_port().cmp(&b.node_port()))
            .then_with(|| a.source_ranges().cmp(b.source_ranges()))
    });
    sorted.dedup_by(|a, b| a == b);
    let mut by_vip: BTreeMap<_, &ForwardEntry> = BTreeMap::new();
    let mut by_target: BTreeMap<_, &ForwardEntry> = BTreeMap::new();
    let mut order = Vec::new();
    let mut conflicts = Vec::new();
    for entry in sorted {
        let target = (entry.node_ip(), entry.protocol(), entry.node_port());
        let clash = match (by_vip.get(&entry.key()), by_target.get(&target)) {
            (Some(first), _) => Some((*first, ConflictKind::SameVipPort)),
            (None, Some(first)) => Some((*first, ConflictKind::SameNodePort)),
            (None, None) => None,
        };
        match clash {
            Some((first, kind)) => conflicts.push(EntryConflict {
                kept: first.clone(),
                dropped: entry.clone(),
                kind,
            }),
            None => {
                by_vip.insert(entry.key(), entry);
                by_target.insert(target, entry);
                order.push(entry);
            }
        }
    }
    (order, conflicts)
}

/// Entries that [`render`] skipped (see the module docs). Exact duplicates are not conflicts.
pub fn conflicts(entries: &[ForwardEntry]) -> Vec<EntryConflict> {
    arrange(entries).1
}

/// Rules that rewrite one end of a packet: `lead` (the mark) after the counter, then the
/// address and the port. UDP gets two rules: datagrams without a checksum must keep it 0, so
/// their port is written without a checksum update.
fn rewrite_rules(
    protocol: L4Protocol,
    lead: &[Expr],
    set_addr: Expr,
    set_port: impl Fn(PortHeader) -> Expr,
) -> Vec<Rule> {
    let rule = |checksum_match: Option<Expr>, header: PortHeader| {
        let mut exprs: Vec<Expr> = checksum_match.into_iter().collect();
        exprs.push(Expr::Counter);
        exprs.extend(lead.iter().cloned());
        exprs.push(set_addr.clone());
        exprs.push(set_port(header));
        Rule { exprs }
    };
    match protocol {
        L4Protocol::Udp => vec![
            rule(Some(Expr::UdpChecksumZero(true)), PortHeader::Transport),
            rule(
                Some(Expr::UdpChecksumZero(false)),
                PortHeader::Protocol(L4Protocol::Udp),
            ),
        ],
        _ => vec![rule(None, PortHeader::Protocol(protocol))],
    }
}

fn regular_chain(name: String, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        base: None,
        rules,
    }
}

fn filter_chain(name: &str, hook: Hook, priority: i32, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.to_string(),
        base: Some(BaseChain {
            chain_type: ChainType::Filter,
            hook,
            priority,
            policy: Policy::Accept,
        }),
        rules,
    }
}

/// Renders the ruleset for the entries this node forwards, marking its connections with
/// `mark`. Deterministic: the output depends only on the set of entries, not on their order.
/// No entries give an empty table; the caller removes the table instead of applying that.
pub fn render(entries: &[ForwardEntry], mark: MarkBit) -> Ruleset {
    let (entries, _) = arrange(entries);
    let mut to_maps: BTreeMap<Family, Vec<MapElement>> = BTreeMap::new();
    let mut from_maps: BTreeMap<Family, Vec<MapElement>> = BTreeMap::new();
    let mut chains = Vec::new();
    for entry in entries {
        let vip_chain = vip_chain_name(entry);
        to_maps.entry(entry.family()).or_default().push(MapElement {
            addr: entry.vip(),
            protocol: entry.protocol(),
            port: entry.port(),
            goto: vip_chain.clone(),
        });
        let mut vip_rules = Vec::new();
        match entry.source_policy() {
            SourcePolicy::AllowAll => {}
            SourcePolicy::AllowOnly(ranges) => {
                let allow_chain = allow_chain_name(entry);
                let mut rules: Vec<Rule> = ranges
                    .iter()
                    .map(|range| Rule {
                        exprs: vec![Expr::SourcePrefix(*range), Expr::Return],
                    })
                    .collect();
                rules.push(Rule {
                    exprs: vec![Expr::Counter, Expr::Drop],
                });
                chains.push(regular_chain(allow_chain.clone(), rules));
                vip_rules.push(Rule {
                    exprs: vec![Expr::Jump(allow_chain)],
                });
            }
            SourcePolicy::AllowNone => {
                // Nobody may connect, so there is nothing to rewrite and no reply to expect.
                vip_rules.push(Rule {
                    exprs: vec![Expr::Counter, Expr::Drop],
                });
                chains.push(regular_chain(vip_chain, vip_rules));
                continue;
            }
        }
        vip_rules.extend(rewrite_rules(
            entry.protocol(),
            &[Expr::MarkAdd(mark)],
            Expr::SetDestAddr(entry.node_ip()),
            |header| Expr::SetDestPort {
                port: entry.node_port(),
                header,
            },
        ));
        chains.push(regular_chain(vip_chain, vip_rules));

        let reply_chain = reply_chain_name(entry);
        from_maps
            .entry(entry.family())
            .or_default()
            .push(MapElement {
                addr: entry.node_ip(),
                protocol: entry.protocol(),
                port: entry.node_port(),
                goto: reply_chain.clone(),
            });
        chains.push(regular_chain(
            reply_chain,
            rewrite_rules(
                entry.protocol(),
                &[],
                Expr::SetSourceAddr(entry.vip()),
                |header| Expr::SetSourcePort {
                    port: entry.port(),
                    header,
                },
            ),
        ));
    }

    let mut maps = Vec::new();
    let mut rewrite = Vec::new();
    for (family, elements) in to_maps {
        let name = rewrite_map_name(family);
        rewrite.push(Rule {
            exprs: vec![Expr::Lookup {
                endpoint: Endpoint::Destination,
                family,
                map: name.to_string(),
            }],
        });
        maps.push(VerdictMap {
            name: name.to_string(),
            family,
            elements,
        });
    }
    let mut restore = Vec::new();
    for (family, elements) in from_maps {
        let name = restore_map_name(family);
        restore.push(Rule {
            exprs: vec![
                Expr::CtDirectionReply,
                Expr::CtMarkHas(mark),
                Expr::Lookup {
                    endpoint: Endpoint::Source,
                    family,
                    map: name.to_string(),
                },
            ],
        });
        maps.push(VerdictMap {
            name: name.to_string(),
            family,
            elements,
        });
    }
    if !rewrite.is_empty() {
        chains.push(filter_chain(
            REWRITE_CHAIN,
            Hook::Prerouting,
            REWRITE_PRIORITY,
            rewrite,
        ));
    }
    if !restore.is_empty() {
        chains.push(filter_chain(
            MARK_CHAIN,
            Hook::Prerouting,
            MARK_PRIORITY,
            vec![Rule {
                exprs: vec![
                    Expr::MarkHas(mark),
                    Expr::CtMarkAdd(mark),
                    Expr::MarkClear(mark),
                ],
            }],
        ));
        chains.push(filter_chain(
            RESTORE_CHAIN,
            Hook::Postrouting,
            RESTORE_PRIORITY,
            restore,
        ));
    }
    Ruleset {
        table: TABLE_NAME.to_string(),
        maps,
        chains,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::forwarding::entry::SourceRange;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub(crate) fn mk(
        vip: &str,
        proto: L4Protocol,
        port: u16,
        node: &str,
        np: u16,
        ranges: &[&str],
    ) -> ForwardEntry {
        ForwardEntry::new(
            ip(vip),
            proto,
            port,
            ip(node),
            np,
            ranges.iter().map(|r| r.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    /// Entries whose rendering is `testdata/golden.nft`, the source of the netlink golden
    /// bytes: TCP with source ranges (one of the other family), SCTP, a port nobody may reach,
    /// and IPv6 UDP.
    pub(crate) fn golden_entries() -> Vec<ForwardEntry> {
        vec![
            mk(
                "2001:db8::10",
                L4Protocol::Udp,
                53,
                "2001:db8::1",
                30053,
                &[],
            ),
            mk(
                "198.51.100.11",
                L4Protocol::Tcp,
                443,
                "192.0.2.1",
                30443,
                &["2001:db8::/32"],
            ),
            mk(
                "198.51.100.10",
                L4Protocol::Sctp,
                9,
                "192.0.2.1",
                30009,
                &[],
            ),
            mk(
                "198.51.100.10",
                L4Protocol::Tcp,
                80,
                "192.0.2.1",
                30080,
                &["203.0.113.0/24", "192.0.2.128/25", "2001:db8:1::/48"],
            ),
        ]
    }

    /// The file `nft -f` loads for the capture: a replace of the table, as ironlb does it.
    pub(crate) const GOLDEN_NFT: &str = include_str!("testdata/golden.nft");
    const GOLDEN_PRELUDE: &str = "table inet ironlb\ndelete table inet ironlb\n";

    #[test]
    fn renders_the_golden_text() {
        let ruleset = render(&golden_entries(), MarkBit::DEFAULT);
        let text = GOLDEN_NFT
            .strip_prefix(GOLDEN_PRELUDE)
            .expect("golden.nft starts with the replace prelude");
        assert_eq!(ruleset.to_string(), text);
        assert_eq!(ruleset.element_count(), 4 + 3);
    }

    #[test]
    fn hooks_run_in_the_order_the_design_needs() {
        let ruleset = render(&golden_entries(), MarkBit::DEFAULT);
        let base = |name: &str| ruleset.chain(name).unwrap().base.unwrap();
        let (rewrite, mark, restore) = (base(REWRITE_CHAIN), base(MARK_CHAIN), base(RESTORE_CHAIN));
        // Defragmentation -400 < rewrite < conntrack -200 < mark < mangle -150 < dstnat -100.
        assert!(-400 < rewrite.priority && rewrite.priority < -200);
        assert!(-200 < mark.priority && mark.priority < -150);
        assert_eq!(
            (rewrite.hook, mark.hook),
            (Hook::Prerouting, Hook::Prerouting)
        );
        // After srcnat (100), where kube-proxy's DNAT has been undone on replies.
        assert_eq!(restore.hook, Hook::Postrouting);
        assert!(restore.priority > 100);
        for chain in [rewrite, mark, restore] {
            assert_eq!(chain.chain_type, ChainType::Filter, "no NAT of our own");
            assert_eq!(chain.policy, Policy::Accept);
        }
    }

    #[test]
    fn every_mark_access_uses_the_configured_bit() {
        let bit = MarkBit::new(0x0100_0000).unwrap();
        let ruleset = render(&golden_entries(), bit);
        let text = ruleset.to_string();
        assert!(!text.contains("0x00002000"), "{text}");
        let uses = ruleset
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .flat_map(|r| &r.exprs)
            .filter_map(|e| match e {
                Expr::MarkHas(b)
                | Expr::MarkAdd(b)
                | Expr::MarkClear(b)
                | Expr::CtMarkHas(b)
                | Expr::CtMarkAdd(b) => Some(*b),
                _ => None,
            })
            .collect::<Vec<_>>();
        assert!(uses.len() >= 5);
        assert!(uses.iter().all(|b| *b == bit));
    }

    #[test]
    fn no_entries_render_an_empty_table() {
        let ruleset = render(&[], MarkBit::DEFAULT);
        assert_eq!(ruleset.table, TABLE_NAME);
        assert!(ruleset.chains.is_empty() && ruleset.maps.is_empty());
        assert_eq!(ruleset.to_string(), "table inet ironlb {\n}\n");
    }

    #[test]
    fn a_port_nobody_may_reach_only_drops() {
        let entry = mk(
            "198.51.100.1",
            L4Protocol::Tcp,
            443,
            "192.0.2.2",
            30443,
            &["2001:db8::/32"],
        );
        let ruleset = render(std::slice::from_ref(&entry), MarkBit::DEFAULT);
        let vip = ruleset.chain(&vip_chain_name(&entry)).unwrap();
        assert_eq!(vip.rules.len(), 1);
        assert_eq!(vip.rules[0].to_string(), "counter drop");
        assert!(ruleset.chain(&reply_chain_name(&entry)).is_none());
        assert!(ruleset.chain(RESTORE_CHAIN).is_none());
        assert!(ruleset.chain(MARK_CHAIN).is_none());
        assert!(ruleset.map(restore_map_name(Family::V4)).is_none());
        assert_eq!(
            ruleset
                .map(rewrite_map_name(Family::V4))
                .unwrap()
                .elements
                .len(),
            1
        );
    }

    #[test]
    fn udp_gets_a_rule_for_datagrams_without_checksum() {
        let entry = mk("198.51.100.1", L4Protocol::Udp, 53, "192.0.2.2", 30053, &[]);
        let ruleset = render(std::slice::from_ref(&entry), MarkBit::DEFAULT);
        let texts = |name: String| -> Vec<String> {
            ruleset
                .chain(&name)
                .unwrap()
                .rules
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            texts(vip_chain_name(&entry)),
            [
                "udp checksum 0 counter meta mark set meta mark | 0x00002000 ip daddr set 192.0.2.2 th dport set 30053",
                "udp checksum != 0 counter meta mark set meta mark | 0x00002000 ip daddr set 192.0.2.2 udp dport set 30053",
            ]
        );
        assert_eq!(
            texts(reply_chain_name(&entry)),
            [
                "udp checksum 0 counter ip saddr set 198.51.100.1 th sport set 53",
                "udp checksum != 0 counter ip saddr set 198.51.100.1 udp sport set 53",
            ]
        );
    }

    #[test]
    fn chain_names_are_valid_identifiers_and_unique() {
        let a = mk(
            "2001:db8::10",
            L4Protocol::Udp,
            53,
            "2001:db8::1",
            30053,
            &[],
        );
        assert_eq!(vip_chain_name(&a), "vip_2001_db8__10_udp_53");
        assert_eq!(allow_chain_name(&a), "allow_2001_db8__10_udp_53");
        assert_eq!(reply_chain_name(&a), "reply_2001_db8__1_udp_30053");
        // An IPv4-mapped address keeps its dots, so it cannot meet the all-colon spelling.
        let mapped = mk("::ffff:1.2.3.4", L4Protocol::Tcp, 1, "::1", 30001, &[]);
        let plain = mk("::ffff:1:2:3:4", L4Protocol::Tcp, 1, "::1", 30002, &[]);
        assert_ne!(vip_chain_name(&mapped), vip_chain_name(&plain));
    }

    #[test]
    fn conflicting_entries_keep_the_first_in_sort_order() {
        let a = mk("198.51.100.1", L4Protocol::Tcp, 80, "192.0.2.1", 30001, &[]);
        let b = mk("198.51.100.1", L4Protocol::Tcp, 80, "192.0.2.1", 30002, &[]);
        let c = mk("198.51.100.1", L4Protocol::Udp, 80, "192.0.2.1", 30003, &[]);
        // Same NodePort as `a` from another VIP: replies would be ambiguous.
        let d = mk("198.51.100.2", L4Protocol::Tcp, 80, "192.0.2.1", 30001, &[]);
        // Same NodePort number but UDP: a different target.
        let e = mk("198.51.100.2", L4Protocol::Udp, 80, "192.0.2.1", 30001, &[]);
        let entries = vec![d.clone(), b.clone(), c.clone(), a.clone(), a.clone(), e];
        let ruleset = render(&entries, MarkBit::DEFAULT);
        let to = ruleset.map(rewrite_map_name(Family::V4)).unwrap();
        assert_eq!(to.elements.len(), 3);
        assert_eq!(
            conflicts(&entries),
            vec![
                EntryConflict {
                    kept: a.clone(),
                    dropped: b,
                    kind: ConflictKind::SameVipPort
                },
                EntryConflict {
                    kept: a.clone(),
                    dropped: d,
                    kind: ConflictKind::SameNodePort
                },
            ]
        );
        assert!(conflicts(&[a.clone(), a, c]).is_empty());
    }

    fn arb_entry() -> impl Strategy<Value = ForwardEntry> {
        let v4 = (
            1u8..=3,
            1u16..=4,
            prop::sample::select(vec![L4Protocol::Tcp, L4Protocol::Udp, L4Protocol::Sctp]),
            30000u16..30010,
            prop::collection::vec((0u8..=255, 0u8..=32), 0..3),
        )
            .prop_map(|(host, port, proto, np, ranges)| {
                let ranges = ranges
                    .into_iter()
                    .map(|(b, len)| SourceRange::new(ip(&format!("203.0.113.{b}")), len).unwrap())
                    .collect();
                ForwardEntry::new(
                    ip(&format!("198.51.100.{host}")),
                    proto,
                    port,
                    ip("192.0.2.1"),
                    np,
                    ranges,
                )
                .unwrap()
            });
        let v6 = (1u8..=3, 1u16..=4, 30000u16..30010, prop::bool::ANY).prop_map(
            |(host, port, np, other_family)| {
                let ranges = if other_family {
                    vec!["192.0.2.0/24".parse().unwrap()]
                } else {
                    vec![]
                };
                ForwardEntry::new(
                    ip(&format!("2001:db8::{host}")),
                    L4Protocol::Udp,
                    port,
                    ip("2001:db8::1"),
                    np,
                    ranges,
                )
                .unwrap()
            },
        );
        prop_oneof![v4, v6]
    }

    fn goto_targets(ruleset: &Ruleset) -> Vec<&str> {
        let from_maps = ruleset
            .maps
            .iter()
            .flat_map(|m| m.elements.iter().map(|e| e.goto.as_str()));
        let from_rules = ruleset
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .flat_map(|r| &r.exprs)
            .filter_map(|e| match e {
                Expr::Jump(chain) => Some(chain.as_str()),
                _ => None,
            });
        from_maps.chain(from_rules).collect()
    }

    proptest! {
        #[test]
        fn render_ignores_input_order(mut entries in prop::collection::vec(arb_entry(), 0..12), seed in any::<u64>()) {
            let first = render(&entries, MarkBit::DEFAULT);
            let len = entries.len();
            if len > 1 {
                for i in 0..len {
                    let j = ((seed >> (i % 64)) as usize ^ i.wrapping_mul(31)) % len;
                    entries.swap(i, j);
                }
            }
            prop_assert_eq!(render(&entries, MarkBit::DEFAULT), first);
        }

        #[test]
        fn kept_entries_are_one_to_one_and_fully_wired(entries in prop::collection::vec(arb_entry(), 0..12)) {
            let ruleset = render(&entries, MarkBit::DEFAULT);
            let (kept, dropped) = arrange(&entries);
            // Every input entry is either kept or reported (or an exact duplicate of a kept one).
            for entry in &entries {
                prop_assert!(kept.contains(&entry) || dropped.iter().any(|c| &c.dropped == entry));
            }
            let vips: BTreeSet<_> = kept.iter().map(|e| e.key()).collect();
            let targets: BTreeSet<_> = kept.iter().map(|e| (e.node_ip(), e.protocol(), e.node_port())).collect();
            prop_assert_eq!(vips.len(), kept.len());
            prop_assert_eq!(targets.len(), kept.len());
            // One map element per kept entry towards the node.
            let to_elements: usize = [Family::V4, Family::V6].iter()
                .filter_map(|f| ruleset.map(rewrite_map_name(*f)))
                .map(|m| m.elements.len()).sum();
            prop_assert_eq!(to_elements, kept.len());
            // Every goto and jump lands on a chain that exists, and chain names are unique.
            let names: BTreeSet<&str> = ruleset.chains.iter().map(|c| c.name.as_str()).collect();
            prop_assert_eq!(names.len(), ruleset.chains.len());
            for target in goto_targets(&ruleset) {
                prop_assert!(names.contains(target), "{} is missing", target);
            }
            // Elements of a map all have the map's family.
            for map in &ruleset.maps {
                prop_assert!(map.elements.iter().all(|e| Family::of(e.addr) == map.family));
            }
        }

        #[test]
        fn sources_are_checked_before_anything_is_rewritten(entries in prop::collection::vec(arb_entry(), 0..12)) {
            let ruleset = render(&entries, MarkBit::DEFAULT);
            let (kept, _) = arrange(&entries);
            for entry in kept {
                let vip = ruleset.chain(&vip_chain_name(entry)).unwrap();
                let first = &vip.rules[0].exprs;
                match entry.source_policy() {
                    SourcePolicy::AllowAll => prop_assert!(!first.contains(&Expr::Drop) && !matches!(first[0], Expr::Jump(_))),
                    SourcePolicy::AllowOnly(ranges) => {
                        prop_assert_eq!(&first[..], &[Expr::Jump(allow_chain_name(entry))][..]);
                        let allow = ruleset.chain(&allow_chain_name(entry)).unwrap();
                        prop_assert_eq!(allow.rules.len(), ranges.len() + 1);
                        prop_assert_eq!(&allow.rules.last().unwrap().exprs[..], &[Expr::Counter, Expr::Drop][..]);
                    }
                    SourcePolicy::AllowNone => prop_assert_eq!(vip.rules.len(), 1),
                }
            }
        }
    }
}
