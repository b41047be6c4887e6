//! What the responder does with one received frame: answer it, or drop it and say why.
//!
//! [`decide`] is the whole policy and is pure. The I/O loop owns the socket, the interface's
//! MAC and the current set of owned IPs; it hands each frame here, sends the reply if there is
//! one and counts the drop reason otherwise.
//!
//! The rules, in order:
//! - only well-formed ARP (RFC 826) and NS/NA (RFC 4861) frames are considered;
//! - VLAN-tagged frames are dropped: ownership is per interface, and a tagged frame belongs to
//!   another broadcast domain (its VLAN interface sees it untagged);
//! - our own frames, and frames from group or zero source addresses, are dropped;
//! - frames unicast to another MAC, and solicitations sent to an IPv6 address that is neither
//!   the target nor its solicited-node group, are not for us;
//! - ARP replies, gratuitous ARP and NAs are never answered; when they claim an IP we own they
//!   are reported as a conflict;
//! - an ARP request (probes from 0.0.0.0 included) or an NS (DAD probes from `::` included)
//!   is answered exactly when its target IP is owned.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

use crate::packet::build;
use crate::packet::ipv6;
use crate::packet::ndp;
use crate::packet::{Error, Frame, MacAddr, NdpDatagram, Payload, Unsupported, arp};

/// The IPs this node owns right now on one interface.
pub trait OwnedAddrs {
    fn owns(&self, ip: IpAddr) -> bool;
}

impl<S: BuildHasher> OwnedAddrs for HashSet<IpAddr, S> {
    fn owns(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

impl OwnedAddrs for BTreeSet<IpAddr> {
    fn owns(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

impl OwnedAddrs for [IpAddr] {
    fn owns(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

/// The outcome for one received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Reply(Reply),
    Drop(DropReason),
}

/// A frame to send back on the interface the request came in on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The complete Ethernet frame.
    pub frame: Vec<u8>,
    /// The owned IP the reply announces.
    pub ip: IpAddr,
    pub kind: ReplyKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// An ARP reply, to a request or to a probe.
    Arp,
    /// A Neighbor Advertisement, to a solicitation or to a DAD probe.
    NeighborAdvert,
}

/// Why a frame was not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Well-formed, but not ARP or NS/NA (IPv4, other ICMPv6, stacked VLANs, ...).
    Unsupported(Unsupported),
    /// Malformed, or invalid per RFC 826 / RFC 4861.
    Malformed(Error),
    /// Carries an 802.1Q tag.
    VlanTagged,
    /// Sent by this interface (our MAC as the source or in the ARP/NDP payload).
    OwnFrame,
    /// A group or all-zero source MAC, or an ARP sender IP that no host can have.
    BadSource,
    /// Unicast to another MAC, or to an IPv6 destination that does not match the target.
    NotForUs,
    /// An ARP reply or a Neighbor Advertisement for an IP we do not own.
    NotRequest,
    /// A gratuitous ARP for an IP we do not own.
    Gratuitous,
    /// A request for an IP this node does not own on this interface.
    NotOwned,
    /// Another MAC announced an IP we own (ARP reply, gratuitous ARP or NA).
    Conflict,
}

impl DropReason {
    /// A short, stable name for a metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Unsupported(_) => "unsupported",
            DropReason::Malformed(_) => "malformed",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::OwnFrame => "own_frame",
            DropReason::BadSource => "bad_source",
            DropReason::NotForUs => "not_for_us",
            DropReason::NotRequest => "not_request",
            DropReason::Gratuitous => "gratuitous",
            DropReason::NotOwned => "not_owned",
            DropReason::Conflict => "conflict",
        }
    }
}

/// Decides what to do with `frame`, received on an interface whose MAC is `our_mac` and on
/// which this node owns exactly the IPs in `owned`.
pub fn decide<O: OwnedAddrs + ?Sized>(frame: &[u8], our_mac: MacAddr, owned: &O) -> Decision {
    match decide_parsed(frame, our_mac, owned) {
        Ok(reply) => Decision::Reply(reply),
        Err(reason) => Decision::Drop(reason),
    }
}

fn decide_parsed<O: OwnedAddrs + ?Sized>(
    bytes: &[u8],
    our_mac: MacAddr,
    owned: &O,
) -> Result<Reply, DropReason> {
    let frame = Frame::parse(bytes).map_err(|error| match error {
        Error::Unsupported(what) => DropReason::Unsupported(what),
        malformed => DropReason::Malformed(malformed),
    })?;
    if frame.vlan.is_some() {
        return Err(DropReason::VlanTagged);
    }
    if frame.src == our_mac {
        return Err(DropReason::OwnFrame);
    }
    if !frame.src.is_unicast() {
        return Err(DropReason::BadSource);
    }
    match frame.payload {
        Payload::Arp(arp) => decide_arp(&frame, &arp, our_mac, owned),
        Payload::Ndp(ndp) => decide_ndp(&frame, &ndp, our_mac, owned),
    }
}

fn decide_arp<O: OwnedAddrs + ?Sized>(
    frame: &Frame,
    arp: &arp::Repr,
    our_mac: MacAddr,
    owned: &O,
) -> Result<Reply, DropReason> {
    if arp.sender_mac == our_mac {
        return Err(DropReason::OwnFrame);
    }
    if !arp.sender_mac.is_unicast() || !is_host_or_unspecified(arp.sender_ip) {
        return Err(DropReason::BadSource);
    }
    if frame.dst != our_mac && !frame.dst.is_broadcast() {
        return Err(DropReason::NotForUs);
    }
    let claims_ours = owned.owns(IpAddr::V4(arp.sender_ip));
    if arp.operation == arp::Operation::Reply {
        return Err(if claims_ours {
            DropReason::Conflict
        } else {
            DropReason::NotRequest
        });
    }
    if arp.is_gratuitous() {
        return Err(if claims_ours {
            DropReason::Conflict
        } else {
            DropReason::Gratuitous
        });
    }
    let ip = IpAddr::V4(arp.target_ip);
    if !owned.owns(ip) {
        return Err(DropReason::NotOwned);
    }
    let reply = build::arp_reply(frame, our_mac).ok_or(DropReason::NotRequest)?;
    Ok(Reply {
        frame: reply.to_bytes(),
        ip,
        kind: ReplyKind::Arp,
    })
}

fn decide_ndp<O: OwnedAddrs + ?Sized>(
    frame: &Frame,
    ndp: &NdpDatagram,
    our_mac: MacAddr,
    owned: &O,
) -> Result<Reply, DropReason> {
    let target = ndp.message.target();
    let ip = IpAddr::V6(target);
    let (link_addr, solicit) = match ndp.message {
        ndp::Repr::NeighborSolicit {
            source_link_addr, ..
        } => (source_link_addr, true),
        ndp::Repr::NeighborAdvert {
            target_link_addr, ..
        } => (target_link_addr, false),
    };
    if link_addr == Some(our_mac) {
        return Err(DropReason::OwnFrame);
    }
    let expected_dst_mac = if ndp.dst.is_multicast() {
        ipv6::multicast_mac(ndp.dst)
    } else {
        our_mac
    };
    if frame.dst != expected_dst_mac {
        return Err(DropReason::NotForUs);
    }
    if !solicit {
        return Err(if owned.owns(ip) {
            DropReason::Conflict
        } else {
            DropReason::NotRequest
        });
    }
    if !owned.owns(ip) {
        return Err(DropReason::NotOwned);
    }
    if ndp.dst != target && ndp.dst != ipv6::solicited_node(target) {
        return Err(DropReason::NotForUs);
    }
    let reply = build::neighbor_advert_reply(frame, our_mac).ok_or(DropReason::NotRequest)?;
    Ok(Reply {
        frame: reply.to_bytes(),
        ip,
        kind: ReplyKind::NeighborAdvert,
    })
}

/// An ARP sender IP a host can have, or 0.0.0.0 (RFC 5227 probes).
fn is_host_or_unspecified(ip: Ipv4Addr) -> bool {
    !(ip.is_multicast() || ip.is_broadcast() || ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::VlanTag;
    use crate::packet::build::{GratuitousForm, gratuitous_arp, unsolicited_neighbor_advert};
    use crate::packet::ndp::AdvertFlags;
    use std::net::Ipv6Addr;

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    const CLIENT: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0c]);
    const OTHER_NODE: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0d]);

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn owned(ips: &[&str]) -> BTreeSet<IpAddr> {
        ips.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn mk_arp(dst: MacAddr, op: arp::Operation, sender_ip: &str, target_ip: &str) -> Frame {
        Frame {
            dst,
            src: CLIENT,
            vlan: None,
            payload: Payload::Arp(arp::Repr {
                operation: op,
                sender_mac: CLIENT,
                sender_ip: v4(sender_ip),
                target_mac: MacAddr::ZERO,
                target_ip: v4(target_ip),
            }),
        }
    }

    fn mk_request(target_ip: &str) -> Frame {
        mk_arp(
            MacAddr::BROADCAST,
            arp::Operation::Request,
            "198.51.100.1",
            target_ip,
        )
    }

    fn mk_ns(src: &str, dst: &str, target: &str) -> Frame {
        let dst = v6(dst);
        let src = v6(src);
        Frame {
            dst: if dst.is_multicast() {
                ipv6::multicast_mac(dst)
            } else {
                OURS
            },
            src: CLIENT,
            vlan: None,
            payload: Payload::Ndp(NdpDatagram {
                src,
                dst,
                message: ndp::Repr::NeighborSolicit {
                    target: v6(target),
                    source_link_addr: (!src.is_unspecified()).then_some(CLIENT),
                },
            }),
        }
    }

    fn mk_na(src_mac: MacAddr, target: &str) -> Frame {
        Frame {
            src: src_mac,
            ..unsolicited_neighbor_advert(src_mac, v6(target))
        }
    }

    fn with<F: FnOnce(&mut Frame)>(mut frame: Frame, f: F) -> Frame {
        f(&mut frame);
        frame
    }

    fn dropped(reason: DropReason) -> Decision {
        Decision::Drop(reason)
    }

    fn answers(frame: &Frame) -> Decision {
        let reply = build::arp_reply(frame, OURS)
            .or_else(|| build::neighbor_advert_reply(frame, OURS))
            .unwrap();
        let (ip, kind) = match frame.payload {
            Payload::Arp(arp) => (IpAddr::V4(arp.target_ip), ReplyKind::Arp),
            Payload::Ndp(ndp) => (IpAddr::V6(ndp.message.target()), ReplyKind::NeighborAdvert),
        };
        Decision::Reply(Reply {
            frame: reply.to_bytes(),
            ip,
            kind,
        })
    }

    #[test]
    fn decision_table() {
        let vip4 = "198.51.100.10";
        let vip6 = "2001:db8::10";
        let mine = owned(&[vip4, vip6]);
        let none = owned(&[]);
        let request = mk_request(vip4);
        let probe = mk_arp(MacAddr::BROADCAST, arp::Operation::Request, "0.0.0.0", vip4);
        let unicast_request = with(mk_request(vip4), |f| f.dst = OURS);
        let ns = mk_ns("2001:db8::1", "ff02::1:ff00:10", vip6);
        let unicast_ns = mk_ns("2001:db8::1", vip6, vip6);
        let dad = mk_ns("::", "ff02::1:ff00:10", vip6);

        let cases: Vec<(&str, Frame, &BTreeSet<IpAddr>, Decision)> = vec![
            ("ARP request, owned", request, &mine, answers(&request)),
            (
                "ARP request, not owned",
                request,
                &none,
                dropped(DropReason::NotOwned),
            ),
            (
                "ARP request for another IP",
                mk_request("198.51.100.11"),
                &mine,
                dropped(DropReason::NotOwned),
            ),
            ("ARP probe, owned", probe, &mine, answers(&probe)),
            (
                "ARP probe, not owned",
                probe,
                &none,
                dropped(DropReason::NotOwned),
            ),
            (
                "unicast ARP request",
                unicast_request,
                &mine,
                answers(&unicast_request),
            ),
            (
                "ARP request unicast to another node",
                with(mk_request(vip4), |f| f.dst = OTHER_NODE),
                &mine,
                dropped(DropReason::NotForUs),
            ),
            (
                "ARP request from our MAC",
                with(mk_request(vip4), |f| f.src = OURS),
                &mine,
                dropped(DropReason::OwnFrame),
            ),
            (
                "ARP request naming our MAC as sender",
                with(mk_request(vip4), |f| {
                    if let Payload::Arp(a) = &mut f.payload {
                        a.sender_mac = OURS;
                    }
                }),
                &mine,
                dropped(DropReason::OwnFrame),
            ),
            (
                "our own gratuitous ARP",
                gratuitous_arp(OURS, v4(vip4), GratuitousForm::Request),
                &mine,
                dropped(DropReason::OwnFrame),
            ),
            (
                "ARP request from a multicast MAC",
                with(mk_request(vip4), |f| f.src = MacAddr([1, 0, 0x5e, 0, 0, 1])),
                &mine,
                dropped(DropReason::BadSource),
            ),
            (
                "ARP request with a broadcast sender hardware address",
                with(mk_request(vip4), |f| {
                    if let Payload::Arp(a) = &mut f.payload {
                        a.sender_mac = MacAddr::BROADCAST;
                    }
                }),
                &mine,
                dropped(DropReason::BadSource),
            ),
            (
                "ARP request from a multicast sender IP",
                mk_arp(
                    MacAddr::BROADCAST,
                    arp::Operation::Request,
                    "224.0.0.1",
                    vip4,
                ),
                &mine,
                dropped(DropReason::BadSource),
            ),
            (
                "ARP request from the broadcast sender IP",
                mk_arp(
                    MacAddr::BROADCAST,
                    arp::Operation::Request,
                    "255.255.255.255",
                    vip4,
                ),
                &mine,
                dropped(DropReason::BadSource),
            ),
            (
                "ARP reply from a client",
                mk_arp(OURS, arp::Operation::Reply, "198.51.100.1", vip4),
                &mine,
                dropped(DropReason::NotRequest),
            ),
            (
                "ARP reply claiming our IP",
                mk_arp(MacAddr::BROADCAST, arp::Operation::Reply, vip4, vip4),
                &mine,
                dropped(DropReason::Conflict),
            ),
            (
                "gratuitous ARP from another node for our IP",
                gratuitous_arp(OTHER_NODE, v4(vip4), GratuitousForm::Request),
                &mine,
                dropped(DropReason::Conflict),
            ),
            (
                "gratuitous ARP for an IP we do not own",
                gratuitous_arp(OTHER_NODE, v4(vip4), GratuitousForm::Request),
                &none,
                dropped(DropReason::Gratuitous),
            ),
            (
                "gratuitous ARP reply for an IP we do not own",
                gratuitous_arp(OTHER_NODE, v4(vip4), GratuitousForm::Reply),
                &none,
                dropped(DropReason::NotRequest),
            ),
            (
                "tagged ARP request",
                with(mk_request(vip4), |f| {
                    f.vlan = Some(VlanTag {
                        pcp: 0,
                        dei: false,
                        vid: 10,
                    })
                }),
                &mine,
                dropped(DropReason::VlanTagged),
            ),
            ("NS, owned", ns, &mine, answers(&ns)),
            ("NS, not owned", ns, &none, dropped(DropReason::NotOwned)),
            ("unicast NS, owned", unicast_ns, &mine, answers(&unicast_ns)),
            ("DAD probe for our IP", dad, &mine, answers(&dad)),
            (
                "DAD probe for another IP",
                dad,
                &none,
                dropped(DropReason::NotOwned),
            ),
            (
                "NS to another solicited-node group",
                mk_ns("2001:db8::1", "ff02::1:ff00:11", vip6),
                &mine,
                dropped(DropReason::NotForUs),
            ),
            (
                "NS to another unicast address",
                mk_ns("2001:db8::1", "2001:db8::11", vip6),
                &mine,
                dropped(DropReason::NotForUs),
            ),
            (
                "NS whose MAC does not match its group",
                with(ns, |f| f.dst = MacAddr([0x33, 0x33, 0xff, 0, 0, 0x11])),
                &mine,
                dropped(DropReason::NotForUs),
            ),
            (
                "unicast NS to another node's MAC",
                with(unicast_ns, |f| f.dst = OTHER_NODE),
                &mine,
                dropped(DropReason::NotForUs),
            ),
            (
                "NS from our MAC",
                with(ns, |f| f.src = OURS),
                &mine,
                dropped(DropReason::OwnFrame),
            ),
            (
                "NS naming our MAC as its source link-layer address",
                with(ns, |f| {
                    if let Payload::Ndp(NdpDatagram {
                        message:
                            ndp::Repr::NeighborSolicit {
                                source_link_addr, ..
                            },
                        ..
                    }) = &mut f.payload
                    {
                        *source_link_addr = Some(OURS);
                    }
                }),
                &mine,
                dropped(DropReason::OwnFrame),
            ),
            (
                "NA from another node for our IP",
                mk_na(OTHER_NODE, vip6),
                &mine,
                dropped(DropReason::Conflict),
            ),
            (
                "NA for an IP we do not own",
                mk_na(OTHER_NODE, vip6),
                &none,
                dropped(DropReason::NotRequest),
            ),
            (
                "our own unsolicited NA",
                unsolicited_neighbor_advert(OURS, v6(vip6)),
                &mine,
                dropped(DropReason::OwnFrame),
            ),
        ];
        for (name, frame, owned, expected) in cases {
            let bytes = frame.to_bytes();
            assert_eq!(decide(&bytes, OURS, owned), expected, "{name}");
        }
    }

    #[test]
    fn replies_carry_the_owned_ip_and_our_mac() {
        let mine = owned(&["198.51.100.10"]);
        let Decision::Reply(reply) = decide(&mk_request("198.51.100.10").to_bytes(), OURS, &mine)
        else {
            panic!("no reply")
        };
        assert_eq!(reply.ip, "198.51.100.10".parse::<IpAddr>().unwrap());
        assert_eq!(reply.kind, ReplyKind::Arp);
        let frame = Frame::parse(&reply.frame).unwrap();
        assert_eq!(frame.dst, CLIENT);
        assert_eq!(frame.src, OURS);

        let mine = owned(&["2001:db8::10"]);
        let dad = mk_ns("::", "ff02::1:ff00:10", "2001:db8::10");
        let Decision::Reply(reply) = decide(&dad.to_bytes(), OURS, &mine) else {
            panic!("no reply")
        };
        assert_eq!(reply.kind, ReplyKind::NeighborAdvert);
        let frame = Frame::parse(&reply.frame).unwrap();
        let Payload::Ndp(na) = frame.payload else {
            panic!("not NDP")
        };
        assert_eq!(na.dst, ipv6::ALL_NODES);
        assert_eq!(
            na.message,
            ndp::Repr::NeighborAdvert {
                flags: AdvertFlags {
                    router: false,
                    solicited: false,
                    override_: true
                },
                target: v6("2001:db8::10"),
                target_link_addr: Some(OURS),
            }
        );
    }

    #[test]
    fn malformed_and_unsupported_frames_are_named() {
        let mine = owned(&["198.51.100.10"]);
        let mut bytes = mk_request("198.51.100.10").to_bytes();
        bytes[15] = 6;
        assert_eq!(
            decide(&bytes, OURS, &mine),
            dropped(DropReason::Malformed(Error::ArpHardwareType(6)))
        );
        assert_eq!(
            decide(&bytes[..20], OURS, &mine),
            dropped(DropReason::Malformed(Error::Truncated {
                layer: crate::packet::Layer::Arp,
                needed: 8,
                available: 6
            }))
        );
        bytes[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(
            decide(&bytes, OURS, &mine),
            dropped(DropReason::Unsupported(Unsupported::EtherType(0x0800)))
        );
        assert_eq!(
            decide(&[], OURS, &mine),
            dropped(DropReason::Malformed(Error::Truncated {
                layer: crate::packet::Layer::Ethernet,
                needed: 14,
                available: 0
            }))
        );
    }

    #[test]
    fn owned_set_types_agree() {
        let ip: IpAddr = "198.51.100.10".parse().unwrap();
        let frame = mk_request("198.51.100.10").to_bytes();
        let hashed: HashSet<IpAddr> = [ip].into();
        let sorted: BTreeSet<IpAddr> = [ip].into();
        let slice: &[IpAddr] = &[ip];
        let expected = decide(&frame, OURS, &sorted);
        assert!(matches!(expected, Decision::Reply(_)));
        assert_eq!(decide(&frame, OURS, &hashed), expected);
        assert_eq!(decide(&frame, OURS, slice), expected);
    }

    #[test]
    fn labels_are_distinct() {
        let reasons = [
            DropReason::Unsupported(Unsupported::EtherType(0)),
            DropReason::Malformed(Error::HopLimit(1)),
            DropReason::VlanTagged,
            DropReason::OwnFrame,
            DropReason::BadSource,
            DropReason::NotForUs,
            DropReason::NotRequest,
            DropReason::Gratuitous,
            DropReason::NotOwned,
            DropReason::Conflict,
        ];
        let labels: BTreeSet<&str> = reasons.iter().map(DropReason::label).collect();
        assert_eq!(labels.len(), reasons.len());
    }
}

/// The safety property: whatever arrives, a reply only ever announces an owned IP, from our
/// MAC.
#[cfg(test)]
mod props {
    use std::net::Ipv6Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::packet::VlanTag;

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);

    /// A small universe of addresses so that generated frames often hit owned ones.
    fn v4_pool() -> Vec<Ipv4Addr> {
        (1..=6).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect()
    }

    fn v6_pool() -> Vec<Ipv6Addr> {
        (1..=6)
            .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
            .collect()
    }

    fn owned_set() -> impl Strategy<Value = BTreeSet<IpAddr>> {
        prop::collection::vec(any::<bool>(), 12).prop_map(|mask| {
            let all = v4_pool()
                .into_iter()
                .map(IpAddr::V4)
                .chain(v6_pool().into_iter().map(IpAddr::V6));
            all.zip(mask)
                .filter(|(_, m)| *m)
                .map(|(ip, _)| ip)
                .collect()
        })
    }

    /// Mostly a client's MAC, so that frames get past the source checks.
    fn mac() -> impl Strategy<Value = MacAddr> {
        prop_oneof![
            6 => Just(MacAddr([2, 0, 0, 0, 0, 0x0c])),
            1 => Just(OURS),
            2 => Just(MacAddr::BROADCAST),
            1 => Just(MacAddr::ZERO),
            1 => Just(MacAddr([0x33, 0x33, 0xff, 0, 0, 1])),
            1 => any::<[u8; 6]>().prop_map(MacAddr),
        ]
    }

    fn v4() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            6 => prop::sample::select(v4_pool()),
            1 => Just(Ipv4Addr::UNSPECIFIED),
            1 => Just(Ipv4Addr::BROADCAST),
            1 => any::<[u8; 4]>().prop_map(Ipv4Addr::from),
        ]
    }

    fn v6() -> impl Strategy<Value = Ipv6Addr> {
        let pool = v6_pool();
        prop_oneof![
            6 => prop::sample::select(pool.clone()),
            1 => prop::sample::select(pool).prop_map(ipv6::solicited_node),
            1 => Just(Ipv6Addr::UNSPECIFIED),
            1 => Just(ipv6::ALL_NODES),
            1 => any::<[u8; 16]>().prop_map(Ipv6Addr::from),
        ]
    }

    fn arp_frame() -> impl Strategy<Value = Frame> {
        let dst = prop_oneof![
            3 => Just(MacAddr::BROADCAST),
            1 => Just(OURS),
            1 => mac(),
        ];
        (
            dst,
            mac(),
            prop::bool::weighted(0.8),
            mac(),
            v4(),
            mac(),
            v4(),
        )
            .prop_map(|(dst, src, request, sha, spa, tha, tpa)| Frame {
                dst,
                src,
                vlan: None,
                payload: Payload::Arp(arp::Repr {
                    operation: if request {
                        arp::Operation::Request
                    } else {
                        arp::Operation::Reply
                    },
                    sender_mac: sha,
                    sender_ip: spa,
                    target_mac: tha,
                    target_ip: tpa,
                }),
            })
    }

    /// Where an NDP message is sent: usually where its target says, sometimes elsewhere.
    #[derive(Clone, Copy, Debug)]
    enum Aim {
        SolicitedNode,
        Target,
        Anywhere(Ipv6Addr),
    }

    fn ndp_frame() -> impl Strategy<Value = Frame> {
        let aim = prop_oneof![
            3 => Just(Aim::SolicitedNode),
            2 => Just(Aim::Target),
            1 => v6().prop_map(Aim::Anywhere),
        ];
        (
            mac(),
            mac(),
            v6(),
            aim,
            v6(),
            prop::bool::weighted(0.7),
            prop::option::of(mac()),
            prop::bool::weighted(0.8),
        )
            .prop_map(
                |(dst, src, ip_src, aim, target, solicit, lladdr, dst_from_ip)| {
                    let ip_dst = match aim {
                        Aim::SolicitedNode => ipv6::solicited_node(target),
                        Aim::Target => target,
                        Aim::Anywhere(ip) => ip,
                    };
                    let message = if solicit {
                        ndp::Repr::NeighborSolicit {
                            target,
                            source_link_addr: lladdr,
                        }
                    } else {
                        ndp::Repr::NeighborAdvert {
                            flags: ndp::AdvertFlags::default(),
                            target,
                            target_link_addr: lladdr,
                        }
                    };
                    Frame {
                        // Usually make the MAC consistent with the IP so that deeper rules are hit.
                        dst: match (dst_from_ip, ip_dst.is_multicast()) {
                            (true, true) => ipv6::multicast_mac(ip_dst),
                            (true, false) => OURS,
                            (false, _) => dst,
                        },
                        src,
                        vlan: None,
                        payload: Payload::Ndp(NdpDatagram {
                            src: ip_src,
                            dst: ip_dst,
                            message,
                        }),
                    }
                },
            )
    }

    /// Raw bytes: structured frames (which may be invalid and are emitted as they are),
    /// sometimes tagged, sometimes with one byte changed, and arbitrary bytes.
    fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
        let structured = (
            prop_oneof![arp_frame(), ndp_frame()],
            prop::option::weighted(
                0.1,
                (0..4096u16).prop_map(|vid| VlanTag {
                    pcp: 0,
                    dei: false,
                    vid,
                }),
            ),
            prop::option::weighted(0.2, (any::<prop::sample::Index>(), any::<u8>())),
        )
            .prop_map(|(mut frame, vlan, edit)| {
                frame.vlan = vlan;
                let mut bytes = frame.to_bytes();
                if let Some((at, value)) = edit {
                    let at = at.index(bytes.len());
                    bytes[at] = value;
                }
                bytes
            });
        prop_oneof![
            4 => structured,
            1 => prop::collection::vec(any::<u8>(), 0..100),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]

        #[test]
        fn no_frame_gets_a_reply_for_an_ip_outside_the_owned_set(
            bytes in wire_bytes(),
            owned in owned_set(),
        ) {
            if let Decision::Reply(reply) = decide(&bytes, OURS, &owned) {
                prop_assert!(owned.contains(&reply.ip), "reply for unowned {}", reply.ip);
                let frame = Frame::parse(&reply.frame).expect("replies are valid frames");
                prop_assert_eq!(frame.src, OURS);
                let announced = match frame.payload {
                    Payload::Arp(arp) => {
                        prop_assert_eq!(arp.operation, arp::Operation::Reply);
                        prop_assert_eq!(arp.sender_mac, OURS);
                        IpAddr::V4(arp.sender_ip)
                    }
                    Payload::Ndp(NdpDatagram { src, message, .. }) => {
                        let ndp::Repr::NeighborAdvert { target, target_link_addr, .. } = message
                        else {
                            return Err(TestCaseError::fail("replied with an NS"));
                        };
                        prop_assert_eq!(target_link_addr, Some(OURS));
                        prop_assert_eq!(IpAddr::V6(src), IpAddr::V6(target));
                        IpAddr::V6(target)
                    }
                };
                prop_assert_eq!(announced, reply.ip);
                prop_assert!(owned.contains(&announced));
            }
        }

        #[test]
        fn nothing_is_answered_when_nothing_is_owned(bytes in wire_bytes()) {
            let owned: &[IpAddr] = &[];
            prop_assert!(matches!(decide(&bytes, OURS, owned), Decision::Drop(_)));
        }
    }

    /// The other half of the contract: every client request for an owned IP is answered.
    #[test]
    fn every_client_request_for_an_owned_ip_is_answered() {
        let client = MacAddr([2, 0, 0, 0, 0, 0x0c]);
        let senders = v4_pool().into_iter().chain([Ipv4Addr::UNSPECIFIED]);
        for sender in senders {
            for target in v4_pool().into_iter().filter(|t| *t != sender) {
                let request = Frame {
                    dst: MacAddr::BROADCAST,
                    src: client,
                    vlan: None,
                    payload: Payload::Arp(arp::Repr {
                        operation: arp::Operation::Request,
                        sender_mac: client,
                        sender_ip: sender,
                        target_mac: MacAddr::ZERO,
                        target_ip: target,
                    }),
                };
                let owned: BTreeSet<IpAddr> = [IpAddr::V4(target)].into();
                let decision = decide(&request.to_bytes(), OURS, &owned);
                assert!(
                    matches!(&decision, Decision::Reply(r) if r.ip == IpAddr::V4(target)),
                    "{sender} asking for {target}: {decision:?}"
                );
            }
        }
        for target in v6_pool() {
            for src in [
                Ipv6Addr::UNSPECIFIED,
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99),
            ] {
                let dst = ipv6::solicited_node(target);
                let ns = Frame {
                    dst: ipv6::multicast_mac(dst),
                    src: client,
                    vlan: None,
                    payload: Payload::Ndp(NdpDatagram {
                        src,
                        dst,
                        message: ndp::Repr::NeighborSolicit {
                            target,
                            source_link_addr: (!src.is_unspecified()).then_some(client),
                        },
                    }),
                };
                let owned: BTreeSet<IpAddr> = [IpAddr::V6(target)].into();
                let decision = decide(&ns.to_bytes(), OURS, &owned);
                assert!(
                    matches!(&decision, Decision::Reply(r) if r.ip == IpAddr::V6(target)),
                    "{src} asking for {target}: {decision:?}"
                );
            }
        }
    }
}
