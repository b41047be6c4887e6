//! Property tests: the parser never panics, and whatever it accepts re-emits to bytes that
//! parse to the same value.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::golden_tests::hex;
use super::ndp::{self, AdvertFlags};
use super::{Frame, MacAddr, NdpDatagram, Payload, VlanTag, arp, checksum, ipv6};

/// Frames the mutation strategy starts from: kernel ARP, NS, NA, a DAD probe and a tagged ARP.
const SEEDS: &[&str] = &[
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000201000000000000c0000202",
    "3333ff00000202000000000a86dd6000000000203aff20010db8000000000000000000000001ff0200000000000000000001ff00000287001c1e0000000020010db8000000000000000000000002010102000000000a",
    "02000000000a02000000000b86dd6000000000203aff20010db800000000000000000000000220010db800000000000000000000000188008a686000000020010db8000000000000000000000002020102000000000b",
    "3333ff00000102000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00000187005a490000000020010db80000000000000000000000010e01be4787dd9e75",
    "ffffffffffff02000000000a810020640806000108000604000102000000000ac0000201000000000000c0000202",
];

fn assert_reparses(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = Frame::parse(bytes) {
        let emitted = frame.to_bytes();
        prop_assert_eq!(emitted.len(), frame.buffer_len());
        prop_assert_eq!(Frame::parse(&emitted), Ok(frame));
    }
    Ok(())
}

/// Recomputes the ICMPv6 checksum of an untagged IPv6 frame, when it is long enough to have
/// one, so that mutations reach the checks behind the checksum.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= 58 && bytes[12..14] == [0x86, 0xdd] {
        let src = ipv6::ipv6_at(bytes, 22);
        let dst = ipv6::ipv6_at(bytes, 38);
        let declared = usize::from(u16::from_be_bytes([bytes[18], bytes[19]]));
        let end = (54 + declared).min(bytes.len());
        if end >= 58 {
            let sum = checksum::icmpv6(src, dst, &bytes[54..end]);
            bytes[56..58].copy_from_slice(&sum.to_be_bytes());
        }
    }
}

fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(seed, edits, cut, truncate, resealed)| {
            let mut bytes = hex(SEEDS[seed]);
            for (at, value) in edits {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            if resealed {
                reseal(&mut bytes);
            }
            bytes
        })
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn vlan() -> impl Strategy<Value = Option<VlanTag>> {
    prop::option::of(
        (0..8u8, any::<bool>(), 0..4096u16).prop_map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid }),
    )
}

fn arp_repr() -> impl Strategy<Value = arp::Repr> {
    (
        any::<bool>(),
        mac(),
        any::<[u8; 4]>(),
        mac(),
        any::<[u8; 4]>(),
    )
        .prop_map(
            |(request, sender_mac, sender_ip, target_mac, target_ip)| arp::Repr {
                operation: if request {
                    arp::Operation::Request
                } else {
                    arp::Operation::Reply
                },
                sender_mac,
                sender_ip: Ipv4Addr::from(sender_ip),
                target_mac,
                target_ip: Ipv4Addr::from(target_ip),
            },
        )
}

fn ipv6_addr() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(Ipv6Addr::from),
        Just(Ipv6Addr::UNSPECIFIED),
        Just(ipv6::ALL_NODES),
        any::<[u8; 16]>().prop_map(|o| ipv6::solicited_node(Ipv6Addr::from(o))),
    ]
}

/// Any NS or NA datagram, adjusted to satisfy RFC 4861's validity rules.
fn ndp_datagram() -> impl Strategy<Value = NdpDatagram> {
    (
        any::<bool>(),
        ipv6_addr(),
        ipv6_addr(),
        any::<[u8; 16]>(),
        prop::option::of(mac()),
        any::<[bool; 3]>(),
    )
        .prop_map(|(solicit, src, dst, target, link_addr, [r, s, o])| {
            let src = if src.is_multicast() {
                Ipv6Addr::UNSPECIFIED
            } else {
                src
            };
            let mut target = Ipv6Addr::from(target);
            if target.is_multicast() {
                target = Ipv6Addr::from(u128::from(target) >> 8);
            }
            let message = if solicit {
                ndp::Repr::NeighborSolicit {
                    target,
                    source_link_addr: if src.is_unspecified() {
                        None
                    } else {
                        link_addr
                    },
                }
            } else {
                ndp::Repr::NeighborAdvert {
                    flags: AdvertFlags {
                        router: r,
                        solicited: s && !dst.is_multicast(),
                        override_: o,
                    },
                    target,
                    target_link_addr: link_addr,
                }
            };
            let dst = if solicit && src.is_unspecified() {
                ipv6::solicited_node(target)
            } else {
                dst
            };
            NdpDatagram { src, dst, message }
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    let payload = prop_oneof![
        arp_repr().prop_map(Payload::Arp),
        ndp_datagram().prop_map(Payload::Ndp),
    ];
    (mac(), mac(), vlan(), payload).prop_map(|(dst, src, vlan, payload)| Frame {
        dst,
        src,
        vlan,
        payload,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        assert_reparses(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        ethertype in prop_oneof![Just([0x08u8, 0x06]), Just([0x86, 0xdd]), Just([0x81, 0x00])],
        body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = vec![0xff; 12];
        bytes.extend_from_slice(&ethertype);
        bytes.extend_from_slice(&body);
        assert_reparses(&bytes)?;
    }

    #[test]
    fn mutated_golden_frames_never_panic(bytes in mutated_seed()) {
        assert_reparses(&bytes)?;
    }

    #[test]
    fn every_valid_frame_round_trips(frame in frame()) {
        let bytes = frame.to_bytes();
        prop_assert_eq!(bytes.len(), frame.buffer_len());
        prop_assert_eq!(Frame::parse(&bytes), Ok(frame));
    }

    #[test]
    fn any_single_bit_flip_in_an_ndp_frame_is_caught_or_harmless(
        frame in ndp_datagram().prop_map(|d| Frame {
            dst: MacAddr::BROADCAST,
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            vlan: None,
            payload: Payload::Ndp(d),
        }),
        bit in any::<prop::sample::Index>(),
    ) {
        // A flipped bit in the IPv6 addresses or the ICMPv6 message must fail the checksum,
        // change nothing visible (reserved bits), or be rejected by another rule.
        let mut bytes = frame.to_bytes();
        let bit = bit.index((bytes.len() - 22) * 8);
        bytes[22 + bit / 8] ^= 1 << (bit % 8);
        if let Ok(parsed) = Frame::parse(&bytes) {
            prop_assert_eq!(parsed.payload, frame.payload);
        }
    }
}

#[test]
fn every_seed_is_a_valid_frame() {
    for seed in SEEDS {
        assert!(Frame::parse(&hex(seed)).is_ok(), "{seed}");
    }
}
