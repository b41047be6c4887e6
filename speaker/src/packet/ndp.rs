//! ICMPv6 Neighbor Solicitation and Neighbor Advertisement (RFC 4861 sections 4.3, 4.4, 7.1).
//!
//! Validation follows sections 7.1.1 and 7.1.2: hop limit 255, code 0, a correct checksum, at
//! least 24 bytes, a unicast target, no zero-length option, and the rules for unspecified
//! sources and multicast destinations. Options other than the link-layer address the message
//! type defines (source for NS, target for NA) are skipped, as section 4.6 requires; when an
//! option repeats, the first one counts.

use std::net::Ipv6Addr;

use super::ethernet::MacAddr;
use super::ipv6::{self, NEXT_HEADER_ICMPV6};
use super::{Error, Layer, Result, Unsupported, checksum, ensure_len};

pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

pub const OPTION_SOURCE_LINK_ADDR: u8 = 1;
pub const OPTION_TARGET_LINK_ADDR: u8 = 2;

/// Length of an NS or NA without options.
pub const MESSAGE_LEN: usize = 24;
/// Length of a link-layer address option carrying a MAC address.
pub const LINK_ADDR_OPTION_LEN: usize = 8;

const TYPE: usize = 0;
const CODE: usize = 1;
const FLAGS: usize = 4;
const TARGET: usize = 8;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A zero-copy view of an NS or NA message (the IPv6 payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the message is an NS or NA and at least 24 bytes long. Options are checked
    /// as they are read.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let bytes = buffer.as_ref();
        ensure_len(Layer::Icmpv6, bytes, 4)?;
        let kind = bytes[TYPE];
        if kind != TYPE_NEIGHBOR_SOLICIT && kind != TYPE_NEIGHBOR_ADVERT {
            return Err(Error::Unsupported(Unsupported::Icmpv6Type(kind)));
        }
        if bytes.len() < MESSAGE_LEN {
            return Err(Error::NdpTooShort(bytes.len()));
        }
        Ok(Packet { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[CODE]
    }

    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[checksum::FIELD.start], b[checksum::FIELD.start + 1]])
    }

    /// The R, S and O bits of an NA (the reserved field of an NS).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[FLAGS]
    }

    pub fn target(&self) -> Ipv6Addr {
        ipv6::ipv6_at(self.buffer.as_ref(), TARGET)
    }

    /// The options, each checked for a non-zero length that stays inside the message.
    pub fn options(&self) -> Options<'_> {
        Options {
            bytes: self.buffer.as_ref(),
            offset: MESSAGE_LEN,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// One NDP option: its type and its whole encoding (type and length bytes included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdpOption<'a> {
    pub kind: u8,
    /// Offset of the option from the start of the ICMPv6 message.
    pub offset: usize,
    pub bytes: &'a [u8],
}

impl NdpOption<'_> {
    /// The MAC address of a source or target link-layer address option.
    fn link_addr(&self) -> Result<MacAddr> {
        if self.bytes.len() != LINK_ADDR_OPTION_LEN {
            return Err(Error::LinkLayerOptionLength {
                option: self.kind,
                len: self.bytes[1],
            });
        }
        Ok(MacAddr::from_slice(&self.bytes[2..]))
    }
}

/// Iterator over the options of an NDP message. It yields one error and then stops.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<NdpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        // Stop after this item whatever happens; errors are not resumable.
        self.offset = self.bytes.len();
        if rest.len() < 2 {
            return Some(Err(Error::OptionOverrun {
                offset,
                len: 2,
                available: rest.len(),
            }));
        }
        let len = usize::from(rest[1]) * 8;
        if len == 0 {
            return Some(Err(Error::ZeroLengthOption { offset }));
        }
        if len > rest.len() {
            return Some(Err(Error::OptionOverrun {
                offset,
                len,
                available: rest.len(),
            }));
        }
        self.offset = offset + len;
        Some(Ok(NdpOption {
            kind: rest[0],
            offset,
            bytes: &rest[..len],
        }))
    }
}

/// The flags of a Neighbor Advertisement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertFlags {
    pub router: bool,
    pub solicited: bool,
    /// Replace an existing cache entry (the O bit).
    pub override_: bool,
}

impl AdvertFlags {
    fn from_byte(byte: u8) -> AdvertFlags {
        AdvertFlags {
            router: byte & FLAG_ROUTER != 0,
            solicited: byte & FLAG_SOLICITED != 0,
            override_: byte & FLAG_OVERRIDE != 0,
        }
    }

    fn to_byte(self) -> u8 {
        let mut byte = 0;
        if self.router {
            byte |= FLAG_ROUTER;
        }
        if self.solicited {
            byte |= FLAG_SOLICITED;
        }
        if self.override_ {
            byte |= FLAG_OVERRIDE;
        }
        byte
    }
}

/// A validated NS or NA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Repr {
    NeighborSolicit {
        target: Ipv6Addr,
        source_link_addr: Option<MacAddr>,
    },
    NeighborAdvert {
        flags: AdvertFlags,
        target: Ipv6Addr,
        target_link_addr: Option<MacAddr>,
    },
}

impl Repr {
    /// Parses and validates `packet`, which arrived in the IPv6 packet described by `ip`.
    pub fn parse<T: AsRef<[u8]>>(ip: &ipv6::Repr, packet: &Packet<T>) -> Result<Repr> {
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Err(Error::Unsupported(Unsupported::NextHeader(ip.next_header)));
        }
        if ip.hop_limit != 255 {
            return Err(Error::HopLimit(ip.hop_limit));
        }
        if packet.code() != 0 {
            return Err(Error::Icmpv6Code(packet.code()));
        }
        let expected = checksum::icmpv6(ip.src, ip.dst, packet.bytes());
        if !checksum::matches(packet.checksum(), expected) {
            return Err(Error::Icmpv6Checksum {
                found: packet.checksum(),
                expected,
            });
        }
        let target = packet.target();
        if target.is_multicast() {
            return Err(Error::MulticastTarget(target));
        }
        let solicit = packet.msg_type() == TYPE_NEIGHBOR_SOLICIT;
        let wanted = if solicit {
            OPTION_SOURCE_LINK_ADDR
        } else {
            OPTION_TARGET_LINK_ADDR
        };
        let mut link_addr = None;
        for option in packet.options() {
            let option = option?;
            if option.kind == wanted && link_addr.is_none() {
                link_addr = Some(option.link_addr()?);
            }
        }
        if solicit {
            if ip.src.is_unspecified() {
                if !ipv6::is_solicited_node(ip.dst) {
                    return Err(Error::DadNotToSolicitedNode(ip.dst));
                }
                if link_addr.is_some() {
                    return Err(Error::DadWithSourceLinkAddr);
                }
            }
            Ok(Repr::NeighborSolicit {
                target,
                source_link_addr: link_addr,
            })
        } else {
            let flags = AdvertFlags::from_byte(packet.flags());
            if ip.dst.is_multicast() && flags.solicited {
                return Err(Error::SolicitedToMulticast(ip.dst));
            }
            Ok(Repr::NeighborAdvert {
                flags,
                target,
                target_link_addr: link_addr,
            })
        }
    }

    pub fn target(&self) -> Ipv6Addr {
        match *self {
            Repr::NeighborSolicit { target, .. } | Repr::NeighborAdvert { target, .. } => target,
        }
    }

    fn link_addr(&self) -> Option<(u8, MacAddr)> {
        match *self {
            Repr::NeighborSolicit {
                source_link_addr, ..
            } => source_link_addr.map(|mac| (OPTION_SOURCE_LINK_ADDR, mac)),
            Repr::NeighborAdvert {
                target_link_addr, ..
            } => target_link_addr.map(|mac| (OPTION_TARGET_LINK_ADDR, mac)),
        }
    }

    pub fn buffer_len(&self) -> usize {
        MESSAGE_LEN + self.link_addr().map_or(0, |_| LINK_ADDR_OPTION_LEN)
    }

    /// Writes the message, checksummed for `src` to `dst`, into the front of `buffer`, which
    /// must hold [`Repr::buffer_len`] bytes.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buffer: &mut [u8]) {
        let buffer = &mut buffer[..self.buffer_len()];
        let (kind, flags) = match *self {
            Repr::NeighborSolicit { .. } => (TYPE_NEIGHBOR_SOLICIT, 0),
            Repr::NeighborAdvert { flags, .. } => (TYPE_NEIGHBOR_ADVERT, flags.to_byte()),
        };
        buffer[TYPE] = kind;
        buffer[CODE] = 0;
        buffer[checksum::FIELD].fill(0);
        buffer[FLAGS..TARGET].copy_from_slice(&[flags, 0, 0, 0]);
        buffer[TARGET..MESSAGE_LEN].copy_from_slice(&self.target().octets());
        if let Some((option, mac)) = self.link_addr() {
            buffer[MESSAGE_LEN] = option;
            buffer[MESSAGE_LEN + 1] = 1;
            buffer[MESSAGE_LEN + 2..MESSAGE_LEN + 8].copy_from_slice(&mac.0);
        }
        let sum = checksum::icmpv6(src, dst, buffer);
        buffer[checksum::FIELD].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ip(src: &str, dst: &str) -> ipv6::Repr {
        ipv6::Repr {
            src: addr(src),
            dst: addr(dst),
            next_header: NEXT_HEADER_ICMPV6,
            payload_len: 0,
            hop_limit: 255,
        }
    }

    fn solicit(slla: Option<MacAddr>) -> Repr {
        Repr::NeighborSolicit {
            target: addr("2001:db8::2"),
            source_link_addr: slla,
        }
    }

    fn emit(repr: &Repr, ip: &ipv6::Repr) -> Vec<u8> {
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(ip.src, ip.dst, &mut bytes);
        bytes
    }

    /// Recomputes the checksum after a test has edited the message.
    fn reseal(ip: &ipv6::Repr, bytes: &mut [u8]) {
        let sum = checksum::icmpv6(ip.src, ip.dst, bytes);
        bytes[checksum::FIELD].copy_from_slice(&sum.to_be_bytes());
    }

    fn parse(ip: &ipv6::Repr, bytes: &[u8]) -> Result<Repr> {
        Repr::parse(ip, &Packet::new_checked(bytes)?)
    }

    #[test]
    fn solicit_and_advert_round_trip() {
        let header = ip("2001:db8::1", "ff02::1:ff00:2");
        let ns = solicit(Some(MAC_A));
        assert_eq!(parse(&header, &emit(&ns, &header)), Ok(ns));

        let header = ip("2001:db8::2", "2001:db8::1");
        let na = Repr::NeighborAdvert {
            flags: AdvertFlags {
                router: true,
                solicited: true,
                override_: true,
            },
            target: addr("2001:db8::2"),
            target_link_addr: Some(MAC_A),
        };
        let bytes = emit(&na, &header);
        assert_eq!(bytes[FLAGS], 0xe0);
        assert_eq!(parse(&header, &bytes), Ok(na));
    }

    #[test]
    fn truncated_and_too_short() {
        let header = ip("2001:db8::1", "ff02::1:ff00:2");
        let bytes = emit(&solicit(None), &header);
        for len in 0..4 {
            assert_eq!(
                parse(&header, &bytes[..len]),
                Err(Error::Truncated {
                    layer: Layer::Icmpv6,
                    needed: 4,
                    available: len
                })
            );
        }
        for len in 4..MESSAGE_LEN {
            assert_eq!(parse(&header, &bytes[..len]), Err(Error::NdpTooShort(len)));
        }
    }

    #[test]
    fn other_icmpv6_types_are_unsupported() {
        for kind in [1u8, 128, 129, 133, 134, 137, 143] {
            let mut bytes = [0u8; 24];
            bytes[0] = kind;
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::Unsupported(Unsupported::Icmpv6Type(kind))
            );
        }
    }

    #[test]
    fn malformed_fields() {
        let header = ip("2001:db8::1", "ff02::1:ff00:2");
        let good = emit(&solicit(Some(MAC_A)), &header);
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            f(&mut bytes);
            reseal(&header, &mut bytes);
            bytes
        };
        let unknown_then = |tail: &[u8]| {
            let mut bytes = good[..MESSAGE_LEN].to_vec();
            bytes.extend_from_slice(tail);
            reseal(&header, &mut bytes);
            bytes
        };
        let cases: Vec<(&str, Vec<u8>, Error)> = vec![
            ("code 1", edit(&|b| b[CODE] = 1), Error::Icmpv6Code(1)),
            (
                "multicast target",
                edit(&|b| b[TARGET..MESSAGE_LEN].copy_from_slice(&ipv6::ALL_NODES.octets())),
                Error::MulticastTarget(ipv6::ALL_NODES),
            ),
            (
                "zero-length option",
                edit(&|b| b[MESSAGE_LEN + 1] = 0),
                Error::ZeroLengthOption { offset: 24 },
            ),
            (
                "zero-length option after an unknown one",
                unknown_then(&[14, 1, 1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 0, 0, 0, 0]),
                Error::ZeroLengthOption { offset: 32 },
            ),
            (
                "option running past the end",
                edit(&|b| b[MESSAGE_LEN + 1] = 2),
                Error::OptionOverrun {
                    offset: 24,
                    len: 16,
                    available: 8,
                },
            ),
            (
                "one stray byte after the options",
                unknown_then(&[1, 1, 2, 0, 0, 0, 0, 0x0a, 9]),
                Error::OptionOverrun {
                    offset: 32,
                    len: 2,
                    available: 1,
                },
            ),
            (
                "source link-layer option of 16 bytes",
                unknown_then(&[1, 2, 2, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0]),
                Error::LinkLayerOptionLength { option: 1, len: 2 },
            ),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(parse(&header, &bytes), Err(expected), "{name}");
        }
    }

    #[test]
    fn bad_checksum() {
        let header = ip("2001:db8::1", "ff02::1:ff00:2");
        let mut bytes = emit(&solicit(None), &header);
        let good = u16::from_be_bytes([bytes[2], bytes[3]]);
        bytes[3] ^= 0x01;
        assert_eq!(
            parse(&header, &bytes),
            Err(Error::Icmpv6Checksum {
                found: good ^ 0x01,
                expected: good
            })
        );
        // The same bytes from another source do not verify either: the pseudo-header counts.
        let bytes = emit(&solicit(None), &header);
        let other = ip("2001:db8::3", "ff02::1:ff00:2");
        assert!(matches!(
            parse(&other, &bytes),
            Err(Error::Icmpv6Checksum { .. })
        ));
    }

    #[test]
    fn ip_level_rules() {
        let header = ip("2001:db8::1", "ff02::1:ff00:2");
        let bytes = emit(&solicit(None), &header);
        let routed = ipv6::Repr {
            hop_limit: 254,
            ..header
        };
        assert_eq!(parse(&routed, &bytes), Err(Error::HopLimit(254)));
        let hop_by_hop = ipv6::Repr {
            next_header: 0,
            ..header
        };
        assert_eq!(
            parse(&hop_by_hop, &bytes),
            Err(Error::Unsupported(Unsupported::NextHeader(0)))
        );
    }

    #[test]
    fn duplicate_address_detection_rules() {
        let dad = ip("::", "ff02::1:ff00:2");
        assert_eq!(parse(&dad, &emit(&solicit(None), &dad)), Ok(solicit(None)));
        assert_eq!(
            parse(&dad, &emit(&solicit(Some(MAC_A)), &dad)),
            Err(Error::DadWithSourceLinkAddr)
        );
        let unicast = ip("::", "2001:db8::2");
        assert_eq!(
            parse(&unicast, &emit(&solicit(None), &unicast)),
            Err(Error::DadNotToSolicitedNode(addr("2001:db8::2")))
        );
        let all_nodes = ip("::", "ff02::1");
        assert_eq!(
            parse(&all_nodes, &emit(&solicit(None), &all_nodes)),
            Err(Error::DadNotToSolicitedNode(ipv6::ALL_NODES))
        );
    }

    #[test]
    fn solicited_advert_to_multicast_is_invalid() {
        let header = ip("2001:db8::2", "ff02::1");
        let mut na = Repr::NeighborAdvert {
            flags: AdvertFlags {
                router: false,
                solicited: true,
                override_: true,
            },
            target: addr("2001:db8::2"),
            target_link_addr: Some(MAC_A),
        };
        assert_eq!(
            parse(&header, &emit(&na, &header)),
            Err(Error::SolicitedToMulticast(ipv6::ALL_NODES))
        );
        if let Repr::NeighborAdvert { flags, .. } = &mut na {
            flags.solicited = false;
        }
        assert_eq!(parse(&header, &emit(&na, &header)), Ok(na));
    }

    #[test]
    fn unknown_and_repeated_options() {
        let header = ip("2001:db8::1", "ff02::1:ff00:2");
        let mut bytes = emit(&solicit(None), &header);
        // A nonce (type 14), an MTU option (type 5, meaningless here), a target link-layer
        // option (not the one an NS uses, so skipped even though it is 16 bytes), then two
        // source link-layer options: the first one counts.
        bytes.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        bytes.extend_from_slice(&[5, 1, 0, 0, 0, 0, 5, 0xdc]);
        bytes.extend_from_slice(&[2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x0a]);
        bytes.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x0b]);
        reseal(&header, &mut bytes);
        assert_eq!(parse(&header, &bytes), Ok(solicit(Some(MAC_A))));
        let kinds: Vec<u8> = Packet::new_checked(&bytes[..])
            .unwrap()
            .options()
            .map(|o| o.unwrap().kind)
            .collect();
        assert_eq!(kinds, [14, 5, 2, 1, 1]);
    }

    #[test]
    fn reserved_bits_are_ignored_and_not_re_emitted() {
        let header = ip("2001:db8::2", "2001:db8::1");
        let na = Repr::NeighborAdvert {
            flags: AdvertFlags::default(),
            target: addr("2001:db8::2"),
            target_link_addr: None,
        };
        let mut bytes = emit(&na, &header);
        bytes[FLAGS] = 0x1f;
        bytes[7] = 0xff;
        reseal(&header, &mut bytes);
        assert_eq!(parse(&header, &bytes), Ok(na));
    }
}
