//! ARP and NDP on the wire: zero-copy views, value types, validation and frame builders.
//!
//! This module owns the byte layout of every frame the responder reads or writes. It is pure:
//! no sockets, no async, no allocation except where a caller asks for an owned frame.
//!
//! Each layer follows the same shape:
//! - `Packet<T: AsRef<[u8]>>` is a view over a buffer. `new_checked` does every length check
//!   up front, so its accessors never panic.
//! - `Repr` is the parsed, validated value. `Repr::parse` enforces the protocol's validity
//!   rules, `Repr::emit` writes it back and `Repr::buffer_len` says how many bytes that takes.
//!
//! [`Frame`] ties the layers together for the two kinds of frame the responder cares about:
//! ARP over Ethernet/IPv4 and ICMPv6 Neighbor Solicitation/Advertisement. [`build`] makes the
//! frames a speaker sends.
//!
//! One 802.1Q tag is understood (and kept, so a reply can carry the same tag); stacked tags
//! (802.1ad or QinQ) are reported as [`Unsupported::VlanStack`].

pub mod arp;
pub mod build;
mod checksum;
pub mod ethernet;
mod frame;
pub mod ipv6;
pub mod ndp;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod golden_tests;

use std::fmt;
use std::net::Ipv6Addr;

pub use ethernet::{EtherType, MacAddr, VlanTag};
pub use frame::{Frame, NdpDatagram, Payload};

/// Result of the packet codecs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The protocol layer a length problem was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    Ethernet,
    Arp,
    Ipv6,
    Icmpv6,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "Ethernet header",
            Layer::Arp => "ARP packet",
            Layer::Ipv6 => "IPv6 header",
            Layer::Icmpv6 => "ICMPv6 message",
        })
    }
}

/// A frame that is well-formed but is not one the responder handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unsupported {
    /// Neither ARP (0x0806) nor IPv6 (0x86dd); values below 0x0600 are 802.3 lengths.
    EtherType(u16),
    /// A second VLAN tag, or an 802.1ad service tag.
    VlanStack { tpid: u16 },
    /// IPv6 whose next header is not ICMPv6 (extension headers are not walked).
    NextHeader(u8),
    /// ICMPv6 that is not a Neighbor Solicitation (135) or Advertisement (136).
    Icmpv6Type(u8),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::EtherType(t) => write!(f, "EtherType {t:#06x}"),
            Unsupported::VlanStack { tpid } => write!(f, "stacked VLAN tag (TPID {tpid:#06x})"),
            Unsupported::NextHeader(n) => write!(f, "IPv6 next header {n}"),
            Unsupported::Icmpv6Type(t) => write!(f, "ICMPv6 type {t}"),
        }
    }
}

/// Why a frame was rejected. Every variant except [`Error::Unsupported`] means the frame is
/// malformed or violates RFC 826 / RFC 4861 and must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("not an ARP or NDP frame: {0}")]
    Unsupported(Unsupported),
    #[error("{layer} truncated: {needed} bytes needed, {available} present")]
    Truncated {
        layer: Layer,
        needed: usize,
        available: usize,
    },
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    ArpHardwareType(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4 (0x0800)")]
    ArpProtocolType(u16),
    #[error("ARP hardware address length {0} is not 6")]
    ArpHardwareLen(u8),
    #[error("ARP protocol address length {0} is not 4")]
    ArpProtocolLen(u8),
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    ArpOperation(u16),
    #[error("IP version {0} in an IPv6 frame")]
    Ipv6Version(u8),
    #[error("IPv6 payload length {declared} exceeds the {available} bytes that follow the header")]
    Ipv6PayloadLength { declared: usize, available: usize },
    #[error("IPv6 source {0} is a multicast address")]
    Ipv6MulticastSource(Ipv6Addr),
    #[error("NDP hop limit {0} is not 255 (the message may have been routed)")]
    HopLimit(u8),
    #[error("ICMPv6 code {0} is not 0")]
    Icmpv6Code(u8),
    #[error("ICMPv6 checksum {found:#06x} is wrong, expected {expected:#06x}")]
    Icmpv6Checksum { found: u16, expected: u16 },
    #[error("NDP message of {0} bytes is shorter than 24")]
    NdpTooShort(usize),
    #[error("NDP target {0} is a multicast address")]
    MulticastTarget(Ipv6Addr),
    #[error("NDP option at offset {offset} has length 0")]
    ZeroLengthOption { offset: usize },
    #[error("NDP option at offset {offset} claims {len} bytes, only {available} remain")]
    OptionOverrun {
        offset: usize,
        len: usize,
        available: usize,
    },
    #[error(
        "NDP link-layer address option (type {option}) has length {len}, expected 1 for Ethernet"
    )]
    LinkLayerOptionLength { option: u8, len: u8 },
    #[error("duplicate address detection probe carries a source link-layer address option")]
    DadWithSourceLinkAddr,
    #[error("duplicate address detection probe is sent to {0}, not a solicited-node address")]
    DadNotToSolicitedNode(Ipv6Addr),
    #[error("Neighbor Advertisement to multicast {0} has the Solicited flag set")]
    SolicitedToMulticast(Ipv6Addr),
}

impl Error {
    /// A short, stable name for metrics labels and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Unsupported(_) => "unsupported",
            Error::Truncated { .. } => "truncated",
            Error::ArpHardwareType(_) => "arp_hardware_type",
            Error::ArpProtocolType(_) => "arp_protocol_type",
            Error::ArpHardwareLen(_) => "arp_hardware_len",
            Error::ArpProtocolLen(_) => "arp_protocol_len",
            Error::ArpOperation(_) => "arp_operation",
            Error::Ipv6Version(_) => "ipv6_version",
            Error::Ipv6PayloadLength { .. } => "ipv6_payload_length",
            Error::Ipv6MulticastSource(_) => "ipv6_multicast_source",
            Error::HopLimit(_) => "hop_limit",
            Error::Icmpv6Code(_) => "icmpv6_code",
            Error::Icmpv6Checksum { .. } => "icmpv6_checksum",
            Error::NdpTooShort(_) => "ndp_too_short",
            Error::MulticastTarget(_) => "multicast_target",
            Error::ZeroLengthOption { .. } => "zero_length_option",
            Error::OptionOverrun { .. } => "option_overrun",
            Error::LinkLayerOptionLength { .. } => "link_layer_option_length",
            Error::DadWithSourceLinkAddr => "dad_with_source_link_addr",
            Error::DadNotToSolicitedNode(_) => "dad_not_to_solicited_node",
            Error::SolicitedToMulticast(_) => "solicited_to_multicast",
        }
    }
}

/// Fails with [`Error::Truncated`] unless `buffer` holds at least `needed` bytes.
fn ensure_len(layer: Layer, buffer: &[u8], needed: usize) -> Result<()> {
    if buffer.len() < needed {
        return Err(Error::Truncated {
            layer,
            needed,
            available: buffer.len(),
        });
    }
    Ok(())
}
