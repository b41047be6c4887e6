//! What the node forwards: one [`ForwardEntry`] per `VIP:port/protocol` this node owns.
//!
//! An entry is validated when it is built, so the renderer never has to guess: the VIP and the
//! node IP are of one family and no port is zero. `loadBalancerSourceRanges` arrive as
//! [`SourceRange`]s parsed the way Kubernetes parses them (host bits are masked, as the API
//! server accepts `192.0.2.5/24`).
//!
//! Source ranges of both families may be listed on a dual-stack Service. An entry only uses the
//! ranges of its own family, and a non-empty list with none of its family allows no source at
//! all: the user asked for a restriction, so the safe reading is "nobody from that family".

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ironlb_crds::address::{Family, ip_to_u128, u128_to_ip};

/// Why an entry or a source range was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("VIP {vip} and node IP {node_ip} are of different families")]
    FamilyMismatch { vip: IpAddr, node_ip: IpAddr },
    #[error("port of VIP {vip} is 0")]
    ZeroPort { vip: IpAddr },
    #[error("node port for VIP {vip} port {port} is 0")]
    ZeroNodePort { vip: IpAddr, port: u16 },
    #[error("VIP {vip} is not a unicast address")]
    NotUnicast { vip: IpAddr },
    #[error("source range {value:?} is not a CIDR: {reason}")]
    BadSourceRange { value: String, reason: &'static str },
    #[error("protocol {0:?} is not one of TCP, UDP, SCTP")]
    UnknownProtocol(String),
}

/// A transport protocol a Service port can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl L4Protocol {
    /// The IANA protocol number, as `meta l4proto` sees it.
    pub fn number(self) -> u8 {
        match self {
            L4Protocol::Tcp => 6,
            L4Protocol::Udp => 17,
            L4Protocol::Sctp => 132,
        }
    }

    /// The lowercase name nft uses.
    pub fn nft_name(self) -> &'static str {
        match self {
            L4Protocol::Tcp => "tcp",
            L4Protocol::Udp => "udp",
            L4Protocol::Sctp => "sctp",
        }
    }
}

impl FromStr for L4Protocol {
    type Err = EntryError;

    /// Accepts the Kubernetes spellings `TCP`, `UDP` and `SCTP` (case-insensitively).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_uppercase().as_str() {
            "TCP" => Ok(L4Protocol::Tcp),
            "UDP" => Ok(L4Protocol::Udp),
            "SCTP" => Ok(L4Protocol::Sctp),
            _ => Err(EntryError::UnknownProtocol(value.to_string())),
        }
    }
}

impl fmt::Display for L4Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nft_name())
    }
}

/// An IP prefix: a network address with its host bits cleared, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRange {
    network: IpAddr,
    prefix_len: u8,
}

impl SourceRange {
    /// Builds a prefix, clearing host bits. `None` when the length exceeds the family's width.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let family = Family::of(addr);
        let bits = family_bits(family);
        if prefix_len > bits {
            return None;
        }
        let mask = prefix_mask(bits, prefix_len);
        let network = u128_to_ip(family, ip_to_u128(addr) & mask)?;
        Some(SourceRange {
            network,
            prefix_len,
        })
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn family(&self) -> Family {
        Family::of(self.network)
    }

    /// True when the prefix is a single host (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.prefix_len == family_bits(self.family())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if Family::of(ip) != self.family() {
            return false;
        }
        let mask = prefix_mask(family_bits(self.family()), self.prefix_len);
        ip_to_u128(ip) & mask == ip_to_u128(self.network)
    }
}

/// Address width in bits.
pub(crate) fn family_bits(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

/// The mask of the top `prefix_len` bits of a `bits`-wide address, right-aligned in a u128.
fn prefix_mask(bits: u8, prefix_len: u8) -> u128 {
    let width_mask: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let host_bits = u32::from(bits - prefix_len);
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    width_mask & !host_mask
}

impl FromStr for SourceRange {
    type Err = EntryError;

    /// Parses `ADDR/LEN` as Kubernetes validates `loadBalancerSourceRanges`: surrounding
    /// whitespace is ignored (kube-proxy trims it too) and host bits are masked.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |reason| EntryError::BadSourceRange {
            value: value.to_string(),
            reason,
        };
        let trimmed = value.trim();
        let (addr, len) = trimmed
            .split_once('/')
            .ok_or_else(|| bad("missing /prefix-length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("invalid IP address"))?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("prefix length is not a number"));
        }
        let too_long = || bad("prefix length is longer than the address");
        let len: u16 = len
            .parse()
            .map_err(|_| bad("prefix length is not a number"))?;
        let len = u8::try_from(len).map_err(|_| too_long())?;
        SourceRange::new(addr, len).ok_or_else(too_long)
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// One forwarded port: `vip:port/protocol` goes to `node_ip:node_port`, from the allowed
/// sources only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ForwardEntry {
    vip: IpAddr,
    protocol: L4Protocol,
    port: u16,
    node_ip: IpAddr,
    node_port: u16,
    source_ranges: Vec<SourceRange>,
}

impl ForwardEntry {
    /// Validates and builds an entry. `source_ranges` may hold both families (see module docs);
    /// an empty list allows every source.
    pub fn new(
        vip: IpAddr,
        protocol: L4Protocol,
        port: u16,
        node_ip: IpAddr,
        node_port: u16,
        source_ranges: Vec<SourceRange>,
    ) -> Result<Self, EntryError> {
        if Family::of(vip) != Family::of(node_ip) {
            return Err(EntryError::FamilyMismatch { vip, node_ip });
        }
        if vip.is_unspecified() || vip.is_multicast() || is_broadcast(vip) {
            return Err(EntryError::NotUnicast { vip });
        }
        if port == 0 {
            return Err(EntryError::ZeroPort { vip });
        }
        if node_port == 0 {
            return Err(EntryError::ZeroNodePort { vip, port });
        }
        let mut source_ranges = source_ranges;
        source_ranges.sort();
        source_ranges.dedup();
        Ok(ForwardEntry {
            vip,
            protocol,
            port,
            node_ip,
            node_port,
            source_ranges,
        })
    }

    pub fn vip(&self) -> IpAddr {
        self.vip
    }

    pub fn protocol(&self) -> L4Protocol {
        self.protocol
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn node_ip(&self) -> IpAddr {
        self.node_ip
    }

    pub fn node_port(&self) -> u16 {
        self.node_port
    }

    /// All configured ranges, sorted and without duplicates, of both families.
    pub fn source_ranges(&self) -> &[SourceRange] {
        &self.source_ranges
    }

    pub fn family(&self) -> Family {
        Family::of(self.vip)
    }

    /// What the kernel must enforce for this entry's family.
    pub fn source_policy(&self) -> SourcePolicy<'_> {
        if self.source_ranges.is_empty() {
            return SourcePolicy::AllowAll;
        }
        let first = self
            .source_ranges
            .iter()
            .position(|r| r.family() == self.family());
        match first {
            None => SourcePolicy::AllowNone,
            Some(start) => {
                let len = self.source_ranges[start..]
                    .iter()
                    .take_while(|r| r.family() == self.family())
                    .count();
                SourcePolicy::AllowOnly(&self.source_ranges[start..start + len])
            }
        }
    }

    /// The key that must be unique on a node: two entries with one key would fight over the
    /// same packets.
    pub fn key(&self) -> (IpAddr, L4Protocol, u16) {
        (self.vip, self.protocol, self.port)
    }
}

/// Which sources may reach an entry, for the entry's own family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePolicy<'a> {
    AllowAll,
    /// Sorted, non-empty, all of the entry's family.
    AllowOnly(&'a [SourceRange]),
    AllowNone,
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

impl fmt::Display for ForwardEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.node_ip {
            IpAddr::V4(ip) => format!("{ip}:{}", self.node_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.node_port),
        };
        match self.vip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}/{} -> {target}", self.port, self.protocol),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}/{} -> {target}", self.port, self.protocol),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(s: &str) -> SourceRange {
        s.parse().unwrap()
    }

    #[test]
    fn source_range_masks_host_bits() {
        let r = range("192.0.2.77/24");
        assert_eq!(r.network(), ip("192.0.2.0"));
        assert_eq!(r.prefix_len(), 24);
        assert_eq!(r.to_string(), "192.0.2.0/24");
        let r = range("2001:db8::1:2/33");
        assert_eq!(r.to_string(), "2001:db8::/33");
        assert_eq!(range("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(range("::/0").to_string(), "::/0");
        assert_eq!(range(" 203.0.113.9/32 ").to_string(), "203.0.113.9/32");
    }

    #[test]
    fn source_range_rejects_malformed_values() {
        let cases = [
            ("", "missing /prefix-length"),
            ("192.0.2.0", "missing /prefix-length"),
            ("192.0.2.0/", "prefix length is not a number"),
            ("192.0.2.0/+8", "prefix length is not a number"),
            ("192.0.2.0/-1", "prefix length is not a number"),
            ("192.0.2.0/0024", "prefix length is not a number"),
            ("192.0.2.0/2x", "prefix length is not a number"),
            ("192.0.2.0/33", "prefix length is longer than the address"),
            ("2001:db8::/129", "prefix length is longer than the address"),
            ("2001:db8::/999", "prefix length is longer than the address"),
            ("192.0.2/24", "invalid IP address"),
            ("192.0.2.256/24", "invalid IP address"),
            ("/24", "invalid IP address"),
            ("example.com/24", "invalid IP address"),
            ("192.0.2.0/24/1", "prefix length is not a number"),
        ];
        for (value, reason) in cases {
            assert_eq!(
                value.parse::<SourceRange>(),
                Err(EntryError::BadSourceRange {
                    value: value.to_string(),
                    reason
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn source_range_contains() {
        let r = range("203.0.113.0/25");
        assert!(r.contains(ip("203.0.113.0")));
        assert!(r.contains(ip("203.0.113.127")));
        assert!(!r.contains(ip("203.0.113.128")));
        assert!(!r.contains(ip("2001:db8::1")));
        assert!(range("::/0").contains(ip("2001:db8::1")));
        assert!(!range("::/0").contains(ip("192.0.2.1")));
    }

    #[test]
    fn protocol_parses_kubernetes_spellings() {
        assert_eq!("TCP".parse(), Ok(L4Protocol::Tcp));
        assert_eq!("udp".parse(), Ok(L4Protocol::Udp));
        assert_eq!("SCTP".parse(), Ok(L4Protocol::Sctp));
        assert_eq!(
            "ICMP".parse::<L4Protocol>(),
            Err(EntryError::UnknownProtocol("ICMP".into()))
        );
        assert!("".parse::<L4Protocol>().is_err());
    }

    #[test]
    fn entry_validation() {
        let v4 = ip("198.51.100.10");
        let node4 = ip("192.0.2.1");
        let node6 = ip("2001:db8::1");
        assert_eq!(
            ForwardEntry::new(v4, L4Protocol::Tcp, 80, node6, 30080, vec![]),
            Err(EntryError::FamilyMismatch {
                vip: v4,
                node_ip: node6
            })
        );
        assert_eq!(
            ForwardEntry::new(v4, L4Protocol::Tcp, 0, node4, 30080, vec![]),
            Err(EntryError::ZeroPort { vip: v4 })
        );
        assert_eq!(
            ForwardEntry::new(v4, L4Protocol::Tcp, 80, node4, 0, vec![]),
            Err(EntryError::ZeroNodePort { vip: v4, port: 80 })
        );
        for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255"] {
            assert_eq!(
                ForwardEntry::new(ip(bad), L4Protocol::Tcp, 80, node4, 30080, vec![]),
                Err(EntryError::NotUnicast { vip: ip(bad) })
            );
        }
        for bad in ["::", "ff02::1"] {
            assert!(ForwardEntry::new(ip(bad), L4Protocol::Udp, 53, node6, 30053, vec![]).is_err());
        }
        assert!(ForwardEntry::new(v4, L4Protocol::Sctp, 9, node4, 30009, vec![]).is_ok());
    }

    #[test]
    fn source_policy_uses_own_family_only() {
        let mk = |ranges: &[&str]| {
            ForwardEntry::new(
                ip("198.51.100.10"),
                L4Protocol::Tcp,
                80,
                ip("192.0.2.1"),
                30080,
                ranges.iter().map(|r| range(r)).collect(),
            )
            .unwrap()
        };
        assert_eq!(mk(&[]).source_policy(), SourcePolicy::AllowAll);
        assert_eq!(
            mk(&["2001:db8::/32"]).source_policy(),
            SourcePolicy::AllowNone
        );
        let entry = mk(&[
            "2001:db8::/32",
            "203.0.113.0/24",
            "192.0.2.0/25",
            "203.0.113.0/24",
        ]);
        assert_eq!(
            entry.source_policy(),
            SourcePolicy::AllowOnly(&[range("192.0.2.0/25"), range("203.0.113.0/24")])
        );
    }

    #[test]
    fn entry_display_names_both_ends() {
        let entry = ForwardEntry::new(
            ip("2001:db8::10"),
            L4Protocol::Udp,
            53,
            ip("2001:db8::1"),
            30053,
            vec![],
        )
        .unwrap();
        assert_eq!(
            entry.to_string(),
            "[2001:db8::10]:53/udp -> [2001:db8::1]:30053"
        );
    }
}
