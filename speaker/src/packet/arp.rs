//! ARP for Ethernet and IPv4 (RFC 826).
//!
//! Only hardware type 1 with 6-byte addresses and protocol 0x0800 with 4-byte addresses is
//! accepted. Bytes after the 28-byte packet (Ethernet padding to the 60-byte minimum) are
//! ignored.

use std::net::Ipv4Addr;

use super::ethernet::{MacAddr, read_u16, write_u16};
use super::{Error, Layer, Result, ensure_len};

const HTYPE: usize = 0;
const PTYPE: usize = 2;
const HLEN: usize = 4;
const PLEN: usize = 5;
const OPER: usize = 6;
const SHA: usize = 8;
const SPA: usize = 14;
const THA: usize = 18;
const TPA: usize = 24;
const FIXED_LEN: usize = 8;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

pub const HARDWARE_ETHERNET: u16 = 1;
pub const PROTOCOL_IPV4: u16 = 0x0800;

/// An ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Request,
    Reply,
}

impl Operation {
    pub fn value(self) -> u16 {
        match self {
            Operation::Request => 1,
            Operation::Reply => 2,
        }
    }
}

/// A zero-copy view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the fixed header is present, that the address lengths are the Ethernet/IPv4
    /// ones (the accessors rely on them), and that the addresses are present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let bytes = buffer.as_ref();
        ensure_len(Layer::Arp, bytes, FIXED_LEN)?;
        if bytes[HLEN] != 6 {
            return Err(Error::ArpHardwareLen(bytes[HLEN]));
        }
        if bytes[PLEN] != 4 {
            return Err(Error::ArpProtocolLen(bytes[PLEN]));
        }
        ensure_len(Layer::Arp, bytes, PACKET_LEN)?;
        Ok(Packet { buffer })
    }

    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), HTYPE)
    }

    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), PTYPE)
    }

    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), OPER)
    }

    pub fn sender_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), SHA)
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), SPA)
    }

    pub fn target_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), THA)
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), TPA)
    }
}

/// A validated Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    pub operation: Operation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        if packet.hardware_type() != HARDWARE_ETHERNET {
            return Err(Error::ArpHardwareType(packet.hardware_type()));
        }
        if packet.protocol_type() != PROTOCOL_IPV4 {
            return Err(Error::ArpProtocolType(packet.protocol_type()));
        }
        let operation = match packet.operation() {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => return Err(Error::ArpOperation(other)),
        };
        Ok(Repr {
            operation,
            sender_mac: packet.sender_mac(),
            sender_ip: packet.sender_ip(),
            target_mac: packet.target_mac(),
            target_ip: packet.target_ip(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into the front of `buffer`, which must hold [`PACKET_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        write_u16(buffer, HTYPE, HARDWARE_ETHERNET);
        write_u16(buffer, PTYPE, PROTOCOL_IPV4);
        buffer[HLEN] = 6;
        buffer[PLEN] = 4;
        write_u16(buffer, OPER, self.operation.value());
        buffer[SHA..SHA + 6].copy_from_slice(&self.sender_mac.0);
        buffer[SPA..SPA + 4].copy_from_slice(&self.sender_ip.octets());
        buffer[THA..THA + 6].copy_from_slice(&self.target_mac.0);
        buffer[TPA..TPA + 4].copy_from_slice(&self.target_ip.octets());
    }

    /// True for an announcement: sender and target protocol addresses are the same.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    /// True for an RFC 5227 probe: a request from the unspecified address.
    pub fn is_probe(&self) -> bool {
        self.operation == Operation::Request && self.sender_ip.is_unspecified()
    }
}

fn mac_at(bytes: &[u8], at: usize) -> MacAddr {
    MacAddr::from_slice(&bytes[at..])
}

fn ipv4_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// who-has 192.0.2.2 tell 192.0.2.1, from 02:00:00:00:00:0a (a kernel request).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 192, 0, 2, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 2,
    ];

    fn parse(bytes: &[u8]) -> Result<Repr> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    fn with(at: usize, value: &[u8]) -> Vec<u8> {
        let mut bytes = REQUEST.to_vec();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    }

    #[test]
    fn parses_and_re_emits_a_request() {
        let repr = parse(&REQUEST).unwrap();
        assert_eq!(
            repr,
            Repr {
                operation: Operation::Request,
                sender_mac: MacAddr([2, 0, 0, 0, 0, 0x0a]),
                sender_ip: Ipv4Addr::new(192, 0, 2, 1),
                target_mac: MacAddr::ZERO,
                target_ip: Ipv4Addr::new(192, 0, 2, 2),
            }
        );
        assert!(!repr.is_gratuitous());
        assert!(!repr.is_probe());
        let mut out = [0u8; PACKET_LEN];
        repr.emit(&mut out);
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn padding_after_the_packet_is_ignored() {
        let mut padded = REQUEST.to_vec();
        padded.extend_from_slice(&[0xee; 18]);
        assert_eq!(parse(&padded), parse(&REQUEST));
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..PACKET_LEN {
            let needed = if len < FIXED_LEN {
                FIXED_LEN
            } else {
                PACKET_LEN
            };
            assert_eq!(
                parse(&REQUEST[..len]),
                Err(Error::Truncated {
                    layer: Layer::Arp,
                    needed,
                    available: len
                }),
                "length {len}"
            );
        }
    }

    #[test]
    fn malformed_fields() {
        let cases: Vec<(&str, Vec<u8>, Error)> = vec![
            (
                "IEEE 802 hardware",
                with(HTYPE, &[0, 6]),
                Error::ArpHardwareType(6),
            ),
            (
                "hardware 0",
                with(HTYPE, &[0, 0]),
                Error::ArpHardwareType(0),
            ),
            (
                "IPv6 protocol",
                with(PTYPE, &[0x86, 0xdd]),
                Error::ArpProtocolType(0x86dd),
            ),
            ("hlen 8", with(HLEN, &[8]), Error::ArpHardwareLen(8)),
            ("hlen 0", with(HLEN, &[0]), Error::ArpHardwareLen(0)),
            ("plen 16", with(PLEN, &[16]), Error::ArpProtocolLen(16)),
            ("op 0", with(OPER, &[0, 0]), Error::ArpOperation(0)),
            ("RARP request", with(OPER, &[0, 3]), Error::ArpOperation(3)),
            (
                "op 0x0101",
                with(OPER, &[1, 1]),
                Error::ArpOperation(0x0101),
            ),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(parse(&bytes), Err(expected), "{name}");
        }
    }

    #[test]
    fn wrong_lengths_are_reported_before_truncation() {
        // A short packet that also declares the wrong lengths names the lengths.
        let bytes = with(HLEN, &[16]);
        assert_eq!(parse(&bytes[..10]), Err(Error::ArpHardwareLen(16)));
    }

    #[test]
    fn probe_and_announcement_are_recognised() {
        let probe = parse(&with(SPA, &[0, 0, 0, 0])).unwrap();
        assert!(probe.is_probe());
        let announcement = parse(&with(TPA, &[192, 0, 2, 1])).unwrap();
        assert!(announcement.is_gratuitous());
    }
}
