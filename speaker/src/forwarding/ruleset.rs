//! The nftables ruleset ironlb wants in the kernel, as a small value model with an nft-syntax
//! [`Display`](fmt::Display). [`render`](super::render::render) builds it from forward
//! entries; the netlink encoder lowers the same model to kernel expressions.
//!
//! The model is deliberately nft-shaped (a table of verdict maps and chains of rules, each rule
//! a list of expressions) so that its text is what `nft -f` accepts and what an operator
//! recognises in `nft list table inet ironlb`. Loading that text with `nft` sends the kernel
//! exactly the bytes the encoder sends (see the golden test in `netlink_msg`).

use std::fmt;
use std::net::IpAddr;

use ironlb_crds::address::Family;

use super::entry::{L4Protocol, SourceRange};
use super::mark::MarkBit;

/// The table ironlb owns, in the `inet` family (one table for IPv4 and IPv6).
pub const TABLE_NAME: &str = "ironlb";

/// A whole `inet` table. Applying a ruleset replaces everything in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub maps: Vec<VerdictMap>,
    pub chains: Vec<Chain>,
}

/// A named map from `address . protocol . port` to a `goto` into a chain, so that a packet
/// finds its rules with one hash lookup however many entries the node forwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictMap {
    pub name: String,
    /// The family of every key's address.
    pub family: Family,
    pub elements: Vec<MapElement>,
}

/// `addr . protocol . port : goto chain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapElement {
    pub addr: IpAddr,
    pub protocol: L4Protocol,
    pub port: u16,
    pub goto: String,
}

/// A chain: a base chain when `base` is set (attached to a netfilter hook), otherwise a regular
/// chain that rules and maps jump to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// Where and how a base chain hooks into netfilter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub chain_type: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
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
    Postrouting,
}

impl Hook {
    pub fn nft_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
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

/// Which end of a packet a lookup keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `daddr . meta l4proto . th dport`.
    Destination,
    /// `saddr . meta l4proto . th sport`.
    Source,
}

/// How a port write names its header, which decides the checksum the kernel fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortHeader {
    /// `th`: any transport header; no checksum is touched. For UDP datagrams that carry no
    /// checksum (0), which must stay 0.
    Transport,
    /// `tcp`, `udp` or `sctp`: the kernel updates that protocol's checksum (SCTP's CRC32c is
    /// recomputed over the packet).
    Protocol(L4Protocol),
}

/// The expressions ironlb uses. Address expressions imply the family check nft adds in an
/// `inet` table (`meta nfproto`), protocol-specific ones the `meta l4proto` check; the lowering
/// adds both where nft would.
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
    /// `udp checksum 0` when `true`, `udp checksum != 0` when `false`.
    UdpChecksumZero(bool),
    /// `ip daddr . meta l4proto . th dport vmap @map` (or `saddr`/`sport`, or `ip6`).
    Lookup {
        endpoint: Endpoint,
        family: Family,
        map: String,
    },
    /// `ct direction reply`.
    CtDirectionReply,
    /// `meta mark & BIT == BIT`.
    MarkHas(MarkBit),
    /// `meta mark set meta mark | BIT`.
    MarkAdd(MarkBit),
    /// `meta mark set meta mark & ~BIT`.
    MarkClear(MarkBit),
    /// `ct mark & BIT == BIT`.
    CtMarkHas(MarkBit),
    /// `ct mark set ct mark | BIT`.
    CtMarkAdd(MarkBit),
    /// `ip daddr set A` / `ip6 daddr set A`, with the IPv4 header checksum and the L4
    /// pseudo-header checksum updated.
    SetDestAddr(IpAddr),
    /// `ip saddr set A` / `ip6 saddr set A`, checksums as for [`Expr::SetDestAddr`].
    SetSourceAddr(IpAddr),
    /// `tcp dport set N`, or `th dport set N` (see [`PortHeader`]).
    SetDestPort { port: u16, header: PortHeader },
    /// `tcp sport set N`, or `th sport set N`.
    SetSourcePort { port: u16, header: PortHeader },
    /// `counter`.
    Counter,
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `jump CHAIN`.
    Jump(String),
    /// `return`.
    Return,
    /// `dnat ip to A:P` / `dnat ip6 to [A]:P`. ironlb no longer renders it (a DNAT at
    /// prerouting hides the connection from kube-proxy's own NAT); it stays in the vocabulary
    /// so that tests can show why.
    Dnat { addr: IpAddr, port: u16 },
}

impl Ruleset {
    /// Total number of rules in all chains, the `ironlb_forward_rules` gauge.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// Total number of map elements.
    pub fn element_count(&self) -> usize {
        self.maps.iter().map(|m| m.elements.len()).sum()
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn map(&self, name: &str) -> Option<&VerdictMap> {
        self.maps.iter().find(|m| m.name == name)
    }
}

fn family_keyword(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

fn family_of_keyword(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn address_type(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

fn port_header(header: PortHeader) -> &'static str {
    match header {
        PortHeader::Transport => "th",
        PortHeader::Protocol(proto) => proto.nft_name(),
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
            Expr::UdpChecksumZero(true) => f.write_str("udp checksum 0"),
            Expr::UdpChecksumZero(false) => f.write_str("udp checksum != 0"),
            Expr::Lookup {
                endpoint,
                family,
                map,
            } => {
                let (addr, port) = match endpoint {
                    Endpoint::Destination => ("daddr", "dport"),
                    Endpoint::Source => ("saddr", "sport"),
                };
                let ip = family_of_keyword(*family);
                write!(f, "{ip} {addr} . meta l4proto . th {port} vmap @{map}")
            }
            Expr::CtDirectionReply => f.write_str("ct direction reply"),
            Expr::MarkHas(bit) => write!(f, "meta mark & {bit} == {bit}"),
            Expr::MarkAdd(bit) => write!(f, "meta mark set meta mark | {bit}"),
            Expr::MarkClear(bit) => write!(f, "meta mark set meta mark & {:#010x}", bit.others()),
            Expr::CtMarkHas(bit) => write!(f, "ct mark & {bit} == {bit}"),
            Expr::CtMarkAdd(bit) => write!(f, "ct mark set ct mark | {bit}"),
            Expr::SetDestAddr(ip) => write!(f, "{} daddr set {ip}", family_keyword(*ip)),
            Expr::SetSourceAddr(ip) => write!(f, "{} saddr set {ip}", family_keyword(*ip)),
            Expr::SetDestPort { port, header } => {
                write!(f, "{} dport set {port}", port_header(*header))
            }
            Expr::SetSourcePort { port, header } => {
                write!(f, "{} sport set {port}", port_header(*header))
            }
            Expr::Counter => f.write_str("counter"),
            Expr::Accept => f.write_str("accept"),
            Expr::Drop => f.write_str("drop"),
            Expr::Jump(chain) => write!(f, "jump {chain}"),
            Expr::Return => f.write_str("return"),
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

impl fmt::Display for MapElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} . {} . {} : goto {}",
            self.addr, self.protocol, self.port, self.goto
        )
    }
}

impl fmt::Display for VerdictMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tmap {} {{", self.name)?;
        writeln!(
            f,
            "\t\ttype {} . inet_proto . inet_service : verdict",
            address_type(self.family)
        )?;
        // nft refuses an empty element list, so an empty map prints none.
        if !self.elements.is_empty() {
            f.write_str("\t\telements = { ")?;
            for (i, element) in self.elements.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{element}")?;
            }
            writeln!(f, " }}")?;
        }
        writeln!(f, "\t}}")
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        if let Some(base) = &self.base {
            writeln!(
                f,
                "\t\ttype {} hook {} priority {}; policy {};",
                base.chain_type.nft_name(),
                base.hook.nft_name(),
                base.priority,
                base.policy.nft_name()
            )?;
        }
        for rule in &self.rules {
            writeln!(f, "\t\t{rule}")?;
        }
        writeln!(f, "\t}}")
    }
}

/// nft syntax, loadable with `nft -f`: maps first, then chains, each in model order.
impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {} {{", self.table)?;
        let maps = self.maps.iter().map(|m| m as &dyn fmt::Display);
        let chains = self.chains.iter().map(|c| c as &dyn fmt::Display);
        for (i, block) in maps.chain(chains).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{block}")?;
        }
        writeln!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn expressions_print_as_nft_syntax() {
        let bit = MarkBit::new(0x0010_0000).unwrap();
        let cases: Vec<(Expr, &str)> = vec![
            (Expr::DestAddr(ip("2001:db8::1")), "ip6 daddr 2001:db8::1"),
            (
                Expr::SourcePrefix("192.0.2.0/25".parse().unwrap()),
                "ip saddr 192.0.2.0/25",
            ),
            (Expr::UdpChecksumZero(true), "udp checksum 0"),
            (Expr::UdpChecksumZero(false), "udp checksum != 0"),
            (
                Expr::Lookup {
                    endpoint: Endpoint::Source,
                    family: Family::V6,
                    map: "m".into(),
                },
                "ip6 saddr . meta l4proto . th sport vmap @m",
            ),
            (Expr::CtDirectionReply, "ct direction reply"),
            (Expr::MarkHas(bit), "meta mark & 0x00100000 == 0x00100000"),
            (Expr::MarkAdd(bit), "meta mark set meta mark | 0x00100000"),
            (Expr::MarkClear(bit), "meta mark set meta mark & 0xffefffff"),
            (Expr::CtMarkHas(bit), "ct mark & 0x00100000 == 0x00100000"),
            (Expr::CtMarkAdd(bit), "ct mark set ct mark | 0x00100000"),
            (
                Expr::SetSourceAddr(ip("192.0.2.9")),
                "ip saddr set 192.0.2.9",
            ),
            (
                Expr::SetDestPort {
                    port: 30053,
                    header: PortHeader::Transport,
                },
                "th dport set 30053",
            ),
            (
                Expr::SetSourcePort {
                    port: 9,
                    header: PortHeader::Protocol(L4Protocol::Sctp),
                },
                "sctp sport set 9",
            ),
            (Expr::Jump("allow_x".into()), "jump allow_x"),
            (Expr::Return, "return"),
            (
                Expr::Dnat {
                    addr: ip("2001:db8::1"),
                    port: 30053,
                },
                "dnat ip6 to [2001:db8::1]:30053",
            ),
        ];
        for (expr, text) in cases {
            assert_eq!(expr.to_string(), text);
        }
    }

    #[test]
    fn an_empty_map_prints_no_element_list() {
        let ruleset = Ruleset {
            table: "t".into(),
            maps: vec![VerdictMap {
                name: "m".into(),
                family: Family::V4,
                elements: vec![],
            }],
            chains: vec![Chain {
                name: "c".into(),
                base: None,
                rules: vec![],
            }],
        };
        assert_eq!(
            ruleset.to_string(),
            "table inet t {\n\tmap m {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t}\n\n\tchain c {\n\t}\n}\n"
        );
        assert_eq!(ruleset.rule_count(), 0);
        assert_eq!(ruleset.element_count(), 0);
        assert!(ruleset.map("m").is_some() && ruleset.chain("c").is_some());
    }
}
