//! The frames a speaker sends: replies to ARP requests and Neighbor Solicitations, and the
//! announcements that move neighbour caches on takeover.
//!
//! Replies keep the request's VLAN tag; announcements are untagged (set [`Frame::vlan`] to tag
//! them).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ethernet::MacAddr;
use super::ipv6::{self, ALL_NODES};
use super::ndp::{self, AdvertFlags};
use super::{Frame, NdpDatagram, Payload, arp};

/// The two gratuitous ARP forms. Hosts differ in which one updates their cache, so a takeover
/// sends both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GratuitousForm {
    /// An RFC 5227 announcement: a request with sender and target IP both set to the address
    /// and an all-zero target MAC.
    Request,
    /// An RFC 2002 style reply: target MAC and sender MAC are both ours.
    Reply,
}

/// The reply to an ARP request, or `None` when `request` is not an ARP request.
///
/// It goes to the requester's MAC and names `our_mac` for the requested IP. A probe (sender IP
/// 0.0.0.0) gets the same answer with target IP 0.0.0.0, as the Linux kernel sends it.
pub fn arp_reply(request: &Frame, our_mac: MacAddr) -> Option<Frame> {
    let Payload::Arp(arp) = request.payload else {
        return None;
    };
    if arp.operation != arp::Operation::Request {
        return None;
    }
    Some(Frame {
        dst: arp.sender_mac,
        src: our_mac,
        vlan: request.vlan,
        payload: Payload::Arp(arp::Repr {
            operation: arp::Operation::Reply,
            sender_mac: our_mac,
            sender_ip: arp.target_ip,
            target_mac: arp.sender_mac,
            target_ip: arp.sender_ip,
        }),
    })
}

/// A broadcast gratuitous ARP announcing that `ip` is at `our_mac`.
pub fn gratuitous_arp(our_mac: MacAddr, ip: Ipv4Addr, form: GratuitousForm) -> Frame {
    let (operation, target_mac) = match form {
        GratuitousForm::Request => (arp::Operation::Request, MacAddr::ZERO),
        GratuitousForm::Reply => (arp::Operation::Reply, our_mac),
    };
    Frame {
        dst: MacAddr::BROADCAST,
        src: our_mac,
        vlan: None,
        payload: Payload::Arp(arp::Repr {
            operation,
            sender_mac: our_mac,
            sender_ip: ip,
            target_mac,
            target_ip: ip,
        }),
    }
}

/// The Neighbor Advertisement answering a Neighbor Solicitation, or `None` when `request` is
/// not an NS.
///
/// It is sent from the target address with the Override flag and our MAC in a target
/// link-layer option. A solicitation from an address gets a unicast answer with the Solicited
/// flag, to the MAC in its source link-layer option (or the frame's source MAC when it has
/// none). A duplicate address detection probe, from `::`, gets an unsolicited answer to
/// all-nodes (RFC 4861 section 7.2.4).
pub fn neighbor_advert_reply(request: &Frame, our_mac: MacAddr) -> Option<Frame> {
    let Payload::Ndp(NdpDatagram {
        src,
        message:
            ndp::Repr::NeighborSolicit {
                target,
                source_link_addr,
            },
        ..
    }) = request.payload
    else {
        return None;
    };
    let probe = src.is_unspecified();
    let (dst_ip, dst_mac) = if probe {
        (ALL_NODES, ipv6::multicast_mac(ALL_NODES))
    } else {
        (src, source_link_addr.unwrap_or(request.src))
    };
    Some(Frame {
        dst: dst_mac,
        src: our_mac,
        vlan: request.vlan,
        payload: Payload::Ndp(advert(
            our_mac,
            target,
            dst_ip,
            AdvertFlags {
                router: false,
                solicited: !probe,
                override_: true,
            },
        )),
    })
}

/// An unsolicited Neighbor Advertisement to all-nodes announcing that `ip` is at `our_mac`,
/// with the Override flag so that existing cache entries are replaced (RFC 4861 section 7.2.6).
pub fn unsolicited_neighbor_advert(our_mac: MacAddr, ip: Ipv6Addr) -> Frame {
    Frame {
        dst: ipv6::multicast_mac(ALL_NODES),
        src: our_mac,
        vlan: None,
        payload: Payload::Ndp(advert(
            our_mac,
            ip,
            ALL_NODES,
            AdvertFlags {
                router: false,
                solicited: false,
                override_: true,
            },
        )),
    }
}

fn advert(our_mac: MacAddr, target: Ipv6Addr, dst: Ipv6Addr, flags: AdvertFlags) -> NdpDatagram {
    NdpDatagram {
        src: target,
        dst,
        message: ndp::Repr::NeighborAdvert {
            flags,
            target,
            target_link_addr: Some(our_mac),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::VlanTag;

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    const THEIRS: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn arp_request(sender_ip: Ipv4Addr) -> Frame {
        Frame {
            dst: MacAddr::BROADCAST,
            src: THEIRS,
            vlan: Some(VlanTag {
                pcp: 0,
                dei: false,
                vid: 7,
            }),
            payload: Payload::Arp(arp::Repr {
                operation: arp::Operation::Request,
                sender_mac: THEIRS,
                sender_ip,
                target_mac: MacAddr::ZERO,
                target_ip: Ipv4Addr::new(198, 51, 100, 10),
            }),
        }
    }

    fn ns(src: &str, dst: &str, slla: Option<MacAddr>) -> Frame {
        Frame {
            dst: ipv6::solicited_node_mac(v6("2001:db8::10")),
            src: THEIRS,
            vlan: None,
            payload: Payload::Ndp(NdpDatagram {
                src: v6(src),
                dst: v6(dst),
                message: ndp::Repr::NeighborSolicit {
                    target: v6("2001:db8::10"),
                    source_link_addr: slla,
                },
            }),
        }
    }

    #[test]
    fn arp_reply_swaps_roles_and_keeps_the_tag() {
        let request = arp_request(Ipv4Addr::new(198, 51, 100, 1));
        let reply = arp_reply(&request, OURS).unwrap();
        assert_eq!(reply.dst, THEIRS);
        assert_eq!(reply.src, OURS);
        assert_eq!(reply.vlan, request.vlan);
        assert_eq!(
            reply.payload,
            Payload::Arp(arp::Repr {
                operation: arp::Operation::Reply,
                sender_mac: OURS,
                sender_ip: Ipv4Addr::new(198, 51, 100, 10),
                target_mac: THEIRS,
                target_ip: Ipv4Addr::new(198, 51, 100, 1),
            })
        );
        assert_eq!(Frame::parse(&reply.to_bytes()), Ok(reply));
    }

    #[test]
    fn arp_probe_reply_targets_the_unspecified_address() {
        let reply = arp_reply(&arp_request(Ipv4Addr::UNSPECIFIED), OURS).unwrap();
        let Payload::Arp(arp) = reply.payload else {
            panic!("not ARP")
        };
        assert_eq!(arp.target_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.dst, THEIRS);
    }

    #[test]
    fn only_requests_get_replies() {
        let mut reply = arp_request(Ipv4Addr::new(198, 51, 100, 1));
        if let Payload::Arp(arp) = &mut reply.payload {
            arp.operation = arp::Operation::Reply;
        }
        assert_eq!(arp_reply(&reply, OURS), None);
        assert_eq!(
            arp_reply(&ns("2001:db8::1", "ff02::1:ff00:10", None), OURS),
            None
        );
        assert_eq!(
            neighbor_advert_reply(&arp_request(Ipv4Addr::new(198, 51, 100, 1)), OURS),
            None
        );
        let na = unsolicited_neighbor_advert(OURS, v6("2001:db8::10"));
        assert_eq!(neighbor_advert_reply(&na, OURS), None);
    }

    #[test]
    fn gratuitous_arp_forms() {
        let ip = Ipv4Addr::new(198, 51, 100, 10);
        let request = gratuitous_arp(OURS, ip, GratuitousForm::Request);
        let reply = gratuitous_arp(OURS, ip, GratuitousForm::Reply);
        for (frame, op, tha) in [
            (request, arp::Operation::Request, MacAddr::ZERO),
            (reply, arp::Operation::Reply, OURS),
        ] {
            assert_eq!(frame.dst, MacAddr::BROADCAST);
            assert_eq!(
                frame.payload,
                Payload::Arp(arp::Repr {
                    operation: op,
                    sender_mac: OURS,
                    sender_ip: ip,
                    target_mac: tha,
                    target_ip: ip,
                })
            );
        }
        // Hand-checked: broadcast, ours, ARP, Ethernet/IPv4 6/4, op 1, SHA SPA THA=0 TPA=SPA.
        assert_eq!(
            request.to_bytes(),
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x0b, 0x08, 0x06, //
                0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0x0b, 198, 51, 100, 10, //
                0, 0, 0, 0, 0, 0, 198, 51, 100, 10,
            ]
        );
    }

    #[test]
    fn advert_for_a_solicitation_with_source_link_addr() {
        let other_mac = MacAddr([2, 0, 0, 0, 0, 0x0c]);
        let request = ns("2001:db8::1", "ff02::1:ff00:10", Some(other_mac));
        let reply = neighbor_advert_reply(&request, OURS).unwrap();
        assert_eq!(
            reply.dst, other_mac,
            "the option wins over the frame source"
        );
        assert_eq!(reply.src, OURS);
        assert_eq!(
            reply.payload,
            Payload::Ndp(NdpDatagram {
                src: v6("2001:db8::10"),
                dst: v6("2001:db8::1"),
                message: ndp::Repr::NeighborAdvert {
                    flags: AdvertFlags {
                        router: false,
                        solicited: true,
                        override_: true
                    },
                    target: v6("2001:db8::10"),
                    target_link_addr: Some(OURS),
                },
            })
        );
        assert_eq!(Frame::parse(&reply.to_bytes()), Ok(reply));
    }

    #[test]
    fn advert_for_a_unicast_solicitation_without_source_link_addr() {
        let request = ns("2001:db8::1", "2001:db8::10", None);
        let reply = neighbor_advert_reply(&request, OURS).unwrap();
        assert_eq!(reply.dst, THEIRS);
    }

    #[test]
    fn advert_for_a_dad_probe_goes_to_all_nodes_unsolicited() {
        let request = ns("::", "ff02::1:ff00:10", None);
        let reply = neighbor_advert_reply(&request, OURS).unwrap();
        assert_eq!(reply.dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        let Payload::Ndp(ndp) = reply.payload else {
            panic!("not NDP")
        };
        assert_eq!(ndp.dst, ALL_NODES);
        assert_eq!(
            ndp.message,
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
        assert_eq!(Frame::parse(&reply.to_bytes()), Ok(reply));
    }

    #[test]
    fn unsolicited_advert() {
        let frame = unsolicited_neighbor_advert(OURS, v6("2001:db8::10"));
        let bytes = frame.to_bytes();
        assert_eq!(bytes.len(), 14 + 40 + 32);
        assert_eq!(&bytes[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        // Hop limit 255, to ff02::1, type 136, flags O only, TLLA option with our MAC.
        assert_eq!(bytes[14 + 7], 255);
        assert_eq!(&bytes[14 + 24..14 + 40], &ALL_NODES.octets());
        assert_eq!(bytes[54], 136);
        assert_eq!(bytes[54 + 4], 0x20);
        assert_eq!(&bytes[54 + 24..], &[2, 1, 2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(Frame::parse(&bytes), Ok(frame));
    }
}
