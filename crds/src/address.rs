//! Parsing of `IPAddressPool.spec.addresses` entries into inclusive address ranges.
//!
//! An entry is one of:
//! - a CIDR (`192.0.2.0/24`, `2001:db8::/64`);
//! - a `start-end` range (`192.0.2.10-192.0.2.20`), both ends included;
//! - a bare IP (`192.0.2.7`), a range of one.
//!
//! Decisions a user can rely on:
//! - A CIDR with host bits set (`192.0.2.5/24`) is **rejected**. Silently masking it would hand
//!   out addresses the user never wrote; the error names the network the user probably meant.
//! - Whitespace anywhere in an entry is rejected, so a copy-paste accident is reported instead
//!   of half-parsed.
//! - Both ends of a range must be of one family. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`)
//!   counts as IPv6.
//!
//! Addresses are also exposed as `u128` offsets so that the allocator can do interval
//! arithmetic without ever materialising a range: a /64 costs the same as a /32.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP family. Ordered so that IPv4 sorts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The name Kubernetes uses in `spec.ipFamilies`.
    pub fn k8s_name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The name used in metric labels and pool status (`ipv4`, `ipv6`).
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// Parses a Kubernetes `ipFamilies` entry (`IPv4` or `IPv6`).
    pub fn from_k8s_name(name: &str) -> Option<Family> {
        match name {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.k8s_name())
    }
}

/// Converts an address to its integer value within its family.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Converts an integer back to an address of `family`.
///
/// Returns `None` when the value does not fit the family (above 2^32 - 1 for IPv4).
pub fn u128_to_ip(family: Family, value: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(value)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
    }
}

/// An inclusive range of addresses of one family, with `start <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressRange {
    start: IpAddr,
    end: IpAddr,
}

impl AddressRange {
    /// Builds a range; fails when the ends are of different families or out of order.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, AddressError> {
        if Family::of(start) != Family::of(end) {
            return Err(AddressError::MixedFamilies {
                entry: format!("{start}-{end}"),
            });
        }
        if ip_to_u128(start) > ip_to_u128(end) {
            return Err(AddressError::StartAfterEnd {
                entry: format!("{start}-{end}"),
            });
        }
        Ok(AddressRange { start, end })
    }

    /// A range holding exactly one address.
    pub fn single(ip: IpAddr) -> Self {
        AddressRange { start: ip, end: ip }
    }

    pub fn start(&self) -> IpAddr {
        self.start
    }

    pub fn end(&self) -> IpAddr {
        self.end
    }

    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    pub fn first(&self) -> u128 {
        ip_to_u128(self.start)
    }

    pub fn last(&self) -> u128 {
        ip_to_u128(self.end)
    }

    /// Number of addresses, saturating at `u128::MAX` for the whole IPv6 space.
    pub fn len(&self) -> u128 {
        (self.last() - self.first()).saturating_add(1)
    }

    /// A range is never empty; this exists for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family() && (self.first()..=self.last()).contains(&ip_to_u128(ip))
    }

    /// True when the two ranges share at least one address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.family() == other.family()
            && self.first() <= other.last()
            && other.first() <= self.last()
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Why an address entry was rejected. Every message quotes the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address entry is empty")]
    Empty,
    #[error("address entry {entry:?} contains whitespace; write it without spaces")]
    Whitespace { entry: String },
    #[error("{part:?} in address entry {entry:?} is not a valid IP address")]
    BadIp { entry: String, part: String },
    #[error("prefix length {prefix:?} in {entry:?} is not a number from 0 to {max}")]
    BadPrefix {
        entry: String,
        prefix: String,
        max: u8,
    },
    #[error(
        "CIDR {entry:?} has host bits set; write its network {network} or a start-end range instead"
    )]
    HostBitsSet { entry: String, network: String },
    #[error("range {entry:?} starts after it ends")]
    StartAfterEnd { entry: String },
    #[error("range {entry:?} mixes IPv4 and IPv6")]
    MixedFamilies { entry: String },
}

/// Parses one `spec.addresses` entry. See the module docs for the accepted forms.
pub fn parse_address_entry(entry: &str) -> Result<AddressRange, AddressError> {
    if entry.is_empty() {
        return Err(AddressError::Empty);
    }
    if entry.chars().any(char::is_whitespace) {
        return Err(AddressError::Whitespace {
            entry: entry.to_string(),
        });
    }
    if let Some((ip, prefix)) = entry.split_once('/') {
        return parse_cidr(entry, ip, prefix);
    }
    if let Some((start, end)) = entry.split_once('-') {
        let start = parse_ip(entry, start)?;
        let end = parse_ip(entry, end)?;
        return AddressRange::new(start, end).map_err(|err| match err {
            AddressError::MixedFamilies { .. } => AddressError::MixedFamilies {
                entry: entry.to_string(),
            },
            _ => AddressError::StartAfterEnd {
                entry: entry.to_string(),
            },
        });
    }
    parse_ip(entry, entry).map(AddressRange::single)
}

fn parse_ip(entry: &str, part: &str) -> Result<IpAddr, AddressError> {
    part.parse().map_err(|_| AddressError::BadIp {
        entry: entry.to_string(),
        part: part.to_string(),
    })
}

fn parse_cidr(entry: &str, ip: &str, prefix: &str) -> Result<AddressRange, AddressError> {
    let ip = parse_ip(entry, ip)?;
    let family = Family::of(ip);
    let max = family.bits();
    let bad_prefix = || AddressError::BadPrefix {
        entry: entry.to_string(),
        prefix: prefix.to_string(),
        max,
    };
    // `u8::from_str` accepts a leading '+', which no CIDR notation allows.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_prefix());
    }
    let len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
    if len > max {
        return Err(bad_prefix());
    }
    let host_bits = u32::from(max - len);
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let value = ip_to_u128(ip);
    let network = value & !host_mask;
    if network != value {
        let network_ip = u128_to_ip(family, network).unwrap_or(ip);
        return Err(AddressError::HostBitsSet {
            entry: entry.to_string(),
            network: format!("{network_ip}/{len}"),
        });
    }
    let start = u128_to_ip(family, network).unwrap_or(ip);
    let end = u128_to_ip(family, network | host_mask).unwrap_or(ip);
    Ok(AddressRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(a: &str, b: &str) -> AddressRange {
        AddressRange::new(ip(a), ip(b)).unwrap()
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("192.0.2.0/24", range("192.0.2.0", "192.0.2.255")),
            ("192.0.2.240/28", range("192.0.2.240", "192.0.2.255")),
            ("192.0.2.7/32", range("192.0.2.7", "192.0.2.7")),
            ("0.0.0.0/0", range("0.0.0.0", "255.255.255.255")),
            ("192.0.2.10-192.0.2.20", range("192.0.2.10", "192.0.2.20")),
            ("192.0.2.10-192.0.2.10", range("192.0.2.10", "192.0.2.10")),
            ("192.0.2.7", range("192.0.2.7", "192.0.2.7")),
            (
                "2001:db8::/64",
                range("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
            ),
            (
                "2001:db8::1-2001:db8::ff",
                range("2001:db8::1", "2001:db8::ff"),
            ),
            ("2001:db8::5", range("2001:db8::5", "2001:db8::5")),
            (
                "::/0",
                range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ),
        ];
        for (entry, want) in cases {
            assert_eq!(parse_address_entry(entry), Ok(want), "{entry}");
        }
    }

    #[test]
    fn rejected_forms_name_the_problem() {
        use AddressError::*;
        let cases: Vec<(&str, AddressError)> = vec![
            ("", Empty),
            (
                " 192.0.2.1",
                Whitespace {
                    entry: " 192.0.2.1".into(),
                },
            ),
            (
                "192.0.2.1 - 192.0.2.5",
                Whitespace {
                    entry: "192.0.2.1 - 192.0.2.5".into(),
                },
            ),
            (
                "192.0.2.1\t",
                Whitespace {
                    entry: "192.0.2.1\t".into(),
                },
            ),
            (
                "192.0.2.256",
                BadIp {
                    entry: "192.0.2.256".into(),
                    part: "192.0.2.256".into(),
                },
            ),
            (
                "banana",
                BadIp {
                    entry: "banana".into(),
                    part: "banana".into(),
                },
            ),
            (
                "192.0.2.1-",
                BadIp {
                    entry: "192.0.2.1-".into(),
                    part: "".into(),
                },
            ),
            (
                "192.0.2.1-192.0.2.2-192.0.2.3",
                BadIp {
                    entry: "192.0.2.1-192.0.2.2-192.0.2.3".into(),
                    part: "192.0.2.2-192.0.2.3".into(),
                },
            ),
            (
                "192.0.2.0/33",
                BadPrefix {
                    entry: "192.0.2.0/33".into(),
                    prefix: "33".into(),
                    max: 32,
                },
            ),
            (
                "192.0.2.0/",
                BadPrefix {
                    entry: "192.0.2.0/".into(),
                    prefix: "".into(),
                    max: 32,
                },
            ),
            (
                "192.0.2.0/+24",
                BadPrefix {
                    entry: "192.0.2.0/+24".into(),
                    prefix: "+24".into(),
                    max: 32,
                },
            ),
            (
                "2001:db8::/129",
                BadPrefix {
                    entry: "2001:db8::/129".into(),
                    prefix: "129".into(),
                    max: 128,
                },
            ),
            (
                "192.0.2.0/24/8",
                BadPrefix {
                    entry: "192.0.2.0/24/8".into(),
                    prefix: "24/8".into(),
                    max: 32,
                },
            ),
            (
                "192.0.2.5/24",
                HostBitsSet {
                    entry: "192.0.2.5/24".into(),
                    network: "192.0.2.0/24".into(),
                },
            ),
            (
                "2001:db8::1/64",
                HostBitsSet {
                    entry: "2001:db8::1/64".into(),
                    network: "2001:db8::/64".into(),
                },
            ),
            (
                "192.0.2.20-192.0.2.10",
                StartAfterEnd {
                    entry: "192.0.2.20-192.0.2.10".into(),
                },
            ),
            (
                "192.0.2.1-2001:db8::1",
                MixedFamilies {
                    entry: "192.0.2.1-2001:db8::1".into(),
                },
            ),
        ];
        for (entry, want) in cases {
            assert_eq!(parse_address_entry(entry), Err(want), "{entry:?}");
        }
    }

    #[test]
    fn error_messages_quote_the_entry() {
        let err = parse_address_entry("192.0.2.5/24").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR \"192.0.2.5/24\" has host bits set; write its network 192.0.2.0/24 or a start-end range instead"
        );
        let err = parse_address_entry("10.0.0.9-10.0.0.1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "range \"10.0.0.9-10.0.0.1\" starts after it ends"
        );
    }

    #[test]
    fn lengths_and_membership() {
        let v6 = parse_address_entry("2001:db8::/64").unwrap();
        assert_eq!(v6.len(), 1u128 << 64);
        assert_eq!(parse_address_entry("::/0").unwrap().len(), u128::MAX);
        let v4 = parse_address_entry("192.0.2.240-192.0.2.250").unwrap();
        assert_eq!(v4.len(), 11);
        assert!(v4.contains(ip("192.0.2.240")));
        assert!(v4.contains(ip("192.0.2.250")));
        assert!(!v4.contains(ip("192.0.2.251")));
        // Same integer value, other family: not contained.
        assert!(!v4.contains(ip("::c000:2f0")));
    }

    #[test]
    fn overlap_is_symmetric_and_family_aware() {
        let a = parse_address_entry("192.0.2.0/28").unwrap();
        let b = parse_address_entry("192.0.2.15-192.0.2.20").unwrap();
        let c = parse_address_entry("192.0.2.16/28").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        assert!(b.overlaps(&c));
        let v6 = parse_address_entry("::c000:200/120").unwrap();
        assert!(!a.overlaps(&v6));
    }

    #[test]
    fn mapped_ipv6_is_ipv6() {
        let r = parse_address_entry("::ffff:192.0.2.1").unwrap();
        assert_eq!(r.family(), Family::V6);
    }

    #[test]
    fn u128_round_trip() {
        for s in [
            "0.0.0.0",
            "192.0.2.1",
            "255.255.255.255",
            "::",
            "2001:db8::1",
        ] {
            let a = ip(s);
            assert_eq!(u128_to_ip(Family::of(a), ip_to_u128(a)), Some(a));
        }
        assert_eq!(u128_to_ip(Family::V4, 1u128 << 32), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(s in "\\PC{0,64}") {
            let _ = parse_address_entry(&s);
        }

        #[test]
        fn display_round_trips(a in proptest::prelude::any::<u32>(), b in proptest::prelude::any::<u32>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let r = AddressRange::new(Ipv4Addr::from(lo).into(), Ipv4Addr::from(hi).into()).unwrap();
            proptest::prop_assert_eq!(parse_address_entry(&r.to_string()), Ok(r));
        }
    }
}
