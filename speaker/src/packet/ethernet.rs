//! Ethernet II frames, with at most one 802.1Q tag.

use std::fmt;

use super::{Error, Layer, Result, Unsupported, ensure_len};

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Reads a MAC address from the first six bytes of `bytes`.
    ///
    /// Callers pass slices whose length was checked by a `new_checked`.
    pub(super) fn from_slice(bytes: &[u8]) -> MacAddr {
        let mut mac = [0; 6];
        mac.copy_from_slice(&bytes[..6]);
        MacAddr(mac)
    }

    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    pub fn is_broadcast(self) -> bool {
        self == MacAddr::BROADCAST
    }

    /// True for group addresses (the I/G bit), broadcast included.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual address that is not all zeroes.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != MacAddr::ZERO
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The EtherTypes the responder handles; anything else is rejected as unsupported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    Arp,
    Ipv6,
}

impl EtherType {
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// Tag protocol identifier of an 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// Tag protocol identifier of an 802.1ad service tag.
    pub const SERVICE_VLAN: u16 = 0x88a8;

    pub fn value(self) -> u16 {
        match self {
            EtherType::Arp => EtherType::ARP,
            EtherType::Ipv6 => EtherType::IPV6,
        }
    }

    fn from_value(value: u16) -> Result<EtherType> {
        match value {
            EtherType::ARP => Ok(EtherType::Arp),
            EtherType::IPV6 => Ok(EtherType::Ipv6),
            EtherType::VLAN | EtherType::SERVICE_VLAN => {
                Err(Error::Unsupported(Unsupported::VlanStack { tpid: value }))
            }
            other => Err(Error::Unsupported(Unsupported::EtherType(other))),
        }
    }
}

/// The tag control information of an 802.1Q tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095.
    pub vid: u16,
}

impl VlanTag {
    fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    fn tci(self) -> u16 {
        (u16::from(self.pcp & 0x07) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

const DST: std::ops::Range<usize> = 0..6;
const SRC: std::ops::Range<usize> = 6..12;
const TYPE_OR_TPID: std::ops::Range<usize> = 12..14;
const HEADER_LEN: usize = 14;
const TAG_LEN: usize = 4;

/// A zero-copy view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that the header, and the 802.1Q tag if one is announced,
    /// are present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let bytes = buffer.as_ref();
        ensure_len(Layer::Ethernet, bytes, HEADER_LEN)?;
        if read_u16(bytes, TYPE_OR_TPID.start) == EtherType::VLAN {
            ensure_len(Layer::Ethernet, bytes, HEADER_LEN + TAG_LEN)?;
        }
        Ok(Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[DST])
    }

    pub fn src(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[SRC])
    }

    /// The 802.1Q tag, when the frame carries one.
    pub fn vlan(&self) -> Option<VlanTag> {
        let bytes = self.buffer.as_ref();
        (read_u16(bytes, TYPE_OR_TPID.start) == EtherType::VLAN)
            .then(|| VlanTag::from_tci(read_u16(bytes, HEADER_LEN)))
    }

    /// The raw EtherType of the payload, after the tag if there is one.
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), self.header_len() - 2)
    }

    pub fn header_len(&self) -> usize {
        if self.vlan().is_some() {
            HEADER_LEN + TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The payload, for emitting into. Call after [`Repr::emit`] so the tag is in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// An Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub vlan: Option<VlanTag>,
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        Ok(Repr {
            dst: packet.dst(),
            src: packet.src(),
            vlan: packet.vlan(),
            ethertype: EtherType::from_value(packet.ethertype())?,
        })
    }

    pub fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            HEADER_LEN + TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header into the front of `buffer`, which must hold at least
    /// [`Repr::buffer_len`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        buffer[DST].copy_from_slice(&self.dst.0);
        buffer[SRC].copy_from_slice(&self.src.0);
        let mut at = TYPE_OR_TPID.start;
        if let Some(tag) = self.vlan {
            write_u16(buffer, at, EtherType::VLAN);
            write_u16(buffer, at + 2, tag.tci());
            at += TAG_LEN;
        }
        write_u16(buffer, at, self.ethertype.value());
    }
}

pub(super) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

pub(super) fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);

    fn header(ethertype: u16) -> Vec<u8> {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&SRC_MAC.0);
        bytes.extend_from_slice(&ethertype.to_be_bytes());
        bytes
    }

    #[test]
    fn untagged_header_round_trips() {
        let mut bytes = header(0x0806);
        bytes.extend_from_slice(&[1, 2, 3]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                dst: MacAddr::BROADCAST,
                src: SRC_MAC,
                vlan: None,
                ethertype: EtherType::Arp
            }
        );
        assert_eq!(packet.payload(), &[1, 2, 3]);
        let mut out = vec![0; repr.buffer_len()];
        repr.emit(&mut out);
        assert_eq!(out, bytes[..14]);
    }

    #[test]
    fn single_tag_is_parsed_and_re_emitted() {
        // PCP 5, DEI set, VID 100, then IPv6.
        let mut bytes = header(0x8100);
        bytes.extend_from_slice(&[0xb0, 0x64, 0x86, 0xdd, 0xaa]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr.vlan,
            Some(VlanTag {
                pcp: 5,
                dei: true,
                vid: 100
            })
        );
        assert_eq!(repr.ethertype, EtherType::Ipv6);
        assert_eq!(packet.payload(), &[0xaa]);
        let mut out = vec![0; repr.buffer_len()];
        repr.emit(&mut out);
        assert_eq!(out, bytes[..18]);
    }

    #[test]
    fn truncated_at_every_length() {
        let mut tagged = header(0x8100);
        tagged.extend_from_slice(&[0x00, 0x0a, 0x08, 0x06]);
        for len in 0..14 {
            assert_eq!(
                Packet::new_checked(&tagged[..len]).unwrap_err(),
                Error::Truncated {
                    layer: Layer::Ethernet,
                    needed: 14,
                    available: len
                }
            );
        }
        for len in 14..18 {
            assert_eq!(
                Packet::new_checked(&tagged[..len]).unwrap_err(),
                Error::Truncated {
                    layer: Layer::Ethernet,
                    needed: 18,
                    available: len
                }
            );
        }
        assert!(Packet::new_checked(&tagged[..]).is_ok());
    }

    #[test]
    fn unsupported_ethertypes_and_stacks() {
        let cases: &[(&[u8], Unsupported)] = &[
            (&[0x08, 0x00], Unsupported::EtherType(0x0800)),
            // An 802.3 length field, not an EtherType.
            (&[0x00, 0x2e], Unsupported::EtherType(0x002e)),
            (
                &[0x88, 0xa8, 0x00, 0x01],
                Unsupported::VlanStack { tpid: 0x88a8 },
            ),
            (
                &[0x81, 0x00, 0x00, 0x01, 0x81, 0x00],
                Unsupported::VlanStack { tpid: 0x8100 },
            ),
            (
                &[0x81, 0x00, 0x00, 0x01, 0x88, 0xa8],
                Unsupported::VlanStack { tpid: 0x88a8 },
            ),
        ];
        for (tail, expected) in cases {
            let mut bytes = header(0);
            bytes.truncate(12);
            bytes.extend_from_slice(tail);
            bytes.extend_from_slice(&[0; 8]);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                Repr::parse(&packet),
                Err(Error::Unsupported(*expected)),
                "{tail:02x?}"
            );
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_broadcast());
        assert!(SRC_MAC.is_unicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert_eq!(SRC_MAC.to_string(), "02:00:00:00:00:0a");
    }
}
