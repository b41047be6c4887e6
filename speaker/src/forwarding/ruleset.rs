//! The nftables ruleset ironlb wants in the kernel, as a small value model, and [`render`],
//! the pure function from forward entries to that model.
//!
//! The model is deliberately nft-shaped (a table of chains of rules, each rule a list of
//! expressions) so that its [`Display`](fmt::Display) is nft syntax that `nft -f` accepts and
//! that an operator recognises in `nft list table inet ironlb`. The netlink encoder lowers the
//! same model to kernel expressions.
//!
//! What [`render`] produces, for entries sorted by `(VIP, protocol, port)`:
//! - chain `source_ranges` (type filter, hook prerouting, priority -110, only when some entry
//!   restricts sources): per restricted entry, one `accept` rule per allowed prefix, then a
//!   counted `drop`. It runs before DNAT (-100) so it still sees the original destination.
//! - chain `to_nodeports` (type nat, hook prerouting, priority -100): one counted DNAT rule per
//!   entry, `VIP:port/proto → nodeIP:nodePort`. DNAT keeps the client's source address.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::entry::{ForwardEntry, L4Protocol, SourcePolicy, SourceRange};

/// The table ironlb owns, in the `inet` family (one table for IPv4 and IPv6).
pub const TABLE_NAME: &str = "ironlb";
/// The filter chain that enforces `loadBalancerSourceRanges`.
pub const SOURCE_CHAIN: &str = "source_ranges";
/// The nat chain that DNATs VIPs to NodePorts.
pub const DNAT_CHAIN: &str = "to_nodeports";
/// Before DNAT, so filtering sees the VIP as destination.
pub const SOURCE_PRIORITY: i32 = -110;
/// The conventional `dstnat` priority.
pub const DNAT_PRIORITY: i32 = -100;

/// A whole `inet` table. Applying a ruleset replaces everything in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub chains: Vec<Chain>,
}

/// A base chain attached to a netfilter hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub chain_type: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
}

impl ChainType {
    pub fn nft_name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Output,
}

impl Hook {
    pub fn nft_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Output => "output",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn nft_name(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// A rule: its expressions are evaluated left to right; a match that fails ends the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub exprs: Vec<Expr>,
}

/// The expressions ironlb uses. Address expressions imply the family check nft adds in an
/// `inet` table (`meta nfproto`), and `DestPort` relies on a preceding `L4Proto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `ip daddr A` / `ip6 daddr A`.
    DestAddr(IpAddr),
    /// `ip saddr P` / `ip6 saddr P`.
    SourcePrefix(SourceRange),
    /// `meta l4proto P`.
    L4Proto(L4Protocol),
    /// `th dport N`: the destination port of TCP, UDP and SCTP sits at the same offset.
    DestPort(u16),
    /// `counter`.
    Counter,
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `dnat ip to A:P` / `dnat ip6 to [A]:P`.
    Dnat { addr: IpAddr, port: u16 },
}

impl Ruleset {
    /// Total number of rules, the `ironlb_forward_rules` gauge.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// Two entries claimed the same `VIP:port/protocol`; `kept` is the one rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryConflict {
    pub kept: ForwardEntry,
    pub dropped: ForwardEntry,
}

/// Sorts entries into their rendering order and splits off those whose key is taken.
///
/// The tie-break is deterministic (the entry that sorts first wins) so that every speaker and
/// every re-render agree; conflicts are returned for the caller to report.
fn arrange(entries: &[ForwardEntry]) -> (Vec<&ForwardEntry>, Vec<EntryConflict>) {
    let mut sorted: Vec<&ForwardEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        a.key()
            .cmp(&b.key())
            .then_with(|| a.node_ip().cmp(&b.node_ip()))
            .then_with(|| a.node_port().cmp(&b.node_port()))
            .then_with(|| a.source_ranges().cmp(b.source_ranges()))
    });
    let mut kept: BTreeMap<_, &ForwardEntry> = BTreeMap::new();
    let mut conflicts = Vec::new();
    let mut order = Vec::new();
    let mut previous: Option<&ForwardEntry> = None;
    for entry in sorted {
        // The sort compares every field, so exact duplicates are adjacent.
        if previous == Some(entry) {
            continue;
        }
        previous = Some(entry);
        match kept.get(&entry.key()) {
            None => {
                kept.insert(entry.key(), entry);
                order.push(entry);
            }
            Some(first) => conflicts.push(EntryConflict {
                kept: (*first).clone(),
                dropped: entry.clone(),
            }),
        }
    }
    (order, conflicts)
}

/// Entries that [`render`] skipped because an earlier entry has the same `VIP:port/protocol`
/// with a different target or source ranges. Exact duplicates are not conflicts.
pub fn conflicts(entries: &[ForwardEntry]) -> Vec<EntryConflict> {
    arrange(entries).1
}

/// Renders the ruleset for the entries this node forwards. Deterministic: the output depends
/// only on the set of entries, not on their order. No entries give an empty table; the caller
/// removes the table instead of applying that.
pub fn render(entries: &[ForwardEntry]) -> Ruleset {
    let (entries, _) = arrange(entries);
    let mut source_rules = Vec::new();
    let mut dnat_rules = Vec::new();
    for entry in entries {
        let destination = || {
            vec![
                Expr::DestAddr(entry.vip()),
                Expr::L4Proto(entry.protocol()),
                Expr::DestPort(entry.port()),
            ]
        };
        match entry.source_policy() {
            SourcePolicy::AllowAll => {}
            SourcePolicy::AllowOnly(ranges) => {
                for range in ranges {
                    let mut exprs = destination();
                    exprs.extend([Expr::SourcePrefix(*range), Expr::Accept]);
                    source_rules.push(Rule { exprs });
                }
                let mut exprs = destination();
                exprs.extend([Expr::Counter, Expr::Drop]);
                source_rules.push(Rule { exprs });
            }
            SourcePolicy::AllowNone => {
                let mut exprs = destination();
                exprs.extend([Expr::Counter, Expr::Drop]);
                source_rules.push(Rule { exprs });
            }
        }
        let mut exprs = destination();
        exprs.extend([
            Expr::Counter,
            Expr::Dnat {
                addr: entry.node_ip(),
                port: entry.node_port(),
            },
        ]);
        dnat_rules.push(Rule { exprs });
    }

    let mut chains = Vec::new();
    if !source_rules.is_empty() {
        chains.push(Chain {
            name: SOURCE_CHAIN.to_string(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: SOURCE_PRIORITY,
            policy: Policy::Accept,
            rules: source_rules,
        });
    }
    if !dnat_rules.is_empty() {
        chains.push(Chain {
            name: DNAT_CHAIN.to_string(),
            chain_type: ChainType::Nat,
            hook: Hook::Prerouting,
            priority: DNAT_PRIORITY,
            policy: Policy::Accept,
            rules: dnat_rules,
        });
    }
    Ruleset {
        table: TABLE_NAME.to_string(),
        chains,
    }
}

fn family_keyword(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::DestAddr(ip) => write!(f, "{} daddr {ip}", family_keyword(*ip)),
            Expr::SourcePrefix(range) => {
                write!(f, "{} saddr {range}", family_keyword(range.network()))
            }
            Expr::L4Proto(proto) => write!(f, "meta l4proto {proto}"),
            Expr::DestPort(port) => write!(f, "th dport {port}"),
            Expr::Counter => f.write_str("counter"),
            Expr::Accept => f.write_str("accept"),
            Expr::Drop => f.write_str("drop"),
            Expr::Dnat {
                addr: IpAddr::V4(ip),
                port,
            } => write!(f, "dnat ip to {ip}:{port}"),
            Expr::Dnat {
                addr: IpAddr::V6(ip),
                port,
            } => write!(f, "dnat ip6 to [{ip}]:{port}"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, expr) in self.exprs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{expr}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        writeln!(
            f,
            "\t\ttype {} hook {} priority {}; policy {};",
            self.chain_type.nft_name(),
            self.hook.nft_name(),
            self.priority,
            self.policy.nft_name()
        )?;
        for rule in &self.rules {
            writeln!(f, "\t\t{rule}")?;
        }
        writeln!(f, "\t}}")
    }
}

/// nft syntax, loadable with `nft -f`.
impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {} {{", self.table)?;
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{chain}")?;
        }
        writeln!(f, "}}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn mk(
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

    /// Two entries whose rendering is the golden text below and the golden netlink batch.
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
                "198.51.100.10",
                L4Protocol::Tcp,
                80,
                "192.0.2.1",
                30080,
                &["203.0.113.0/24", "192.0.2.128/25", "2001:db8:1::/48"],
            ),
        ]
    }

    /// The same text is the source of the netlink golden bytes (see netlink_msg tests).
    const GOLDEN_TEXT: &str = "\
table inet ironlb {
\tchain source_ranges {
\t\ttype filter hook prerouting priority -110; policy accept;
\t\tip daddr 198.51.100.10 meta l4proto tcp th dport 80 ip saddr 192.0.2.128/25 accept
\t\tip daddr 198.51.100.10 meta l4proto tcp th dport 80 ip saddr 203.0.113.0/24 accept
\t\tip daddr 198.51.100.10 meta l4proto tcp th dport 80 counter drop
\t}

\tchain to_nodeports {
\t\ttype nat hook prerouting priority -100; policy accept;
\t\tip daddr 198.51.100.10 meta l4proto tcp th dport 80 counter dnat ip to 192.0.2.1:30080
\t\tip6 daddr 2001:db8::10 meta l4proto udp th dport 53 counter dnat ip6 to [2001:db8::1]:30053
\t}
}
";

    #[test]
    fn renders_filter_before_dnat_in_nft_syntax() {
        let ruleset = render(&golden_entries());
        assert_eq!(ruleset.to_string(), GOLDEN_TEXT);
        assert_eq!(ruleset.rule_count(), 5);
        let filter = ruleset.chain(SOURCE_CHAIN).unwrap();
        let nat = ruleset.chain(DNAT_CHAIN).unwrap();
        assert!(filter.priority < nat.priority, "filtering must see the VIP");
        assert_eq!(filter.chain_type, ChainType::Filter);
        assert_eq!(nat.chain_type, ChainType::Nat);
    }

    #[test]
    fn no_entries_render_an_empty_table() {
        let ruleset = render(&[]);
        assert_eq!(ruleset.table, TABLE_NAME);
        assert!(ruleset.chains.is_empty());
        assert_eq!(ruleset.to_string(), "table inet ironlb {\n}\n");
    }

    #[test]
    fn unrestricted_entries_need_no_filter_chain() {
        let ruleset = render(&[mk(
            "198.51.100.1",
            L4Protocol::Sctp,
            9,
            "192.0.2.2",
            30009,
            &[],
        )]);
        assert_eq!(ruleset.chains.len(), 1);
        assert_eq!(
            ruleset.chains[0].rules[0].to_string(),
            "ip daddr 198.51.100.1 meta l4proto sctp th dport 9 counter dnat ip to 192.0.2.2:30009"
        );
    }

    #[test]
    fn ranges_of_the_other_family_only_drop_everyone() {
        let ruleset = render(&[mk(
            "198.51.100.1",
            L4Protocol::Tcp,
            443,
            "192.0.2.2",
            30443,
            &["2001:db8::/32"],
        )]);
        let filter = ruleset.chain(SOURCE_CHAIN).unwrap();
        assert_eq!(filter.rules.len(), 1);
        assert_eq!(
            filter.rules[0].to_string(),
            "ip daddr 198.51.100.1 meta l4proto tcp th dport 443 counter drop"
        );
    }

    #[test]
    fn conflicting_entries_keep_the_first_in_sort_order() {
        let a = mk("198.51.100.1", L4Protocol::Tcp, 80, "192.0.2.1", 30001, &[]);
        let b = mk("198.51.100.1", L4Protocol::Tcp, 80, "192.0.2.1", 30002, &[]);
        let c = mk("198.51.100.1", L4Protocol::Udp, 80, "192.0.2.1", 30003, &[]);
        let entries = vec![b.clone(), c.clone(), a.clone(), a.clone()];
        let ruleset = render(&entries);
        let nat = ruleset.chain(DNAT_CHAIN).unwrap();
        assert_eq!(nat.rules.len(), 2);
        assert!(nat.rules[0].to_string().ends_with("192.0.2.1:30001"));
        assert!(nat.rules[1].to_string().contains("udp"));
        assert_eq!(
            conflicts(&entries),
            vec![EntryConflict {
                kept: a.clone(),
                dropped: b
            }]
        );
        assert!(conflicts(&[a.clone(), a, c]).is_empty());
    }

    fn arb_entry() -> impl Strategy<Value = ForwardEntry> {
        let v4 = (
            1u8..=3,
            1u16..=4,
            prop::sample::select(vec![L4Protocol::Tcp, L4Protocol::Udp, L4Protocol::Sctp]),
            30000u16..30010,
            prop::collection::vec((0u8..=255, 20u8..=32), 0..3),
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
        let v6 = (1u8..=3, 1u16..=4, 30000u16..30010).prop_map(|(host, port, np)| {
            ForwardEntry::new(
                ip(&format!("2001:db8::{host}")),
                L4Protocol::Tcp,
                port,
                ip("2001:db8::1"),
                np,
                vec![],
            )
            .unwrap()
        });
        prop_oneof![v4, v6]
    }

    proptest! {
        #[test]
        fn render_ignores_input_order(mut entries in prop::collection::vec(arb_entry(), 0..12), seed in any::<u64>()) {
            let first = render(&entries);
            // A cheap deterministic shuffle driven by the seed.
            let len = entries.len();
            if len > 1 {
                for i in 0..len {
                    let j = ((seed >> (i % 64)) as usize ^ i.wrapping_mul(31)) % len;
                    entries.swap(i, j);
                }
            }
            prop_assert_eq!(render(&entries), first);
        }

        #[test]
        fn every_distinct_key_gets_exactly_one_dnat_rule(entries in prop::collection::vec(arb_entry(), 0..12)) {
            let ruleset = render(&entries);
            let keys: std::collections::BTreeSet<_> = entries.iter().map(|e| e.key()).collect();
            let dnat = ruleset.chain(DNAT_CHAIN).map_or(0, |c| c.rules.len());
            prop_assert_eq!(dnat, keys.len());
            prop_assert_eq!(conflicts(&entries).len() + keys.len(), {
                let mut distinct = entries.clone();
                distinct.sort_by(|a, b| a.key().cmp(&b.key()).then_with(|| a.node_port().cmp(&b.node_port())).then_with(|| a.source_ranges().cmp(b.source_ranges())));
                distinct.dedup();
                distinct.len()
            });
        }

        #[test]
        fn filter_rules_follow_source_policy(entries in prop::collection::vec(arb_entry(), 0..12)) {
            let ruleset = render(&entries);
            let (kept, _) = arrange(&entries);
            let expected: usize = kept.iter().map(|e| match e.source_policy() {
                SourcePolicy::AllowAll => 0,
                SourcePolicy::AllowOnly(r) => r.len() + 1,
                SourcePolicy::AllowNone => 1,
            }).sum();
            let filter = ruleset.chain(SOURCE_CHAIN).map_or(0, |c| c.rules.len());
            prop_assert_eq!(filter, expected);
            // Every restricted destination ends with a drop after its accepts.
            if let Some(chain) = ruleset.chain(SOURCE_CHAIN) {
                prop_assert_eq!(chain.rules.last().and_then(|r| r.exprs.last()), Some(&Expr::Drop));
            }
        }
    }
}
