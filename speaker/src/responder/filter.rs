//! The classic BPF programs attached to the responder's packet sockets, so that the kernel
//! hands the speaker only the frames it answers. Pure data.
//!
//! A packet socket bound to an EtherType receives every frame of that type; for IPv6 that is
//! all the node's IPv6 traffic, which the speaker must not copy to user space (it would cost
//! the forwarding throughput the product promises). The programs keep:
//! - on the ARP socket: every ARP frame except the node's own outgoing ones;
//! - on the IPv6 socket: ICMPv6 Neighbor Solicitations and Advertisements directly after the
//!   IPv6 header (NDP never uses extension headers), except outgoing ones.
//!
//! Offsets are from the start of the Ethernet frame (the sockets are `SOCK_RAW`); VLAN tags
//! are removed by the kernel before packet sockets on the parent interface see a frame.

/// One classic BPF instruction, as `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

// Instruction classes and modes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: loads the packet type (`PACKET_HOST`, ..., `PACKET_OUTGOING`).
const ANCILLARY_PKTTYPE: u32 = 0xffff_f000 + 4;
const PACKET_OUTGOING: u32 = 4;
/// Bytes of an accepted frame to deliver: all of it.
const ACCEPT: u32 = 0x0004_0000;
const REJECT: u32 = 0;

/// Offset of the IPv6 next-header field, and of the ICMPv6 type, in an untagged frame.
const IPV6_NEXT_HEADER: u32 = 14 + 6;
const ICMPV6_TYPE: u32 = 14 + 40;
const NEXT_HEADER_ICMPV6: u32 = 58;
const NEIGHBOR_SOLICIT: u32 = 135;
const NEIGHBOR_ADVERT: u32 = 136;

/// Every incoming frame (the socket is bound to ARP).
pub const ARP: [Insn; 4] = [
    insn(LD_W_ABS, 0, 0, ANCILLARY_PKTTYPE),
    insn(JEQ_K, 1, 0, PACKET_OUTGOING),
    insn(RET_K, 0, 0, ACCEPT),
    insn(RET_K, 0, 0, REJECT),
];

/// Incoming Neighbor Solicitations and Advertisements (the socket is bound to IPv6).
pub const NDP: [Insn; 9] = [
    insn(LD_W_ABS, 0, 0, ANCILLARY_PKTTYPE),
    insn(JEQ_K, 6, 0, PACKET_OUTGOING), // -> reject
    insn(LD_B_ABS, 0, 0, IPV6_NEXT_HEADER),
    insn(JEQ_K, 0, 4, NEXT_HEADER_ICMPV6), // else reject
    insn(LD_B_ABS, 0, 0, ICMPV6_TYPE),
    insn(JEQ_K, 1, 0, NEIGHBOR_SOLICIT), // -> accept
    insn(JEQ_K, 0, 1, NEIGHBOR_ADVERT),  // else reject
    insn(RET_K, 0, 0, ACCEPT),
    insn(RET_K, 0, 0, REJECT),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::{self, GratuitousForm};
    use crate::packet::{Frame, MacAddr};

    /// Runs a program the way the kernel would, for the instructions used here. `None` when
    /// the program reads past the frame or does something unsupported (the kernel drops).
    fn run(program: &[Insn], frame: &[u8], pkttype: u32) -> Option<u32> {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = program.get(pc)?;
            pc += 1;
            match i.code {
                LD_W_ABS if i.k == ANCILLARY_PKTTYPE => a = pkttype,
                LD_W_ABS => {
                    let k = i.k as usize;
                    a = u32::from_be_bytes(frame.get(k..k + 4)?.try_into().ok()?);
                }
                LD_B_ABS => a = u32::from(*frame.get(i.k as usize)?),
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return Some(i.k),
                _ => return None,
            }
        }
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const HOST: u32 = 0;
    const BROADCAST: u32 = 1;
    const MULTICAST: u32 = 2;

    fn ns_frame() -> Vec<u8> {
        // A solicitation is what a reply answers; build it from an advert and flip the type,
        // recomputing nothing: the filter reads only the type byte.
        let mut bytes =
            build::unsolicited_neighbor_advert(MAC, "2001:db8::1".parse().unwrap()).to_bytes();
        bytes[ICMPV6_TYPE as usize] = 135;
        bytes
    }

    #[test]
    fn arp_program_keeps_incoming_arp() {
        let garp = build::gratuitous_arp(
            MAC,
            "198.51.100.1".parse().unwrap(),
            GratuitousForm::Request,
        )
        .to_bytes();
        assert_eq!(run(&ARP, &garp, BROADCAST), Some(ACCEPT));
        assert_eq!(run(&ARP, &garp, HOST), Some(ACCEPT));
        assert_eq!(run(&ARP, &garp, PACKET_OUTGOING), Some(REJECT));
    }

    #[test]
    fn ndp_program_keeps_only_incoming_solicitations_and_adverts() {
        let na = build::unsolicited_neighbor_advert(MAC, "2001:db8::1".parse().unwrap()).to_bytes();
        let ns = ns_frame();
        assert_eq!(run(&NDP, &na, MULTICAST), Some(ACCEPT));
        assert_eq!(run(&NDP, &ns, MULTICAST), Some(ACCEPT));
        assert_eq!(run(&NDP, &ns, PACKET_OUTGOING), Some(REJECT));

        let mut echo = ns.clone();
        echo[ICMPV6_TYPE as usize] = 128; // echo request
        assert_eq!(run(&NDP, &echo, HOST), Some(REJECT));
        let mut tcp = ns.clone();
        tcp[IPV6_NEXT_HEADER as usize] = 6;
        assert_eq!(run(&NDP, &tcp, HOST), Some(REJECT));
        let mut hop_by_hop = ns.clone();
        hop_by_hop[IPV6_NEXT_HEADER as usize] = 0;
        assert_eq!(run(&NDP, &hop_by_hop, HOST), Some(REJECT));
        // Too short to hold an ICMPv6 type: the kernel drops it.
        assert_eq!(run(&NDP, &ns[..30], HOST), None);
        assert_eq!(run(&NDP, &ns[..(ICMPV6_TYPE as usize)], HOST), None);
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        for program in [&ARP[..], &NDP[..]] {
            for (pc, i) in program.iter().enumerate() {
                if i.code == JEQ_K {
                    assert!(pc + 1 + usize::from(i.jt.max(i.jf)) < program.len());
                }
            }
            assert_eq!(program.last().unwrap().code, RET_K);
        }
        // The offsets match the frames the codec builds.
        let na = build::unsolicited_neighbor_advert(MAC, "2001:db8::1".parse().unwrap()).to_bytes();
        assert!(Frame::parse(&na).is_ok());
        assert_eq!(na[IPV6_NEXT_HEADER as usize], 58);
        assert_eq!(na[ICMPV6_TYPE as usize], 136);
    }
}
