//! The fixed IPv6 header (RFC 8200), and the multicast addresses NDP uses (RFC 4291).
//!
//! Extension headers are not walked: NDP messages are sent without them, so anything whose
//! next header is not ICMPv6 is [`Unsupported::NextHeader`](super::Unsupported::NextHeader).

use std::net::Ipv6Addr;

use super::ethernet::{MacAddr, read_u16, write_u16};
use super::{Error, Layer, Result, ensure_len};

pub const HEADER_LEN: usize = 40;
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// `ff02::1`, every node on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const PAYLOAD_LEN: usize = 4;
const NEXT_HEADER: usize = 6;
const HOP_LIMIT: usize = 7;
const SRC: usize = 8;
const DST: usize = 24;

/// The solicited-node multicast group of `ip`: `ff02::1:ff00:0/104` plus its low 24 bits.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// True when `ip` is a solicited-node multicast address (of any unicast address).
pub fn is_solicited_node(ip: Ipv6Addr) -> bool {
    ip.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The Ethernet address an IPv6 multicast group maps to: `33:33` and its low 32 bits
/// (RFC 2464 section 7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The Ethernet address of the solicited-node group of `ip` (`33:33:ff:xx:xx:xx`), the one a
/// speaker must accept frames for once it owns `ip`.
pub fn solicited_node_mac(ip: Ipv6Addr) -> MacAddr {
    multicast_mac(solicited_node(ip))
}

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the header is present and that the declared payload fits in the buffer.
    /// Bytes beyond the declared payload (Ethernet padding) are allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let bytes = buffer.as_ref();
        ensure_len(Layer::Ipv6, bytes, HEADER_LEN)?;
        let declared = usize::from(read_u16(bytes, PAYLOAD_LEN));
        let available = bytes.len() - HEADER_LEN;
        if declared > available {
            return Err(Error::Ipv6PayloadLength {
                declared,
                available,
            });
        }
        Ok(Packet { buffer })
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), PAYLOAD_LEN))
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[HOP_LIMIT]
    }

    pub fn src(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), SRC)
    }

    pub fn dst(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), DST)
    }

    /// Exactly the declared payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

/// A validated IPv6 header. Traffic class and flow label are read as zero and written as
/// zero: NDP gives them no meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        if packet.version() != 6 {
            return Err(Error::Ipv6Version(packet.version()));
        }
        if packet.src().is_multicast() {
            return Err(Error::Ipv6MulticastSource(packet.src()));
        }
        Ok(Repr {
            src: packet.src(),
            dst: packet.dst(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the front of `buffer`, which must hold [`HEADER_LEN`] bytes.
    /// `payload_len` must fit in 16 bits; callers build it from a message's `buffer_len`.
    pub fn emit(&self, buffer: &mut [u8]) {
        buffer[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        write_u16(buffer, PAYLOAD_LEN, self.payload_len as u16);
        buffer[NEXT_HEADER] = self.next_header;
        buffer[HOP_LIMIT] = self.hop_limit;
        buffer[SRC..SRC + 16].copy_from_slice(&self.src.octets());
        buffer[DST..DST + 16].copy_from_slice(&self.dst.octets());
    }
}

pub(super) fn ipv6_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_len: u16) -> Vec<u8> {
        let repr = Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "ff02::1:ff00:2".parse().unwrap(),
            next_header: NEXT_HEADER_ICMPV6,
            payload_len: usize::from(payload_len),
            hop_limit: 255,
        };
        let mut bytes = vec![0; HEADER_LEN];
        repr.emit(&mut bytes);
        bytes
    }

    #[test]
    fn header_round_trips_and_ignores_padding() {
        let mut bytes = header(3);
        bytes.extend_from_slice(&[7, 8, 9, 0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, 3);
        assert_eq!(packet.payload(), &[7, 8, 9]);
        let mut out = vec![0; HEADER_LEN];
        repr.emit(&mut out);
        assert_eq!(out, bytes[..HEADER_LEN]);
    }

    #[test]
    fn truncated_header_at_every_length() {
        let bytes = header(0);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&bytes[..len]).unwrap_err(),
                Error::Truncated {
                    layer: Layer::Ipv6,
                    needed: HEADER_LEN,
                    available: len
                }
            );
        }
    }

    #[test]
    fn lying_payload_length() {
        let mut bytes = header(32);
        bytes.extend_from_slice(&[0; 24]);
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Ipv6PayloadLength {
                declared: 32,
                available: 24
            }
        );
        let mut bytes = header(0xffff);
        bytes.extend_from_slice(&[0; 32]);
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Ipv6PayloadLength {
                declared: 0xffff,
                available: 32
            }
        );
    }

    #[test]
    fn wrong_version_and_multicast_source() {
        let mut v4 = header(0);
        v4[0] = 0x45;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&v4[..]).unwrap()),
            Err(Error::Ipv6Version(4))
        );
        let mut mcast = header(0);
        mcast[SRC..SRC + 16].copy_from_slice(&ALL_NODES.octets());
        assert_eq!(
            Repr::parse(&Packet::new_checked(&mcast[..]).unwrap()),
            Err(Error::Ipv6MulticastSource(ALL_NODES))
        );
    }

    #[test]
    fn solicited_node_addresses() {
        let ip: Ipv6Addr = "2001:db8::1:2abc:de01".parse().unwrap();
        let group = solicited_node(ip);
        assert_eq!(group, "ff02::1:ffbc:de01".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node(group));
        assert!(!is_solicited_node(ALL_NODES));
        assert!(!is_solicited_node(ip));
        assert_eq!(
            solicited_node_mac(ip),
            MacAddr([0x33, 0x33, 0xff, 0xbc, 0xde, 0x01])
        );
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    }
}
