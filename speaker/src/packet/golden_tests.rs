//! Golden frames: captured with `tcpdump -xx` between two throwaway network namespaces
//! (veth, 02:00:00:00:00:0a = 192.0.2.1 / 2001:db8::1 and 02:00:00:00:00:0b = 192.0.2.2 /
//! 2001:db8::2, Linux kernel stacks, arping), plus frames built from the RFC field layout with
//! checksums computed by an independent implementation.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::build::{self, GratuitousForm};
use super::ndp::{self, AdvertFlags};
use super::{Error, Frame, MacAddr, NdpDatagram, Payload, Unsupported, VlanTag, arp};

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);

/// Kernel ARP request: who-has 192.0.2.2 tell 192.0.2.1, broadcast.
const KERNEL_ARP_REQUEST: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000201000000000000c0000202";
/// The kernel's reply to it.
const KERNEL_ARP_REPLY: &str =
    "02000000000a02000000000b0806000108000604000202000000000bc000020202000000000ac0000201";
/// arping's request for the same address, padded to 58 bytes.
const ARPING_PADDED_REQUEST: &str = "ffffffffffff02000000000a0806000108000604000102000000000ac0000201000000000000c000020200000000000000000000000000000000";
/// `arping -U`: a gratuitous request with a broadcast target MAC, padded.
const ARPING_GRATUITOUS: &str = "ffffffffffff02000000000a0806000108000604000102000000000ac0000201ffffffffffffc000020100000000000000000000000000000000";
/// Kernel reachability probe: a unicast ARP request from B to A, and A's reply.
const KERNEL_UNICAST_ARP_REQUEST: &str =
    "02000000000a02000000000b0806000108000604000102000000000bc0000202000000000000c0000201";
const KERNEL_UNICAST_ARP_REPLY: &str =
    "02000000000b02000000000a0806000108000604000202000000000ac000020102000000000bc0000202";
/// Kernel NS: 2001:db8::1 asks for 2001:db8::2 via its solicited-node group, with SLLA.
const KERNEL_NS: &str = "3333ff00000202000000000a86dd6000000000203aff20010db8000000000000000000000001ff0200000000000000000001ff00000287001c1e0000000020010db8000000000000000000000002010102000000000a";
/// The kernel's NA in reply: unicast, Solicited and Override, TLLA.
const KERNEL_NA: &str = "02000000000a02000000000b86dd6000000000203aff20010db800000000000000000000000220010db800000000000000000000000188008a686000000020010db8000000000000000000000002020102000000000b";
/// Kernel DAD probe for 2001:db8::1, carrying an RFC 7527 nonce option (type 14).
const KERNEL_DAD_WITH_NONCE: &str = "3333ff00000102000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00000187005a490000000020010db80000000000000000000000010e01be4787dd9e75";
/// The same probe without the nonce, built from the RFC 4861 layout.
const DAD_PROBE: &str = "3333ff00000102000000000a86dd6000000000183aff00000000000000000000000000000000ff0200000000000000000001ff00000187004ced0000000020010db8000000000000000000000001";
/// The defence of 2001:db8::1 by B against that probe: NA to all-nodes, Override only.
const DAD_DEFENCE: &str = "33330000000102000000000b86dd6000000000203aff20010db8000000000000000000000001ff0200000000000000000000000000018800f9202000000020010db8000000000000000000000001020102000000000b";
/// B's unsolicited NA for 2001:db8::10, built from the RFC 4861 layout.
const UNSOLICITED_NA: &str = "33330000000102000000000b86dd6000000000203aff20010db8000000000000000000000010ff0200000000000000000000000000018800f9022000000020010db8000000000000000000000010020102000000000b";
/// Kernel router solicitation and ICMPv6 port unreachable: well-formed, not NDP we handle.
const KERNEL_ROUTER_SOLICIT: &str = "33330000000202000000000a86dd6000000000103afffe80000000000000000000fffe00000aff02000000000000000000000000000285007b1a00000000010102000000000a";
const KERNEL_PORT_UNREACHABLE: &str = "02000000000a02000000000b86dd600559a800393a4020010db800000000000000000000000220010db800000000000000000000000101049fb600000000600ccafd0009114020010db800000000000000000000000120010db800000000000000000000000297f2000900095b8f78";

pub(super) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn assert_round_trip(golden: &str) -> Frame {
    let bytes = hex(golden);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(frame.to_bytes(), bytes, "re-emitting {frame:?}");
    frame
}

#[test]
fn kernel_arp_request_and_reply() {
    let request = assert_round_trip(KERNEL_ARP_REQUEST);
    assert_eq!(
        request,
        Frame {
            dst: MacAddr::BROADCAST,
            src: MAC_A,
            vlan: None,
            payload: Payload::Arp(arp::Repr {
                operation: arp::Operation::Request,
                sender_mac: MAC_A,
                sender_ip: v4("192.0.2.1"),
                target_mac: MacAddr::ZERO,
                target_ip: v4("192.0.2.2"),
            }),
        }
    );
    let reply = assert_round_trip(KERNEL_ARP_REPLY);
    assert_eq!(build::arp_reply(&request, MAC_B), Some(reply));
}

#[test]
fn unicast_arp_probe_and_reply() {
    let request = assert_round_trip(KERNEL_UNICAST_ARP_REQUEST);
    assert_eq!(request.dst, MAC_A);
    let reply = assert_round_trip(KERNEL_UNICAST_ARP_REPLY);
    assert_eq!(
        build::arp_reply(&request, MAC_A).unwrap().to_bytes(),
        hex(KERNEL_UNICAST_ARP_REPLY)
    );
    assert_eq!(build::arp_reply(&request, MAC_A), Some(reply));
}

#[test]
fn padded_frames_parse_and_re_emit_without_padding() {
    let padded = hex(ARPING_PADDED_REQUEST);
    let frame = Frame::parse(&padded).unwrap();
    assert_eq!(frame, Frame::parse(&hex(KERNEL_ARP_REQUEST)).unwrap());
    assert_eq!(frame.to_bytes(), padded[..42]);
}

#[test]
fn arping_gratuitous_request() {
    let bytes = hex(ARPING_GRATUITOUS);
    let frame = Frame::parse(&bytes).unwrap();
    let Payload::Arp(arp) = frame.payload else {
        panic!("not ARP: {frame:?}")
    };
    assert!(arp.is_gratuitous());
    assert_eq!(arp.target_mac, MacAddr::BROADCAST);
    assert_eq!(frame.to_bytes(), bytes[..42]);
    // Ours differs only in the target MAC, which RFC 5227 says to zero.
    let mut ours = bytes[..42].to_vec();
    ours[32..38].fill(0);
    assert_eq!(
        build::gratuitous_arp(MAC_A, v4("192.0.2.1"), GratuitousForm::Request).to_bytes(),
        ours
    );
}

#[test]
fn kernel_solicitation_and_advertisement() {
    let ns = assert_round_trip(KERNEL_NS);
    assert_eq!(
        ns.payload,
        Payload::Ndp(NdpDatagram {
            src: v6("2001:db8::1"),
            dst: v6("ff02::1:ff00:2"),
            message: ndp::Repr::NeighborSolicit {
                target: v6("2001:db8::2"),
                source_link_addr: Some(MAC_A),
            },
        })
    );
    let na = assert_round_trip(KERNEL_NA);
    assert_eq!(
        na.payload,
        Payload::Ndp(NdpDatagram {
            src: v6("2001:db8::2"),
            dst: v6("2001:db8::1"),
            message: ndp::Repr::NeighborAdvert {
                flags: AdvertFlags {
                    router: false,
                    solicited: true,
                    override_: true,
                },
                target: v6("2001:db8::2"),
                target_link_addr: Some(MAC_B),
            },
        })
    );
    // Our builder answers the kernel's solicitation exactly as the kernel did.
    assert_eq!(
        build::neighbor_advert_reply(&ns, MAC_B).unwrap().to_bytes(),
        hex(KERNEL_NA)
    );
}

#[test]
fn dad_probe_with_nonce_is_read_and_the_nonce_skipped() {
    let frame = Frame::parse(&hex(KERNEL_DAD_WITH_NONCE)).unwrap();
    let probe = assert_round_trip(DAD_PROBE);
    assert_eq!(frame, probe);
    assert_eq!(
        probe.payload,
        Payload::Ndp(NdpDatagram {
            src: Ipv6Addr::UNSPECIFIED,
            dst: v6("ff02::1:ff00:1"),
            message: ndp::Repr::NeighborSolicit {
                target: v6("2001:db8::1"),
                source_link_addr: None,
            },
        })
    );
    let defence = assert_round_trip(DAD_DEFENCE);
    assert_eq!(build::neighbor_advert_reply(&probe, MAC_B), Some(defence));
}

#[test]
fn unsolicited_advert_layout() {
    let frame = assert_round_trip(UNSOLICITED_NA);
    assert_eq!(
        build::unsolicited_neighbor_advert(MAC_B, v6("2001:db8::10")),
        frame
    );
}

#[test]
fn other_icmpv6_is_unsupported() {
    assert_eq!(
        Frame::parse(&hex(KERNEL_ROUTER_SOLICIT)),
        Err(Error::Unsupported(Unsupported::Icmpv6Type(133)))
    );
    assert_eq!(
        Frame::parse(&hex(KERNEL_PORT_UNREACHABLE)),
        Err(Error::Unsupported(Unsupported::Icmpv6Type(1)))
    );
}

#[test]
fn vlan_tagged_arp_built_from_the_layout() {
    // 802.1Q TCI 0x2064: PCP 1, DEI 0, VID 100.
    let mut bytes = hex(KERNEL_ARP_REQUEST);
    bytes.splice(12..12, [0x81, 0x00, 0x20, 0x64]);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.vlan,
        Some(VlanTag {
            pcp: 1,
            dei: false,
            vid: 100
        })
    );
    assert_eq!(frame.to_bytes(), bytes);
    let reply = build::arp_reply(&frame, MAC_B).unwrap().to_bytes();
    let mut expected = hex(KERNEL_ARP_REPLY);
    expected.splice(12..12, [0x81, 0x00, 0x20, 0x64]);
    assert_eq!(reply, expected);
}

/// Every malformed variant the frame parser can produce, starting from golden frames.
#[test]
fn malformed_golden_frames() {
    let arp = hex(KERNEL_ARP_REQUEST);
    let ns = hex(KERNEL_NS);
    let edit = |base: &[u8], at: usize, value: &[u8]| {
        let mut bytes = base.to_vec();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    };
    let ns_resealed = |at: usize, value: &[u8]| {
        let mut bytes = edit(&ns, at, value);
        let sum = super::checksum::icmpv6(
            super::ipv6::ipv6_at(&bytes, 22),
            super::ipv6::ipv6_at(&bytes, 38),
            &bytes[54..],
        );
        bytes[56..58].copy_from_slice(&sum.to_be_bytes());
        bytes
    };
    let mut lying = ns.clone();
    lying[19] = 0x28; // payload length 40, 32 present
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "ARP hardware type 6",
            edit(&arp, 14, &[0, 6]),
            Error::ArpHardwareType(6),
        ),
        (
            "ARP protocol IPv6",
            edit(&arp, 16, &[0x86, 0xdd]),
            Error::ArpProtocolType(0x86dd),
        ),
        ("ARP hlen 8", edit(&arp, 18, &[8]), Error::ArpHardwareLen(8)),
        ("ARP plen 6", edit(&arp, 19, &[6]), Error::ArpProtocolLen(6)),
        ("ARP op 4", edit(&arp, 20, &[0, 4]), Error::ArpOperation(4)),
        (
            "IPv6 version 4",
            edit(&ns, 14, &[0x40]),
            Error::Ipv6Version(4),
        ),
        (
            "lying payload length",
            lying,
            Error::Ipv6PayloadLength {
                declared: 40,
                available: 32,
            },
        ),
        ("hop limit 254", edit(&ns, 21, &[254]), Error::HopLimit(254)),
        ("hop limit 1", edit(&ns, 21, &[1]), Error::HopLimit(1)),
        (
            "bad checksum",
            edit(&ns, 56, &[0x1c, 0x1f]),
            Error::Icmpv6Checksum {
                found: 0x1c1f,
                expected: 0x1c1e,
            },
        ),
        ("ICMPv6 code 3", ns_resealed(55, &[3]), Error::Icmpv6Code(3)),
        (
            "multicast target",
            ns_resealed(62, &[0xff, 0x02]),
            Error::MulticastTarget(v6("ff02:db8::2")),
        ),
        (
            "zero-length option",
            ns_resealed(79, &[0]),
            Error::ZeroLengthOption { offset: 24 },
        ),
        (
            "option past the end",
            ns_resealed(79, &[3]),
            Error::OptionOverrun {
                offset: 24,
                len: 24,
                available: 8,
            },
        ),
        (
            "IPv6 extension header",
            edit(&ns, 20, &[0]),
            Error::Unsupported(Unsupported::NextHeader(0)),
        ),
        (
            "IPv4",
            edit(&arp, 12, &[0x08, 0x00]),
            Error::Unsupported(Unsupported::EtherType(0x0800)),
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(Frame::parse(&bytes), Err(expected), "{name}");
    }
}

/// Cutting a golden frame short at every length yields the error of the layer that is cut.
#[test]
fn golden_frames_truncated_at_every_length() {
    use super::Layer;
    let arp = hex(KERNEL_ARP_REQUEST);
    for len in 0..arp.len() {
        let expected = match len {
            0..14 => Error::Truncated {
                layer: Layer::Ethernet,
                needed: 14,
                available: len,
            },
            14..22 => Error::Truncated {
                layer: Layer::Arp,
                needed: 8,
                available: len - 14,
            },
            _ => Error::Truncated {
                layer: Layer::Arp,
                needed: 28,
                available: len - 14,
            },
        };
        assert_eq!(Frame::parse(&arp[..len]), Err(expected), "ARP cut at {len}");
    }
    let ns = hex(KERNEL_NS);
    for len in 0..ns.len() {
        let expected = match len {
            0..14 => Error::Truncated {
                layer: Layer::Ethernet,
                needed: 14,
                available: len,
            },
            14..54 => Error::Truncated {
                layer: Layer::Ipv6,
                needed: 40,
                available: len - 14,
            },
            _ => Error::Ipv6PayloadLength {
                declared: 32,
                available: len - 54,
            },
        };
        assert_eq!(Frame::parse(&ns[..len]), Err(expected), "NS cut at {len}");
    }
}

/// An IPv6 payload length that claims less than the NDP message holds: the codec reads only
/// what is declared (the rest is padding to it), so the message is too short, cut, or fails
/// its checksum over the declared bytes, and is never read past the declared end.
#[test]
fn payload_length_shorter_than_the_message() {
    use super::Layer;
    let ns = hex(KERNEL_NS);
    let declare = |len: u16| {
        let mut bytes = ns.clone();
        bytes[18..20].copy_from_slice(&len.to_be_bytes());
        bytes
    };
    assert_eq!(
        Frame::parse(&declare(0)),
        Err(Error::Truncated {
            layer: Layer::Icmpv6,
            needed: 4,
            available: 0,
        })
    );
    assert_eq!(Frame::parse(&declare(16)), Err(Error::NdpTooShort(16)));
    // 24 bytes: the solicitation without its option; the checksum covered the option.
    assert!(matches!(
        Frame::parse(&declare(24)),
        Err(Error::Icmpv6Checksum { .. })
    ));
    // 30 bytes: the option cut in two; the checksum catches it first.
    assert!(matches!(
        Frame::parse(&declare(30)),
        Err(Error::Icmpv6Checksum { .. })
    ));
}

/// ARP frames whose declared address lengths disagree with the bytes present are refused for
/// the lengths whatever follows, so a parser never reads addresses at the wrong offsets.
#[test]
fn arp_address_lengths_that_lie() {
    let arp = hex(KERNEL_ARP_REQUEST);
    let with = |at: usize, value: u8, keep: usize| {
        let mut bytes = arp.clone();
        bytes[at] = value;
        bytes.truncate(keep);
        bytes
    };
    for (bytes, expected) in [
        (with(18, 255, arp.len()), Error::ArpHardwareLen(255)),
        (with(18, 4, 14 + 24), Error::ArpHardwareLen(4)),
        (with(19, 0, arp.len()), Error::ArpProtocolLen(0)),
        (with(19, 6, 14 + 8), Error::ArpProtocolLen(6)),
    ] {
        assert_eq!(Frame::parse(&bytes), Err(expected));
    }
}
