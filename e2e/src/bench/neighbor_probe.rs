//! The frames a benchmark client sends to ask who has a VIP (an ARP who-has, or an ICMPv6
//! Neighbor Solicitation), and how it recognises the answers in what its packet socket
//! receives. Pure: built on the speaker's own codecs (`ironlb_speaker::packet`), so a frame
//! the speaker would reject as malformed is never counted as an answer.

use std::net::{Ipv4Addr, Ipv6Addr};

use ironlb_speaker::packet::ipv6::{solicited_node, solicited_node_mac};
use ironlb_speaker::packet::ndp;
use ironlb_speaker::packet::{Frame, MacAddr, NdpDatagram, Payload, arp};

/// Who asks: the client's MAC and addresses on the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker {
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

/// How a frame about the VIP answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A reply (ARP reply or solicited NA) addressed to the asker: this MAC has the VIP.
    Reply(MacAddr),
    /// An unsolicited announcement (gratuitous ARP, or NA without the Solicited flag) that
    /// this MAC has the VIP.
    Announcement(MacAddr),
}

impl Answer {
    pub fn mac(self) -> MacAddr {
        match self {
            Answer::Reply(m) | Answer::Announcement(m) => m,
        }
    }
}

/// A broadcast ARP who-has for `vip`.
pub fn arp_request(asker: &Asker, vip: Ipv4Addr) -> Vec<u8> {
    Frame {
        dst: MacAddr::BROADCAST,
        src: asker.mac,
        vlan: None,
        payload: Payload::Arp(arp::Repr {
            operation: arp::Operation::Request,
            sender_mac: asker.mac,
            sender_ip: asker.ipv4,
            target_mac: MacAddr::ZERO,
            target_ip: vip,
        }),
    }
    .to_bytes()
}

/// A Neighbor Solicitation for `vip` from the asker's IPv6 address to the VIP's
/// solicited-node group, with the asker's MAC as source link-layer option; `None` when the
/// asker has no IPv6 address.
pub fn neighbor_solicit(asker: &Asker, vip: Ipv6Addr) -> Option<Vec<u8>> {
    let src = asker.ipv6?;
    Some(
        Frame {
            dst: solicited_node_mac(vip),
            src: asker.mac,
            vlan: None,
            payload: Payload::Ndp(NdpDatagram {
                src,
                dst: solicited_node(vip),
                message: ndp::Repr::NeighborSolicit {
                    target: vip,
                    source_link_addr: Some(asker.mac),
                },
            }),
        }
        .to_bytes(),
    )
}

/// What `bytes` (a frame off the client's packet socket) says about who has `vip`, if
/// anything. Requests, answers about other addresses, answers to someone else and malformed
/// frames are `None`.
pub fn arp_answer(bytes: &[u8], asker: &Asker, vip: Ipv4Addr) -> Option<Answer> {
    let frame = Frame::parse(bytes).ok()?;
    let Payload::Arp(a) = frame.payload else {
        return None;
    };
    if a.sender_ip != vip || !a.sender_mac.is_unicast() {
        return None;
    }
    if a.is_gratuitous() {
        return Some(Answer::Announcement(a.sender_mac));
    }
    let to_us = a.operation == arp::Operation::Reply
        && a.target_ip == asker.ipv4
        && a.target_mac == asker.mac;
    to_us.then_some(Answer::Reply(a.sender_mac))
}

/// What `bytes` says about who has the IPv6 `vip`: a Neighbor Advertisement for it that
/// carries a target link-layer address.
pub fn ndp_answer(bytes: &[u8], asker: &Asker, vip: Ipv6Addr) -> Option<Answer> {
    let frame = Frame::parse(bytes).ok()?;
    let Payload::Ndp(NdpDatagram {
        dst,
        message:
            ndp::Repr::NeighborAdvert {
                flags,
                target,
                target_link_addr: Some(mac),
            },
        ..
    }) = frame.payload
    else {
        return None;
    };
    if target != vip || !mac.is_unicast() {
        return None;
    }
    if !flags.solicited {
        return Some(Answer::Announcement(mac));
    }
    (Some(dst) == asker.ipv6 && frame.dst == asker.mac).then_some(Answer::Reply(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlb_speaker::packet::build::{
        GratuitousForm, arp_reply, gratuitous_arp, neighbor_advert_reply,
        unsolicited_neighbor_advert,
    };

    const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x1b, 0x00, 0x00, 0x00, 0x64]);
    const NODE_MAC: MacAddr = MacAddr([0x02, 0x1b, 0x00, 0x00, 0x00, 0x0b]);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0x100, 0, 0, 0, 10);

    fn asker() -> Asker {
        Asker {
            mac: CLIENT_MAC,
            ipv4: Ipv4Addr::new(192, 0, 2, 100),
            ipv6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)),
        }
    }

    #[test]
    fn arp_request_golden_bytes() {
        let bytes = arp_request(&asker(), VIP);
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
            0x02, 0x1b, 0x00, 0x00, 0x00, 0x64, // from the client
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4
            0x00, 0x01,                         // request
            0x02, 0x1b, 0x00, 0x00, 0x00, 0x64, 192, 0, 2, 100,
            0, 0, 0, 0, 0, 0, 198, 51, 100, 10,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn the_speakers_reply_to_our_request_is_a_reply() {
        let request = Frame::parse(&arp_request(&asker(), VIP)).unwrap();
        let reply = arp_reply(&request, NODE_MAC).unwrap().to_bytes();
        assert_eq!(
            arp_answer(&reply, &asker(), VIP),
            Some(Answer::Reply(NODE_MAC))
        );
        // ... but not for another VIP, nor for another asker.
        assert_eq!(
            arp_answer(&reply, &asker(), Ipv4Addr::new(198, 51, 100, 11)),
            None
        );
        let other = Asker {
            ipv4: Ipv4Addr::new(192, 0, 2, 101),
            ..asker()
        };
        assert_eq!(arp_answer(&reply, &other, VIP), None);
    }

    #[test]
    fn gratuitous_arp_in_both_forms_is_an_announcement() {
        for form in [GratuitousForm::Request, GratuitousForm::Reply] {
            let g = gratuitous_arp(NODE_MAC, VIP, form).to_bytes();
            assert_eq!(
                arp_answer(&g, &asker(), VIP),
                Some(Answer::Announcement(NODE_MAC)),
                "{form:?}"
            );
        }
    }

    #[test]
    fn requests_and_malformed_frames_are_not_answers() {
        let request = arp_request(&asker(), VIP);
        assert_eq!(arp_answer(&request, &asker(), VIP), None);
        let request = Frame::parse(&request).unwrap();
        let mut reply = arp_reply(&request, NODE_MAC).unwrap().to_bytes();
        for len in [0, 13, 14, 41] {
            assert_eq!(
                arp_answer(&reply[..len], &asker(), VIP),
                None,
                "truncated to {len}"
            );
        }
        reply[15] = 0x06; // hardware type 6
        assert_eq!(arp_answer(&reply, &asker(), VIP), None);
        let mut reply = arp_reply(&request, NODE_MAC).unwrap().to_bytes();
        reply[16] = 0x86; // protocol type 0x8600
        assert_eq!(arp_answer(&reply, &asker(), VIP), None);
        let mut reply = arp_reply(&request, NODE_MAC).unwrap().to_bytes();
        reply[22] = 0x01; // a multicast sender MAC
        assert_eq!(arp_answer(&reply, &asker(), VIP), None);
    }

    #[test]
    fn neighbor_solicit_parses_as_the_speaker_sees_it() {
        let bytes = neighbor_solicit(&asker(), VIP6).unwrap();
        let frame = Frame::parse(&bytes).unwrap();
        assert_eq!(frame.dst, MacAddr([0x33, 0x33, 0xff, 0x00, 0x00, 0x0a]));
        let Payload::Ndp(d) = frame.payload else {
            panic!("not NDP: {frame:?}");
        };
        assert_eq!(d.dst, "ff02::1:ff00:a".parse::<Ipv6Addr>().unwrap());
        assert_eq!(d.src, asker().ipv6.unwrap());
        assert_eq!(
            d.message,
            ndp::Repr::NeighborSolicit {
                target: VIP6,
                source_link_addr: Some(CLIENT_MAC)
            }
        );
        let v4_only = Asker {
            ipv6: None,
            ..asker()
        };
        assert_eq!(neighbor_solicit(&v4_only, VIP6), None);
    }

    #[test]
    fn the_speakers_advert_is_a_reply_and_unsolicited_ones_announce() {
        let request = Frame::parse(&neighbor_solicit(&asker(), VIP6).unwrap()).unwrap();
        let reply = neighbor_advert_reply(&request, NODE_MAC)
            .unwrap()
            .to_bytes();
        assert_eq!(
            ndp_answer(&reply, &asker(), VIP6),
            Some(Answer::Reply(NODE_MAC))
        );
        let other = "2001:db8:0:100::11".parse().unwrap();
        assert_eq!(ndp_answer(&reply, &asker(), other), None);
        let unsolicited = unsolicited_neighbor_advert(NODE_MAC, VIP6).to_bytes();
        assert_eq!(
            ndp_answer(&unsolicited, &asker(), VIP6),
            Some(Answer::Announcement(NODE_MAC))
        );
        // A solicitation is not an answer, and a corrupted checksum is dropped.
        assert_eq!(
            ndp_answer(&neighbor_solicit(&asker(), VIP6).unwrap(), &asker(), VIP6),
            None
        );
        let mut bad = reply.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(ndp_answer(&bad, &asker(), VIP6), None);
        assert_eq!(ndp_answer(&reply[..60], &asker(), VIP6), None);
    }

    #[test]
    fn arbitrary_bytes_are_answers_only_when_they_name_the_vip() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..120))| {
            if let Some(answer) = arp_answer(&bytes, &asker(), VIP) {
                let Ok(Frame { payload: Payload::Arp(a), .. }) = Frame::parse(&bytes) else {
                    panic!("an answer that is not ARP");
                };
                prop_assert_eq!(a.sender_ip, VIP);
                prop_assert_eq!(a.sender_mac, answer.mac());
            }
            if let Some(answer) = ndp_answer(&bytes, &asker(), VIP6) {
                prop_assert!(answer.mac().is_unicast());
            }
        });
        // Ethernet padding after a reply (frames are padded to 60 bytes on the wire) is fine.
        let request = Frame::parse(&arp_request(&asker(), VIP)).unwrap();
        let mut padded = arp_reply(&request, NODE_MAC).unwrap().to_bytes();
        padded.extend_from_slice(&[0xaa; 18]);
        assert_eq!(
            arp_answer(&padded, &asker(), VIP),
            Some(Answer::Reply(NODE_MAC))
        );
    }
}
