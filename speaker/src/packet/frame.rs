//! Whole frames: an Ethernet header carrying ARP, or IPv6 carrying NS/NA.
//!
//! The derived fields (EtherType, IPv6 payload length, hop limit, checksum) are not stored:
//! they follow from the content, so a [`Frame`] cannot describe an inconsistent frame.

use std::net::Ipv6Addr;

use super::ethernet::{self, EtherType, MacAddr, VlanTag};
use super::ipv6::{self, NEXT_HEADER_ICMPV6};
use super::{Error, Result, Unsupported, arp, ndp};

/// An ARP or NDP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub vlan: Option<VlanTag>,
    pub payload: Payload,
}

/// What a [`Frame`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    Arp(arp::Repr),
    Ndp(NdpDatagram),
}

/// An NS or NA with the IPv6 addresses it travels between. The hop limit is always 255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NdpDatagram {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub message: ndp::Repr,
}

impl NdpDatagram {
    fn ip_header(&self) -> ipv6::Repr {
        ipv6::Repr {
            src: self.src,
            dst: self.dst,
            next_header: NEXT_HEADER_ICMPV6,
            payload_len: self.message.buffer_len(),
            hop_limit: 255,
        }
    }
}

impl Frame {
    /// Parses and validates a frame as it came off the wire.
    pub fn parse(bytes: &[u8]) -> Result<Frame> {
        let ethernet = ethernet::Packet::new_checked(bytes)?;
        let header = ethernet::Repr::parse(&ethernet)?;
        let payload = match header.ethertype {
            EtherType::Arp => {
                let packet = arp::Packet::new_checked(ethernet.payload())?;
                Payload::Arp(arp::Repr::parse(&packet)?)
            }
            EtherType::Ipv6 => {
                let packet = ipv6::Packet::new_checked(ethernet.payload())?;
                let ip = ipv6::Repr::parse(&packet)?;
                if ip.next_header != NEXT_HEADER_ICMPV6 {
                    return Err(Error::Unsupported(Unsupported::NextHeader(ip.next_header)));
                }
                let message = ndp::Packet::new_checked(packet.payload())?;
                Payload::Ndp(NdpDatagram {
                    src: ip.src,
                    dst: ip.dst,
                    message: ndp::Repr::parse(&ip, &message)?,
                })
            }
        };
        Ok(Frame {
            dst: header.dst,
            src: header.src,
            vlan: header.vlan,
            payload,
        })
    }

    fn ethernet_header(&self) -> ethernet::Repr {
        ethernet::Repr {
            dst: self.dst,
            src: self.src,
            vlan: self.vlan,
            ethertype: match self.payload {
                Payload::Arp(_) => EtherType::Arp,
                Payload::Ndp(_) => EtherType::Ipv6,
            },
        }
    }

    /// The length of the emitted frame. ARP frames are not padded to the Ethernet minimum:
    /// the NIC (or the kernel, on a veth) does that, as it does for the kernel's own replies.
    pub fn buffer_len(&self) -> usize {
        self.ethernet_header().buffer_len()
            + match &self.payload {
                Payload::Arp(arp) => arp.buffer_len(),
                Payload::Ndp(ndp) => ipv6::HEADER_LEN + ndp.message.buffer_len(),
            }
    }

    /// Writes the frame into the front of `buffer`, which must hold [`Frame::buffer_len`]
    /// bytes. Returns the number of bytes written.
    pub fn emit(&self, buffer: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let header = self.ethernet_header();
        header.emit(buffer);
        let body = &mut buffer[header.buffer_len()..len];
        match &self.payload {
            Payload::Arp(arp) => arp.emit(body),
            Payload::Ndp(ndp) => {
                ndp.ip_header().emit(body);
                ndp.message
                    .emit(ndp.src, ndp.dst, &mut body[ipv6::HEADER_LEN..]);
            }
        }
        len
    }

    /// The frame as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut bytes);
        bytes
    }
}
